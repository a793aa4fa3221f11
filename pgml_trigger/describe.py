"""Read off a fitted scikit-learn estimator what the database needs to score it.

Runs in the uploader's process: the result becomes the metadata columns of a
``pgml_trigger.models`` row, which the server trusts instead of poking at the
unpickled object on every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .errors import InvalidModel
from .server.features import NUMBER, STRING, FeatureSchema


@dataclass(frozen=True)
class ModelInfo:
    task: str  # "classification" | "regression"
    classes: list | None  # class labels as JSON scalars, in predict_proba column order
    schema: FeatureSchema


def describe(model, feature_names=None, sample=None) -> ModelInfo:
    """Validate ``model`` for upload and describe its task, classes and features.

    ``feature_names`` names the features of a model fitted on a bare array;
    ``sample`` (a DataFrame like the training data) fixes the feature dtypes
    when they cannot be read off the fitted model.
    """
    from sklearn.base import is_classifier, is_regressor
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    kind = type(model).__name__
    if not callable(getattr(model, "predict", None)):
        raise InvalidModel(f"the {kind} has no predict() method; upload a fitted scikit-learn estimator or pipeline")
    try:
        check_is_fitted(model)
    except NotFittedError as exc:
        raise InvalidModel(f"the {kind} is not fitted; call fit() before uploading it") from exc
    except TypeError as exc:  # check_is_fitted refuses non-estimators
        raise InvalidModel(f"the {kind} is not a scikit-learn estimator: {exc}") from exc

    if is_classifier(model):
        task, classes = "classification", _classes(model)
    elif is_regressor(model):
        task, classes = "regression", None
    else:
        raise InvalidModel(f"the {kind} is neither a classifier nor a regressor; only those can be uploaded")

    fitted_names = getattr(model, "feature_names_in_", None)
    names = _feature_names(model, kind, fitted_names, feature_names)
    input_kind = "frame" if fitted_names is not None else "array"
    types = _feature_types(model, names, sample) if input_kind == "frame" else [NUMBER] * len(names)
    schema = FeatureSchema(names=tuple(names), types=tuple(types), accepts_nan=_accepts_nan(model),
                           input_kind=input_kind)
    return ModelInfo(task=task, classes=classes, schema=schema)


def _classes(model) -> list:
    classes = np.asarray(getattr(model, "classes_", None), dtype=object)
    if classes.ndim != 1 or classes.size == 0:
        raise InvalidModel(f"a {type(model).__name__} has no single list of classes_; "
                           "multi-output classifiers are not supported")
    return [label.item() if isinstance(label, np.generic) else label for label in classes]


def _feature_names(model, kind, fitted_names, given) -> list[str]:
    if fitted_names is not None:
        fitted = [str(name) for name in fitted_names]
        if given is not None and list(given) != fitted:
            raise InvalidModel(f"feature_names {list(given)} differ from the names the {kind} was fitted with "
                               f"{fitted}; leave feature_names out")
        return fitted
    n_features = getattr(model, "n_features_in_", None)
    if given is not None:
        names = [str(name) for name in given]
        if n_features is not None and len(names) != n_features:
            raise InvalidModel(f"feature_names has {len(names)} names but the {kind} was fitted "
                               f"on {n_features} features")
    elif n_features is not None:
        # scikit-learn's own convention for unnamed inputs (get_feature_names_out).
        names = [f"x{i}" for i in range(n_features)]
    else:
        raise InvalidModel(f"cannot tell how many features a {kind} takes; pass feature_names")
    if len(set(names)) != len(names):
        raise InvalidModel(f"feature names must be unique: {names}")
    return names


def _accepts_nan(model) -> bool:
    from sklearn.utils import get_tags

    return bool(get_tags(model).input_tags.allow_nan)


def _feature_types(model, names: list[str], sample) -> list[str]:
    """NUMBER or STRING per feature: from the sample's dtypes, else from the fitted encoders."""
    if sample is not None and hasattr(sample, "dtypes"):
        missing = [name for name in names if name not in sample.columns]
        if missing:
            raise InvalidModel(f"sample lacks the model's features {missing}")
        return [NUMBER if sample[name].dtype.kind in "biuf" else STRING for name in names]
    strings = set()
    for columns, fitted in _encoded_columns(model):
        for position, column in enumerate(columns):
            if _learned_strings(fitted, position):
                strings.add(column)
    return [STRING if name in strings else NUMBER for name in names]


def _encoded_columns(estimator) -> Iterator[tuple[list[str], object]]:
    """(input column names, first fitted step that learned per-column values) for each ColumnTransformer branch."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(estimator, Pipeline):
        for _, step in estimator.steps:
            yield from _encoded_columns(step)
    elif isinstance(estimator, FeatureUnion):
        for _, part in estimator.transformer_list:
            yield from _encoded_columns(part)
    elif isinstance(estimator, ColumnTransformer):
        all_names = list(getattr(estimator, "feature_names_in_", []))
        for _, transformer, columns in estimator.transformers_:
            if isinstance(transformer, str):  # "drop" / "passthrough": nothing learned
                continue
            first = transformer.steps[0][1] if isinstance(transformer, Pipeline) else transformer
            yield _column_names(columns, all_names), first


def _column_names(columns, all_names: list[str]) -> list[str]:
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, slice):
        return all_names[columns]
    selected = list(np.asarray(columns).ravel())
    if selected and isinstance(selected[0], (bool, np.bool_)):
        return [name for name, keep in zip(all_names, selected) if keep]
    return [all_names[c] if isinstance(c, (int, np.integer)) else str(c) for c in selected]


def _learned_strings(fitted, position: int) -> bool:
    """True when the step learned text values for its input column at ``position``."""
    categories = getattr(fitted, "categories_", None)
    if categories is not None and position < len(categories):
        return np.asarray(categories[position]).dtype.kind in "OUS" and any(
            isinstance(value, str) for value in categories[position])
    statistics = getattr(fitted, "statistics_", None)
    if statistics is not None and position < len(statistics):
        return isinstance(statistics[position], str)
    return False


# ONNX element types an uploaded graph may take and give (onnx.TensorProto: FLOAT = 1, DOUBLE = 11).
ONNX_FLOAT_TYPES = {1: "float32", 11: "float64"}


def describe_onnx(payload: bytes, feature_names=None, classes=None, task: str | None = None) -> ModelInfo:
    """Validate an ONNX graph for upload and describe it, from its inputs and outputs and the arguments.

    Supported graphs take one float (or double) tensor of shape [N, n_features] and give either one
    output, the regression value ([N] or [N, 1]), or two, a label ([N]) and the class probabilities
    ([N, n_classes] float tensor, e.g. skl2onnx with ``options={"zipmap": False}``). The class labels,
    in probability column order, come from ``classes`` or else from the graph's classifier operator
    (``classlabels_int64s`` / ``classlabels_strings``, which skl2onnx writes). The label is taken as
    the most probable class, as on the compiled path.
    """
    import onnx

    try:
        graph = onnx.load_from_string(payload).graph
    except Exception as exc:  # protobuf's DecodeError and friends: whatever it is, it is no ONNX model
        raise InvalidModel(f"not an ONNX model: {type(exc).__name__}: {exc}") from exc
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [item for item in graph.input if item.name not in initializers]
    if len(inputs) != 1:
        raise InvalidModel(f"the ONNX graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                           "pgml_trigger scores graphs with one float tensor input of shape [N, n_features]")
    n_features = _onnx_features(inputs[0])
    outputs = list(graph.output)
    for output in outputs:
        if output.type.WhichOneof("value") != "tensor_type":
            raise InvalidModel(f"ONNX output {output.name!r} is a {output.type.WhichOneof('value')}, not a tensor; "
                               "convert classifiers without the ZipMap (skl2onnx: options={'zipmap': False})")
    task = task or ("classification" if len(outputs) == 2 else "regression" if len(outputs) == 1 else None)
    if task == "regression" and len(outputs) == 1:
        _onnx_float_output(outputs[0], None)
        classes = None
    elif task == "classification" and len(outputs) == 2:
        classes = list(classes) if classes is not None else _onnx_class_labels(graph)
        if not classes:
            raise InvalidModel("cannot read the class labels off the ONNX graph; pass classes= in the order of "
                               "its probability columns")
        _onnx_float_output(outputs[1], len(classes))
    else:
        raise InvalidModel(f"the ONNX graph has {len(outputs)} outputs; pgml_trigger scores regressors with one "
                           "(the value) and classifiers with two (label, probabilities)")
    if feature_names is not None:
        names = [str(name) for name in feature_names]
        if n_features is not None and len(names) != n_features:
            raise InvalidModel(f"feature_names has {len(names)} names but the ONNX input takes {n_features} features")
    elif n_features is not None:
        names = [f"x{i}" for i in range(n_features)]
    else:
        raise InvalidModel("the ONNX input's feature dimension is not fixed; pass feature_names")
    if len(set(names)) != len(names):
        raise InvalidModel(f"feature names must be unique: {names}")
    schema = FeatureSchema(names=tuple(names), types=(NUMBER,) * len(names), accepts_nan=False, input_kind="array")
    return ModelInfo(task=task, classes=[_json_scalar(label) for label in classes] if classes else None,
                     schema=schema)


def _onnx_features(graph_input) -> int | None:
    tensor = graph_input.type.tensor_type
    if graph_input.type.WhichOneof("value") != "tensor_type" or tensor.elem_type not in ONNX_FLOAT_TYPES:
        raise InvalidModel(f"the ONNX input {graph_input.name!r} is not a float or double tensor; text inputs are "
                           "not supported for uploaded graphs")
    dims = tensor.shape.dim
    if len(dims) != 2:
        raise InvalidModel(f"the ONNX input {graph_input.name!r} has {len(dims)} dimensions; expected [N, n_features]")
    return dims[1].dim_value if dims[1].HasField("dim_value") else None


def _onnx_float_output(output, n_columns: int | None) -> None:
    tensor = output.type.tensor_type
    if tensor.elem_type not in ONNX_FLOAT_TYPES:
        raise InvalidModel(f"ONNX output {output.name!r} is not a float or double tensor")
    dims = tensor.shape.dim
    last = dims[-1].dim_value if dims and dims[-1].HasField("dim_value") else None
    if n_columns is None and not (len(dims) == 1 or (len(dims) == 2 and last == 1)):
        raise InvalidModel(f"ONNX output {output.name!r} must be [N] or [N, 1] for a regressor")
    if n_columns is not None and (len(dims) != 2 or last not in (None, n_columns)):
        raise InvalidModel(f"ONNX output {output.name!r} must be the probabilities, [N, {n_columns}]")


def _onnx_class_labels(graph) -> list | None:
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name == "classlabels_int64s" and attribute.ints:
                return list(attribute.ints)
            if attribute.name == "classlabels_strings" and attribute.strings:
                return [label.decode() for label in attribute.strings]
    return None


def _json_scalar(label):
    return label.item() if isinstance(label, np.generic) else label

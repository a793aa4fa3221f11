"""Read off a fitted scikit-learn estimator what the database needs to score it.

Runs in the uploader's process: the result becomes the metadata columns of a
``pgml_trigger.models`` row, which the server trusts instead of poking at the
unpickled object on every call.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidModel
from ..schema import FLOAT32_MAX, NUMBER, STRING, FeatureSchema, refusing
from .missing import feature_inputs


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
    fitted = None if fitted_names is None else [str(name) for name in fitted_names]
    names = feature_names_of(feature_names, getattr(model, "n_features_in_", None), fitted=fitted,
                             fitted_as=f"the {kind} was fitted with {fitted}", takes=f"the {kind} was fitted on",
                             uncounted=f"cannot tell how many features a {kind} takes")
    input_kind = "frame" if fitted is not None else "array"
    types = _feature_types(model, names, sample) if input_kind == "frame" else [NUMBER] * len(names)
    inputs = feature_inputs(model, names, types, input_kind, task, sample)
    schema = FeatureSchema(names=tuple(names), types=tuple(types), inputs=inputs, input_kind=input_kind)
    return ModelInfo(task=task, classes=classes, schema=schema)


def _classes(model) -> list:
    classes = np.asarray(getattr(model, "classes_", None), dtype=object)
    if classes.ndim != 1 or classes.size == 0:
        raise InvalidModel(f"a {type(model).__name__} has no single list of classes_; "
                           "multi-output classifiers are not supported")
    return [label.item() if isinstance(label, np.generic) else label for label in classes]


def feature_names_of(given, n_features: int | None, *, takes: str, uncounted: str = "", fitted=None,
                     fitted_as: str = "", carried=None) -> list[str]:
    """The names of a model's features, in its input order, from the upload's ``feature_names`` (``given``).

    ``fitted``: the names the model is fed by (a DataFrame's columns, an ONNX graph's inputs), which ``given``
    may only repeat. ``carried``: names a model keeps but is fed by position (a native booster's), which
    ``given`` replaces. Without either: ``given``, else x0, x1, ... for ``n_features`` inputs.
    The phrases finish the error messages: "feature_names ... differ from the names {fitted_as}",
    "feature_names has N names but {takes} {n_features} features", "{uncounted}; pass feature_names".
    """
    if fitted is not None:
        names = list(fitted)
        if given is not None and [str(name) for name in given] != names:
            raise InvalidModel(f"feature_names {list(given)} differ from the names {fitted_as}; "
                               "leave feature_names out")
    elif given is not None:
        names = [str(name) for name in given]
        if n_features is not None and len(names) != n_features:
            raise InvalidModel(f"feature_names has {len(names)} names but {takes} {n_features} features")
    elif carried is not None:
        names = list(carried)
    elif n_features is not None:
        # scikit-learn's own convention for unnamed inputs (get_feature_names_out).
        names = [f"x{i}" for i in range(n_features)]
    else:
        raise InvalidModel(f"{uncounted}; pass feature_names")
    if len(set(names)) != len(names):
        raise InvalidModel(f"feature names must be unique: {names}")
    return names


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


def describe_onnx(payload: bytes, feature_names=None, classes=None, task: str | None = None) -> ModelInfo:
    """Validate an ONNX graph for upload and describe it, from the graph and the arguments.

    What graphs are accepted and how they are read: server/onnx_graph.py. The class labels, in
    probability column order, come from ``classes``, else from the graph (a ZipMap's or the classifier
    operator's labels, as skl2onnx and onnxmltools write them), else, for a graph that gives only
    class scores (torch.onnx), the column indexes 0..n_classes-1. ``task`` must agree with the graph.
    """
    from ..server import onnx_graph
    from .compile import computes_in_float32

    reading = onnx_graph.read(onnx_graph.load(payload), task)
    if reading.task == "classification":
        if classes is not None:
            classes = list(classes)
        elif reading.classes:
            classes = reading.classes
        elif not reading.labelled and reading.n_classes:
            classes = list(range(reading.n_classes))
        else:
            raise InvalidModel("cannot read the class labels off the ONNX graph; pass classes= in the order of "
                               "its probability columns")
        if reading.n_classes is not None and len(classes) != reading.n_classes:
            raise InvalidModel(f"{len(classes)} classes given, but the ONNX graph scores {reading.n_classes}")
    else:
        classes = None
    inputs = reading.feature_names  # one input per feature: the server feeds them by name
    names = feature_names_of(feature_names, reading.n_features, fitted=inputs,
                             fitted_as=f"of the ONNX graph's inputs {list(inputs or ())}, one per feature",
                             takes="the ONNX input takes", uncounted="the ONNX input's feature dimension is not fixed")
    schema = FeatureSchema(names=tuple(names), types=reading.feature_types or (NUMBER,) * len(names),
                           inputs=refusing(names, "the uploaded ONNX graph (pgml_trigger passes it no missing "
                                                  "values)"),
                           input_kind="array" if inputs is None else "frame")
    if computes_in_float32(payload):
        schema = schema.within(FLOAT32_MAX)
    return ModelInfo(task=reading.task, classes=[_json_scalar(label) for label in classes] if classes else None,
                     schema=schema)


def _json_scalar(label):
    return label.item() if isinstance(label, np.generic) else label

"""The compiled scoring path: a fitted model converted to ONNX at upload, kept only if it agrees.

Runs in the uploader's process. skl2onnx converts the model; onnxruntime
scores sample rows, and the ONNX graph is stored beside the joblib payload
only when it matches scikit-learn on every one of them: the same class label
on every row, and values and probabilities within ``RTOL``/``ATOL``. A model
that computes in double (linear models, scalers, MLPs: everything but trees)
gets a graph in double where the converters can write one, and agrees to
about 1e-15; trees read their input as float32 themselves, and a graph in
float32 (the fallback) was measured up to 4e-7 off on a probability and
2.2e-5 on a regression value of about 150, i.e. 1.5e-7 relative; a
regression value may also be within ``RTOL`` of the largest value on the
rows, as float32 sums of many trees need. A graph in float32 makes every
numeric feature refuse numbers beyond float32's range (``Compiled.largest``),
which it would read as infinity. A model that selects columns by name (a
ColumnTransformer) or has text features gets one graph input per feature.
Anything else (a model skl2onnx cannot express, a disagreement, no rows to
check with) keeps the model on the scikit-learn path and says why in
``agreement``.

Rows to check with: the ``sample`` given to upload(); else, for all-numeric
models, rows drawn uniformly between per-feature bounds that the fitted model
itself reveals (a leading StandardScaler's mean +/- 3 standard deviations, a
MinMaxScaler's data range, the split thresholds of tree ensembles). Models
that reveal no bounds (e.g. a bare linear model) are not compiled without a
sample. Models that accept missing values are also checked on copies of
those rows with NaNs sprinkled in the features that take them; where only
those disagree, or a text feature takes a missing value (an ONNX string
tensor has no form for it), the compiled graph scores complete rows and the
model's own library the rows with a missing value.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..schema import FLOAT32_MAX, NUMBER, FeatureSchema
from ..server.engines import OnnxEngine, most_probable, onnx_session
from .describe import ModelInfo

FORMAT = "onnx"
RTOL = 1e-5
ATOL = 1e-6
MAX_ROWS = 1000
SYNTHESIZED_ROWS = 500
_SEED = 0


@dataclass(frozen=True)
class Compiled:
    format: str | None  # "onnx", or None when the model stays on the scikit-learn path
    payload: bytes | None
    handles_nan: bool | None  # whether the ONNX graph also scores rows with missing values like scikit-learn
    agreement: dict  # what was checked and how it went, or why nothing was compiled
    largest: float | None = None  # FLOAT32_MAX when the graph reads numbers as float32

    def schema(self, schema: FeatureSchema) -> FeatureSchema:
        """The model's features as this graph and the model together take them."""
        return schema if self.largest is None else schema.within(self.largest)


class NotCompiled(Exception):
    """Why a model stays on the scikit-learn path."""


def compile_model(model, info: ModelInfo, sample=None, convert=None, bounds=None) -> Compiled:
    """Convert ``model`` to ONNX and keep the graph if it agrees with ``model`` on the check rows.

    ``convert(model, info)`` gives the ONNX bytes (default: skl2onnx, convert_sklearn() below);
    ``bounds(model, n_features)`` gives per-feature (low, high) to draw check rows from when there is no
    sample (default: what a scikit-learn model reveals, see the module docstring). The framework modules
    (pgml_trigger/uploader/frameworks/) pass their own.
    """
    convert = convert or convert_sklearn
    try:
        if info.task == "classification" and not hasattr(model, "predict_proba"):
            raise NotCompiled("the model has no predict_proba(); only models with probabilities are compiled")
        rows, source = check_rows(model, info, sample, bounds)
        holes = rows.isna().any(axis=1).to_numpy()
        if holes.all():
            raise NotCompiled("every sample row has a missing value: none to check the ONNX graph with")
        payload = convert(model, info)
        engine = OnnxEngine(payload, info.schema, info.classes)  # scores the rows as the server will
        agreement = _agreement(model, info, engine, rows[~holes])
        if info.schema.accepts_nan:
            gaps = _agreement(model, info, engine, _with_gaps(rows, holes, info))
    except NotCompiled as exc:
        return Compiled(None, None, None, {"compiled": False, "reason": str(exc)})
    except Exception as exc:  # skl2onnx/onnxruntime fail in many ways; any of them means: stay on sklearn
        reason = f"conversion to ONNX failed: {type(exc).__name__}: {exc}"
        return Compiled(None, None, None, {"compiled": False, "reason": reason[:500]})
    agreement["rows_from"] = source
    if not _agrees(agreement):
        agreement.update(compiled=False, reason="ONNX disagrees with scikit-learn on the sample rows")
        return Compiled(None, None, None, agreement)
    agreement["compiled"] = True
    largest = FLOAT32_MAX if computes_in_float32(payload) else None
    if not info.schema.accepts_nan:
        return Compiled(FORMAT, payload, False, agreement, largest)
    # Converters differ from scikit-learn in where a missing value goes (RandomForest's does, for one), and a
    # missing text value cannot be fed: then rows with a missing value are scored by the model's own library and
    # the others by ONNX.
    handles = _agrees(gaps) and not _text_may_be_missing(info.schema)
    agreement["missing_values"] = {"scored_by": "onnx" if handles else "sklearn", **gaps}
    return Compiled(FORMAT, payload, handles, agreement, largest)


# ai.onnx.ml operators whose weights are float32 attributes: they compute in float32 whatever their input.
_FLOAT32_OPERATORS = {"SVMClassifier", "SVMRegressor", "TreeEnsembleClassifier", "TreeEnsembleRegressor",
                      "TreeEnsemble", "LinearClassifier", "LinearRegressor", "Scaler", "Imputer", "Binarizer",
                      "Normalizer"}


def computes_in_float32(payload: bytes) -> bool:
    """Whether an ONNX graph reads numbers as float32, casts them to it, or computes with float32 weights (the
    ai.onnx.ml operators skl2onnx writes for SVMs, trees, imputers): a number beyond float32's range would be
    infinity there, and its answers are float32's."""
    import onnx

    graph = onnx.load_from_string(payload).graph
    return any(item.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for item in graph.input) or any(
        (node.domain == "ai.onnx.ml" and node.op_type in _FLOAT32_OPERATORS)
        or (node.op_type == "Cast" and any(attribute.name == "to" and attribute.i == onnx.TensorProto.FLOAT
                                           for attribute in node.attribute)) for node in graph.node)


def _text_may_be_missing(schema: FeatureSchema) -> bool:
    return any(kind != NUMBER and accepts for kind, accepts in zip(schema.types, schema.accepts_missing))


def _agrees(agreement: dict) -> bool:
    return agreement["label_mismatches"] == 0 and agreement["within_tolerance"]


def convert_sklearn(model, info: ModelInfo, target_opset=None, classifier=None) -> bytes:
    """skl2onnx's conversion, with the inputs the server feeds (engines.onnx_inputs) and bare probabilities: in
    double where the model computes in double and the converters and onnxruntime take it, else in float32.

    ``classifier``: the estimator whose converter takes the zipmap option (default ``model``; a pipeline
    ending in a converter registered from onnxmltools needs its last step named).
    """
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    # A model reading float32 itself (trees: missing.py found it refusing larger numbers) gains nothing in double.
    if info.schema.largest is None:
        try:
            payload = _converted(model, info, DoubleTensorType, target_opset, classifier)
            onnx_session(payload)  # onnxruntime lacks some kernels in double (SVMs, trees)
            return payload
        except Exception:  # the converters and onnxruntime fail in many ways: then in float32
            pass
    return _converted(model, info, FloatTensorType, target_opset, classifier)


def _converted(model, info: ModelInfo, number_type, target_opset, classifier) -> bytes:
    from skl2onnx import convert_sklearn as to_onnx
    from skl2onnx.common.data_types import StringTensorType

    from .frameworks import final_step
    from .graph_imputers import ready_for_graph

    ready = ready_for_graph(model)
    if ready is not model and classifier is not None:
        classifier = final_step(ready)  # the copy's, whose converter takes the option
    model = ready
    schema = info.schema
    if schema.string_features or _selects_columns(model):
        # One input per column, named like it: how skl2onnx maps a ColumnTransformer's column names.
        inputs = [(name, number_type([None, 1]) if kind == NUMBER else StringTensorType([None, 1]))
                  for name, kind in zip(schema.names, schema.types)]
    else:
        inputs = [("features", number_type([None, len(schema.names)]))]
    options = {id(classifier or model): {"zipmap": False}} if info.task == "classification" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # converter chatter must not fail an upload run under -W error
        onx = to_onnx(model, initial_types=inputs, options=options, target_opset=target_opset)
    return onx.SerializeToString()


def _selects_columns(estimator) -> bool:
    """Whether a ColumnTransformer is part of the model (it picks its columns by the inputs' names)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(estimator, Pipeline):
        return any(_selects_columns(step) for _, step in estimator.steps)
    if isinstance(estimator, FeatureUnion):
        return any(_selects_columns(part) for _, part in estimator.transformer_list)
    return isinstance(estimator, ColumnTransformer)


def _agreement(model, info: ModelInfo, engine: OnnxEngine, rows) -> dict:
    table = rows.to_numpy(dtype=object)
    scores = engine.predict_proba_rows(table) if info.task == "classification" else engine.predict_rows(table)
    reference = rows if info.schema.input_kind == "frame" else rows.to_numpy(dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = np.ravel(model.predict(reference))  # CatBoost's classifiers give [N, 1]
        expected_proba = model.predict_proba(reference) if info.task == "classification" else None
    agreement = {"rows": len(rows), "rtol": RTOL, "atol": ATOL}
    if info.task == "classification":
        # The server takes labels as the most probable class, the first on a tie (server/engines.py): the
        # graph's own label output breaks ties its own way. So this also refuses models whose predict()
        # is not the most probable class (e.g. SVC).
        labels = most_probable(np.asarray(scores, dtype=np.float64), np.asarray(model.classes_, dtype=object))
        agreement["label_mismatches"] = int(np.sum(labels != np.asarray(expected)))
        diff, ok = _compare(np.asarray(scores, dtype=np.float64), expected_proba)
        agreement["max_abs_diff_proba"] = diff
    else:
        agreement["label_mismatches"] = 0
        values = np.asarray(expected, dtype=np.float64)
        # onnxruntime adds up a tree ensemble's leaves in float32, whose error follows the size of what it adds,
        # not of the sum: a value near zero is held to the scale of the values. (A 300-tree forest predicting
        # values up to 500 was off by 8.4e-4 on a value near 0: 1.7e-6 of the largest.)
        agreement["atol"] = ATOL + RTOL * float(np.max(np.abs(values), initial=0.0))
        diff, ok = _compare(np.asarray(scores, dtype=np.float64).ravel(), values, agreement["atol"])
        agreement["max_abs_diff_value"] = diff
    agreement["within_tolerance"] = ok
    return agreement


def _compare(got: np.ndarray, expected: np.ndarray, atol: float = ATOL) -> tuple[float, bool]:
    if got.shape != expected.shape:
        return float("inf"), False
    return float(np.max(np.abs(got - expected), initial=0.0)), bool(np.allclose(got, expected, rtol=RTOL, atol=atol))


def check_rows(model, info: ModelInfo, sample, bounds=None):
    """(DataFrame of rows in model feature order, where they came from); ``bounds`` as in compile_model()."""
    import pandas as pd

    names = list(info.schema.names)
    rng = np.random.default_rng(_SEED)
    if sample is not None:
        frame = sample if hasattr(sample, "columns") else pd.DataFrame(np.asarray(sample), columns=names)
        missing = [name for name in names if name not in frame.columns]
        if missing:
            raise NotCompiled(f"the sample lacks the features {missing}")
        frame = frame[names]
        if len(frame) > MAX_ROWS:
            frame = frame.iloc[np.sort(rng.choice(len(frame), MAX_ROWS, replace=False))]
        source = "sample"
    else:
        if info.schema.string_features:
            raise NotCompiled("no sample rows to check the ONNX graph with; pass sample= to upload()")
        bounds = (bounds or feature_bounds)(model, len(names))
        if bounds is None:
            raise NotCompiled("no sample rows to check the ONNX graph with and the model reveals no feature "
                              "ranges to draw them from; pass sample= to upload()")
        low, high = bounds
        frame = pd.DataFrame(rng.uniform(low, high, size=(SYNTHESIZED_ROWS, len(names))), columns=names)
        source = "synthesized"
    return frame.reset_index(drop=True), source


def _with_gaps(frame, holes: np.ndarray, info: ModelInfo):
    """Rows with missing numbers: the sample's own (those with text missing aside: no graph takes them), then a
    copy of (part of) the complete ones with about one value in five set to NaN in each numeric feature taking it."""
    import pandas as pd

    rng = np.random.default_rng(_SEED)
    texts = info.schema.string_features
    own = frame[holes]
    own = own[~own[texts].isna().any(axis=1)] if texts else own
    gaps = frame[~holes].head(200).copy()
    for name, kind, accepts in zip(info.schema.names, info.schema.types, info.schema.accepts_missing):
        if kind == NUMBER and accepts:
            column = gaps[name].astype(np.float64)
            column[rng.random(len(gaps)) < 0.2] = np.nan
            gaps[name] = column
    return pd.concat([own.head(200), gaps], ignore_index=True)


def feature_bounds(model, n_features: int):
    """(low, high) per feature that the fitted model reveals, or None."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    first = model.steps[0][1] if isinstance(model, Pipeline) else model
    if isinstance(first, StandardScaler) and getattr(first, "mean_", None) is not None:
        scale = first.scale_ if first.scale_ is not None else np.ones(n_features)
        return first.mean_ - 3 * scale, first.mean_ + 3 * scale
    if isinstance(first, MinMaxScaler):
        return first.data_min_, first.data_max_
    thresholds = _split_thresholds(first, n_features)
    if thresholds is None:
        return None
    low = np.array([min(values) if values else -1.0 for values in thresholds])
    high = np.array([max(values) if values else 1.0 for values in thresholds])
    margin = np.maximum((high - low) * 0.1, 1e-3)
    return low - margin, high + margin


def _split_thresholds(estimator, n_features: int):
    """The split thresholds of a tree or tree ensemble, per feature, or None for other models."""
    per_feature: list[list[float]] = [[] for _ in range(n_features)]
    trees = [estimator] if hasattr(estimator, "tree_") else list(np.ravel(getattr(estimator, "estimators_", [])))
    trees = [tree for tree in trees if hasattr(tree, "tree_")]
    if trees:
        for tree in trees:
            splits = tree.tree_.feature >= 0
            for feature, threshold in zip(tree.tree_.feature[splits], tree.tree_.threshold[splits]):
                per_feature[feature].append(float(threshold))
        return per_feature
    mapper = getattr(estimator, "_bin_mapper", None)  # HistGradientBoosting*: the bin edges are its thresholds
    if mapper is not None:
        for feature, edges in enumerate(mapper.bin_thresholds_):
            per_feature[feature].extend(float(edge) for edge in edges)
        return per_feature
    return None

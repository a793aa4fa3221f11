"""What explain() needs of a model, read off it at upload and stored with the version.

The server explains a prediction without the model's library, without shap and without unpickling anything:
it reads arrays (server/explain.py, ``pack``). This package writes them, per kind of final estimator (one
module per library, like frameworks/: ``sklearn``, ``xgboost``, ``lightgbm``, ``catboost``):

* a linear model: its coefficients and intercepts, and the background mean of its input (method ``linear``);
* a tree ensemble: its trees as node arrays (method ``tree_shap``);
* and the preprocessing before the final estimator as a program over the input columns (preprocess.py).

Before anything is stored, the explainer scores rows as the server will (server/explain.py's Explainer) and
must agree with the model itself: its transformed features with the pipeline's own transform, its sums with
the final estimator's raw output (decision_function, margins, probabilities), on the rows compile.py checks
the ONNX graph with, and on copies of them with missing values when the model accepts those. A version whose
explainer disagrees, or whose model has no exact method, is stored without one; ``explainer_info`` says why,
and explain() refuses it with that reason.

Models with no exact method are refused rather than approximated. KernelSHAP over a 20-row k-means background
of the breast-cancer data took 0.17 s a row for a scaled MLP (in a client, shap 0.51: about 160 of its
predictions) and two runs on the same rows differed by up to half the largest value; exact permutation
sampling took 3.7 s a row. Neither belongs in a trigger, and an explanation that changes when asked twice is
no reason to give a customer.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...errors import NoExplainer, NotSupported
from ...schema import NUMBER

RTOL = 1e-5  # the explainer's sums against the model's: XGBoost adds its trees up in float32
ATOL = 1e-6
BACKGROUND_ROWS = 100_000  # of the sample, for a linear model's mean
# Trees whose leaves' paths hold more splits than this get no explainer: a row would take too long to explain
# for a query or a trigger. Measured (server/treeshap.py, one core): a 100-tree forest on the breast-cancer data,
# 11,000 splits, 0.4-1.3 ms a row; its 300-tree sibling, 33,000, 2.7 ms; 30 unpruned trees on 5,000 rows of 20
# features, 1.3 million splits on paths of up to 30 features, 0.48 s a row (and minutes to check at upload).
MAX_SPLITS = 500_000


class Unexplained(Exception):
    """Why a version gets no explainer, and the SQLSTATE explain() of it raises."""

    def __init__(self, reason: str, sqlstate: str = NotSupported.sqlstate):
        super().__init__(reason)
        self.reason, self.sqlstate = reason, sqlstate


@dataclass
class Final:
    """The final estimator as an exact method sees it: arrays for server/explain.py and how to read its outputs.

    ``outputs``: "single" (a regressor), "binary" (one sum, the second class's; the first class's is its
    negative) or "per_class"; ``raw(X)``: the estimator's own sums [rows, outputs] for its input ``X``;
    ``probability``: the sums are class probabilities (forests)."""

    method: str  # "linear" or "tree_shap"
    outputs: str
    arrays: dict
    raw: Callable[[object], np.ndarray]
    meta: dict = field(default_factory=dict)
    probability: bool = False


def explainer_columns(framework, model, info, sample) -> dict:
    """The version's ``explainer``, ``explainer_sha256`` and ``explainer_info`` columns (only the last, saying
    why, when the model gets no explainer). ``framework``: the model's (frameworks/), None for an ONNX upload."""
    from psycopg.types.json import Jsonb

    from ...formats import sha256

    try:
        payload, summary = _explainer(framework, model, info, sample)
    except Unexplained as exc:
        return {"explainer_info": Jsonb({"explained": False, "reason": exc.reason, "sqlstate": exc.sqlstate})}
    return {"explainer": payload, "explainer_sha256": sha256(payload), "explainer_info": Jsonb(summary)}


def forest_arrays(trees: list[dict], n_outputs: int) -> dict:
    """One ensemble's node arrays (server/treeshap.py's Forest) from per-tree ones: left, right (-1 at a leaf),
    feature, threshold, default_left, missing (optional), value [nodes, n_outputs], cover."""
    from ...server.treeshap import MISSING_DEFAULT

    arrays = {name: [] for name in ("left", "right", "feature", "threshold", "default_left", "missing", "value",
                                    "cover")}
    base = 0
    for tree in trees:
        n = len(tree["left"])
        for side in ("left", "right"):
            children = np.asarray(tree[side], dtype=np.int64)
            arrays[side].append(np.where(children >= 0, children + base, -1))
        arrays["feature"].append(np.maximum(np.asarray(tree["feature"], dtype=np.int64), 0))
        arrays["threshold"].append(np.asarray(tree["threshold"], dtype=np.float64))
        arrays["default_left"].append(np.asarray(tree["default_left"], dtype=bool))
        arrays["missing"].append(np.asarray(tree.get("missing", np.full(n, MISSING_DEFAULT)), dtype=np.int8))
        arrays["value"].append(np.asarray(tree["value"], dtype=np.float64).reshape(n, n_outputs))
        arrays["cover"].append(np.asarray(tree["cover"], dtype=np.float64))
        base += n
    return {name: np.concatenate(parts) for name, parts in arrays.items()} | {"offset": np.zeros(n_outputs)}


def _explainer(framework, model, info, sample) -> tuple[bytes, dict]:
    from ...server.explain import Explainer, pack
    from ...server.treeshap import path_splits
    from .preprocess import program

    if framework is None:
        raise Unexplained("an uploaded ONNX graph is scored as it is, and explain() has no exact method for a graph")
    steps, estimator = _split(model)
    final = importlib.import_module(f"{__name__}.{framework.name}").final(estimator, info)
    if final.method == "tree_shap":
        splits = path_splits(final.arrays["left"], final.arrays["right"])
        if splits > MAX_SPLITS:
            raise Unexplained(f"its trees' leaves sit on paths of {splits:,} splits in all, more than explain() "
                              f"takes ({MAX_SPLITS:,}): explaining a row would take a tenth of a second or more; "
                              "fewer or shallower trees (max_depth, min_samples_leaf) can be explained")
    meta = {"method": final.method, "outputs": final.outputs, "n_features": len(info.schema.names), **final.meta}
    arrays = dict(final.arrays)
    if steps:
        meta["columns"], arrays["affine"] = program(steps, len(info.schema.names))
    frame, source = _check_frame(framework, model, info, sample, None if steps else final)
    rows, inputs = _server_rows(frame, info), _model_input(frame, info)
    expected = _raw(final, _through(steps, inputs))
    explainer = Explainer(meta | {"output": ""}, arrays)
    try:
        got = explainer.raw(rows)
    except (ValueError, TypeError, KeyError) as exc:
        raise Unexplained(f"its preprocessing cannot be followed on the sample rows: {exc}") from None
    if final.method == "tree_shap":
        # What the model adds to its trees (a booster's base score, an initial estimator's constant).
        arrays["offset"] = np.mean(expected - got, axis=0)
        got = got + arrays["offset"]
    elif final.method == "linear":
        arrays["mean"] = _background_mean(explainer, steps, info, sample)
    meta["output"] = _output_space(final, estimator, info, _through(steps, inputs), expected)
    agreement = _agreement(got, expected) | {"rows": len(frame), "rows_from": source}
    if not agreement["agrees"]:
        raise Unexplained(f"its {final.method} explainer disagrees with the model on the check rows "
                          f"(largest difference {agreement['max_abs_diff']:.3g})")
    payload = pack(meta, arrays)
    return payload, {"explained": True, "method": final.method, "output": meta["output"], "bytes": len(payload),
                     "agreement": agreement}


def _split(model) -> tuple[list, object]:
    """(the fitted steps before the final estimator, that estimator), through nested Pipelines."""
    steps = []
    while type(model).__name__ == "Pipeline" and hasattr(model, "steps"):
        *head, (_, model) = model.steps
        steps += [step for _, step in head]
    return steps, model


def _check_frame(framework, model, info, sample, trees: Final | None):
    """The rows compile.py checks the ONNX graph with (drawn, without a sample, between the split thresholds of
    ``trees`` when the framework knows no bounds); for a model that accepts missing values, with copies of some
    holding a hole in each feature that takes one, as the server hands it over (schema.missing_values)."""
    import pandas as pd

    from ..compile import NotCompiled, check_rows

    def bounds(model, n_features: int):
        found = framework.feature_bounds(model, n_features)
        if found is None and trees is not None and trees.method == "tree_shap":
            found = _threshold_bounds(trees.arrays, n_features)
        return found

    try:
        frame, source = check_rows(model, info, sample, bounds)
    except NotCompiled as exc:
        raise Unexplained(f"no rows to check the explainer with: {exc}", sqlstate=NoExplainer.sqlstate) from None
    if not info.schema.accepts_nan:
        return frame, source
    complete = frame.head(200)
    holes = np.random.default_rng(0).random(complete.shape) < 0.2

    def with_holes(position: int, name: str, kind: str, takes: bool, marker):
        column = complete[name]
        if not takes:
            return column
        if kind == NUMBER:
            return column.astype(np.float64).mask(holes[:, position])
        return column.astype(object).mask(holes[:, position], marker)

    schema = info.schema
    gaps = pd.DataFrame({name: with_holes(position, name, kind, takes, marker) for position, (name, kind, takes, marker)
                         in enumerate(zip(schema.names, schema.types, schema.accepts_missing, schema.missing_values))})
    return pd.concat([frame, gaps], ignore_index=True), source


def _threshold_bounds(arrays: dict, n_features: int):
    """(low, high) per feature a little beyond the thresholds the trees split it at."""
    from ..frameworks.native import split_bounds

    internal = arrays["left"] >= 0
    features, thresholds = arrays["feature"][internal], arrays["threshold"][internal]
    return split_bounds(((f, thresholds[features == f]) for f in np.unique(features)), list(range(n_features)))


def _server_rows(frame, info):
    """The rows as server/features.py hands them over: floats, text, NaN for a missing value."""
    if not info.schema.string_features:
        return frame.to_numpy(dtype=np.float64)
    return [[np.nan if value is None or (isinstance(value, float) and value != value) else
             (float(value) if kind == NUMBER else value) for value, kind in zip(row, info.schema.types)]
            for row in frame.itertuples(index=False)]


def _model_input(frame, info):
    """The rows as the model takes them (the server's scikit-learn engine, server/engines.py)."""
    return frame if info.schema.input_kind == "frame" else frame.to_numpy(dtype=np.float64)


def _through(steps: list, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for step in steps:
            if step is not None and not (isinstance(step, str) and step == "passthrough"):
                X = step.transform(X)
    return X.toarray() if hasattr(X, "toarray") else X


def _raw(final: Final, X) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = np.asarray(final.raw(X), dtype=np.float64)
    return raw.reshape(len(raw), -1)


def _background_mean(explainer, steps: list, info, sample) -> np.ndarray:
    """A linear model's background: the mean of its transformed input over the sample; without one, over the
    training data a leading StandardScaler or mean SimpleImputer learned the mean of (the program is affine)."""
    import pandas as pd

    if sample is not None:
        frame = sample if hasattr(sample, "columns") else pd.DataFrame(np.asarray(sample), columns=info.schema.names)
        frame = frame[list(info.schema.names)]
        if len(frame) > BACKGROUND_ROWS:
            frame = frame.sample(BACKGROUND_ROWS, random_state=0)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-NaN column: refused below
            mean = np.nanmean(explainer.transformed(_server_rows(frame, info)), axis=0)
        if np.all(np.isfinite(mean)):
            return mean
    elif steps and not info.schema.string_features:
        first = steps[0]
        means = {"StandardScaler": getattr(first, "mean_", None) if getattr(first, "with_mean", False) else None,
                 "SimpleImputer": getattr(first, "statistics_", None) if getattr(first, "strategy", "") == "mean"
                 else None}.get(type(first).__name__)
        if means is not None:
            return explainer.transformed(np.asarray(means, dtype=np.float64).reshape(1, -1))[0]
    raise Unexplained("a linear model is explained against the mean of its training data, and the upload had "
                      "no sample to take it from", sqlstate=NoExplainer.sqlstate)


def _output_space(final: Final, estimator, info, X, raw: np.ndarray) -> str:
    """What the explained output is (server/explain.py): the prediction itself, probabilities, log-odds, or a
    margin the model turns into its prediction some other way."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if info.task == "regression":
            predicted = np.asarray(estimator.predict(X), dtype=np.float64).reshape(raw.shape)
            return "value" if np.allclose(predicted, raw, rtol=RTOL, atol=ATOL) else "margin"
        if final.probability:
            return "probability"
        if final.outputs == "binary" and hasattr(estimator, "predict_proba"):
            positive = np.asarray(estimator.predict_proba(X), dtype=np.float64)[:, 1]
            if np.allclose(positive, 1.0 / (1.0 + np.exp(-raw[:, 0])), rtol=RTOL, atol=ATOL):
                return "log_odds"
    return "margin"


def _agreement(got: np.ndarray, expected: np.ndarray) -> dict:
    if got.shape != expected.shape:
        return {"agrees": False, "max_abs_diff": float("inf")}
    atol = ATOL + RTOL * float(np.max(np.abs(expected), initial=0.0))
    return {"agrees": bool(np.allclose(got, expected, rtol=RTOL, atol=atol)), "rtol": RTOL, "atol": atol,
            "max_abs_diff": float(np.max(np.abs(got - expected), initial=0.0))}

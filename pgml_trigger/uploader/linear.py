"""Linear models as SQL arithmetic: what a row trigger can compute without calling into Python.

A row trigger that calls a PL/Python function pays several microseconds a
row before the model does anything (the call, and the float8[] turned into
a list; see docs/performance.md). For a pipeline of affine
scalers ending in a linear model, the prediction is an intercept plus a dot
product, which the generated PL/pgSQL trigger can evaluate itself
(sql/triggers.sql writes it from the form made here).

The form, stored with the version as ``models.linear_form``:

* the scalers are folded into the coefficients: one intercept and one row of
  coefficients per decision (one for a regressor or a binary classifier, one
  per class otherwise), in the model's feature order;
* everything is multiplied by ``scale``, a power of two (so exactly), chosen
  so that every nonzero coefficient is at least 1 in magnitude: PostgreSQL
  raises an error when a product of nonzero float8s underflows to zero, and
  with such coefficients no product of a nonzero feature can;
* ``labels`` (and ``values``, when every class is a number) of a
  classifier: what it writes to a text (numeric) output column;
* ``bound``: the trigger takes this path only when every feature lies
  strictly within +/- bound, small enough that no sum can overflow, and
  within float32's range, beyond which the Python path may refuse a number
  (a graph in float32). Other rows (a NULL, NaN, an infinity, a huge value)
  go to the Python path, with its missing-value policy and its errors. So an
  imputer ahead of the model is the identity here: it fills nothing in a
  row the arithmetic takes.

The trigger evaluates ``intercept + c1 * x1 + c2 * x2 + ...`` left to right;
:func:`evaluate` does the same in numpy, operation by operation, so the
agreement checked here at upload is the trigger's own.
"""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from ..schema import is_number
from .describe import ModelInfo

RTOL = 1e-9  # regression values; class labels must be identical
ATOL = 1e-9
# Largest magnitude a sum may reach: a quarter of the float8 range leaves room for the last additions.
_SUM_LIMIT = sys.float_info.max / 4
_FLOAT32_BOUND = 2.0 ** 127  # a power of two below float32's largest number

_REGRESSORS = {
    "LinearRegression", "Ridge", "RidgeCV", "Lasso", "LassoCV", "ElasticNet", "ElasticNetCV", "Lars", "LarsCV",
    "LassoLars", "LassoLarsCV", "LassoLarsIC", "OrthogonalMatchingPursuit", "OrthogonalMatchingPursuitCV",
    "BayesianRidge", "ARDRegression", "HuberRegressor", "SGDRegressor", "PassiveAggressiveRegressor",
    "TheilSenRegressor", "QuantileRegressor", "LinearSVR",
}
# predict() is the sign of decision_function() (two classes) or its first argmax (more)
_CLASSIFIERS = {
    "LogisticRegression", "LogisticRegressionCV", "RidgeClassifier", "RidgeClassifierCV", "SGDClassifier",
    "Perceptron", "PassiveAggressiveClassifier", "LinearSVC",
}


def linear_form(model, info: ModelInfo, sample=None) -> dict | None:
    """The model as SQL arithmetic, checked against ``model.predict``; None if it is not linear or the
    arithmetic disagrees with it. Checked on the rows compile.py checks ONNX with, or else (a bare linear
    model reveals no feature ranges) on normal rows at two scales: an affine function is wrong somewhere
    near the origin if it is wrong anywhere."""
    if info.schema.string_features:
        return None
    folded = _fold(model, len(info.schema.names))
    if folded is None:
        return None
    intercepts, coefficients = folded
    if info.task == "classification" and len(coefficients) != (1 if len(info.classes) == 2 else len(info.classes)):
        return None
    if info.task == "regression" and len(coefficients) != 1:
        return None  # several outputs
    form = _scaled(intercepts, coefficients)
    if form is None:
        return None
    if info.task == "classification":
        # As the Python path outputs them: str() of the label, and for a numeric column its float
        form["labels"] = [str(label) for label in info.classes]
        form["values"] = [float(label) for label in info.classes] if all(map(is_number, info.classes)) else None
    rows, source = _check_rows(model, info, sample)
    form["agreement"] = _agreement(model, info, form, rows) | {"rows_from": source}
    return form if form["agreement"]["agrees"] else None


def evaluate(form: dict, rows: np.ndarray) -> np.ndarray:
    """The scaled decisions (rows x decisions) as the trigger computes them."""
    decisions = []
    for intercept, coefficients in zip(form["intercepts"], form["coefficients"]):
        decision = np.full(len(rows), intercept, dtype=np.float64)
        for column, coefficient in enumerate(coefficients):
            decision = decision + coefficient * rows[:, column]
        decisions.append(decision)
    return np.stack(decisions, axis=1)


def predictions(form: dict, info: ModelInfo, rows: np.ndarray) -> np.ndarray:
    """What the trigger outputs for ``rows``: values, or class labels as the JSON scalars of info.classes."""
    decisions = evaluate(form, rows)
    if info.task == "regression":
        return decisions[:, 0] / form["scale"]
    classes = np.asarray(info.classes, dtype=object)
    if decisions.shape[1] == 1:
        return classes[(decisions[:, 0] > 0).astype(int)]
    return classes[np.argmax(decisions, axis=1)]  # the first of equal decisions, like the trigger's CASE


def _fold(model, n_features: int):
    """(intercepts, coefficients) of the decision functions in terms of the raw features, or None."""
    from sklearn.pipeline import Pipeline

    steps = [step for _, step in model.steps] if isinstance(model, Pipeline) else [model]
    *transforms, estimator = steps
    if type(estimator).__name__ not in _REGRESSORS | _CLASSIFIERS or not _from_sklearn(estimator):
        return None
    multiplier, offset = np.ones(n_features), np.zeros(n_features)  # transformed x = multiplier * x + offset
    for transform in transforms:
        if transform is None or transform == "passthrough":
            continue
        affine = _affine(transform, n_features)
        if affine is None:
            return None
        step_multiplier, step_offset = affine
        multiplier, offset = multiplier * step_multiplier, offset * step_multiplier + step_offset
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
    intercept = np.broadcast_to(np.asarray(estimator.intercept_, dtype=np.float64), (coef.shape[0],))
    if coef.shape[1] != n_features:
        return None
    coefficients = coef * multiplier
    intercepts = intercept + coef @ offset
    if not (np.all(np.isfinite(coefficients)) and np.all(np.isfinite(intercepts))):
        return None
    return intercepts, coefficients


def _affine(transform, n_features: int):
    """(multiplier, offset) per feature of an elementwise affine scaler, or None for anything else."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, RobustScaler, StandardScaler

    ones, zeros = np.ones(n_features), np.zeros(n_features)
    if type(transform) is SimpleImputer and _fills_only_nan(transform, n_features):
        return ones, zeros  # a complete row passes unchanged (the trigger takes no other)
    if type(transform) is StandardScaler:
        center = transform.mean_ if transform.mean_ is not None else zeros
        scale = transform.scale_ if transform.scale_ is not None else ones
    elif type(transform) is RobustScaler:
        center = transform.center_ if transform.center_ is not None else zeros
        scale = transform.scale_ if transform.scale_ is not None else ones
    elif type(transform) is MaxAbsScaler:
        center, scale = zeros, transform.scale_
    elif type(transform) is MinMaxScaler and not transform.clip:
        return np.asarray(transform.scale_, dtype=np.float64), np.asarray(transform.min_, dtype=np.float64)
    else:
        return None
    scale = np.asarray(scale, dtype=np.float64)
    return 1.0 / scale, -np.asarray(center, dtype=np.float64) / scale


def _fills_only_nan(imputer, n_features: int) -> bool:
    """Whether a fitted SimpleImputer changes nothing in a row without NaN: it looks for NaN, adds no indicator
    and drops no column (one that was empty in training)."""
    missing = imputer.missing_values
    if imputer.add_indicator or not (isinstance(missing, float) and math.isnan(missing)):
        return False
    try:
        statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    except (TypeError, ValueError):  # text statistics (most_frequent over strings): not a numeric model
        return False
    return len(statistics) == n_features and not np.isnan(statistics).any()


def _from_sklearn(estimator) -> bool:
    return type(estimator).__module__.split(".")[:2] in (["sklearn", "linear_model"], ["sklearn", "svm"])


def _scaled(intercepts: np.ndarray, coefficients: np.ndarray) -> dict | None:
    nonzero = np.abs(coefficients[coefficients != 0])
    scale = 2.0 ** max(0, -math.floor(math.log2(nonzero.min()))) if nonzero.size else 1.0
    scaled_coefficients, scaled_intercepts = coefficients * scale, intercepts * scale
    if not (np.all(np.isfinite(scaled_coefficients)) and np.all(np.isfinite(scaled_intercepts))):
        return None
    # Every sum stays within _SUM_LIMIT when each |x| < bound: bound * sum|c| + |intercept| <= _SUM_LIMIT.
    room = _SUM_LIMIT - np.max(np.abs(scaled_intercepts))
    weight = max(float(np.max(np.sum(np.abs(scaled_coefficients), axis=1))), 1.0)
    if room <= 0:
        return None
    bound = min(2.0 ** math.floor(math.log2(room / weight)), _FLOAT32_BOUND)
    return {"scale": scale, "bound": bound, "intercepts": scaled_intercepts.tolist(),
            "coefficients": scaled_coefficients.tolist()}


def _check_rows(model, info: ModelInfo, sample) -> tuple[np.ndarray, str]:
    from .compile import NotCompiled, check_rows

    try:
        frame, source = check_rows(model, info, sample)
        rows = frame.to_numpy(dtype=np.float64)
        return rows[~np.isnan(rows).any(axis=1)], source  # the trigger leaves rows with a hole to Python
    except NotCompiled:
        rng = np.random.default_rng(0)
        width = len(info.schema.names)
        return np.vstack([rng.normal(size=(250, width)), rng.normal(scale=1000.0, size=(250, width))]), "synthesized"


def _agreement(model, info: ModelInfo, form: dict, rows: np.ndarray) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # feature-name warnings for models fitted on frames
        expected = np.asarray(model.predict(rows))
    got = predictions(form, info, rows)
    agreement = {"rows": len(rows), "rtol": RTOL, "atol": ATOL}
    if info.task == "classification":
        classes = np.asarray(info.classes, dtype=object)
        expected_labels = classes[np.searchsorted(np.asarray(model.classes_), expected)]
        agreement["label_mismatches"] = int(np.sum(got != expected_labels))
        agreement["agrees"] = agreement["label_mismatches"] == 0
    else:
        expected = expected.astype(np.float64).ravel()
        agreement["max_abs_diff_value"] = float(np.max(np.abs(got - expected), initial=0.0))
        agreement["agrees"] = bool(np.allclose(got, expected, rtol=RTOL, atol=ATOL))
    return agreement

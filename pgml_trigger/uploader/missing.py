"""Which features of a fitted model may be missing, and how a missing one is passed: found by what the model
does with one, feature by feature, rather than by what its outer estimator says.

scikit-learn's ``allow_nan`` tag is the outer estimator's, and neither a Pipeline nor a ColumnTransformer
passes on that an imputer inside fills the holes. So a few rows the model scores are given to it again with
one feature missing at a time. Where it still predicts finite values, the feature is accepted: an imputer
filled it (SimpleImputer, IterativeImputer, KNNImputer, with or without add_indicator), an encoder took it as
a category, or the final estimator takes missing values itself (HistGradientBoosting*, trees and forests of a
scikit-learn that routes them, XGBoost, LightGBM, CatBoost). Where it does not, the rows are walked through
the fitted structure the way the data flows (a Pipeline's steps in order, a ColumnTransformer's branches on
the columns each selects, its remainder too, a FeatureUnion's parts side by side) to the step that raises, or
the final estimator that answers NaN: the server's error for a NULL there names that step.

A missing number is NaN. A missing text value is what the training frame held: the sample's own (None in an
object column, else NaN); without one there, None where the step first seeing the column learned None as a
category, else NaN (pandas' missing text, and what SimpleImputer looks for by default).

The same rows with one number just beyond float32's range tell which features the model reads as float32
(trees and forests cast their input): there the server refuses such a number (22003), where the model would
otherwise take it as infinity.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..schema import FLOAT32_MAX, MISSING_MARKERS, NUMBER, STRING, FeatureInput, refusing
from ..server.engines import model_frame

CHECK_ROWS = 5
_BEYOND_FLOAT32 = 3.5e38
_NO_ROWS = "the model (it scores none of the rows pgml_trigger checks it with; pass sample= to upload())"


def feature_inputs(model, names: list[str], types: list[str], input_kind: str, task: str,
                   sample=None) -> tuple[FeatureInput, ...]:
    """Per feature: how a missing value is passed to ``model`` or which step refuses it, whether it was fitted on
    booleans, and the largest number it takes."""
    probe = _Probe(model, names, types, input_kind, task)
    base = [row for row in _base_rows(model, names, types, sample) if probe.finite([row]).all()]
    if not base:
        return refusing(names, _NO_ROWS)
    markers = [_missing_marker(model, name, kind, sample) for name, kind in zip(names, types)]
    refused_by = probe.refusals(base, [MISSING_MARKERS[marker] for marker in markers], range(len(names)))
    numbers = [p for p, kind in enumerate(types) if kind == NUMBER]
    too_large = probe.refusals(base, [_BEYOND_FLOAT32] * len(names), numbers)
    booleans = _fitted_on_booleans(names, sample)
    return tuple(FeatureInput(missing=None if refused_by[p] else markers[p], refused_by=refused_by[p] or None,
                              booleans=names[p] in booleans, largest=FLOAT32_MAX if too_large[p] else None)
                 for p in range(len(names)))


class _Probe:
    """Scores rows of feature values with the model as the server gives them to it (engines.model_frame)."""

    def __init__(self, model, names, types, input_kind, task):
        self.model, self.names, self.types = model, names, types
        self.as_frame = input_kind == "frame"
        self.proba = task == "classification" and hasattr(model, "predict_proba")

    def input(self, rows):
        if self.as_frame:
            return model_frame(self.names, self.types, rows)
        return np.asarray(rows, dtype=np.float64).reshape(-1, len(self.names))

    def finite(self, rows) -> np.ndarray:
        """Per row, whether the model predicts a finite value (probabilities) for it; all False when it raises."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NaN and huge numbers make numpy and scikit-learn talk
            try:
                X = self.input(rows)
                scores = self.model.predict_proba(X) if self.proba else self.model.predict(X)
            except Exception:  # whatever the model raises, it does not take these rows
                return np.zeros(len(rows), dtype=bool)
        scores = np.asarray(scores).reshape(len(rows), -1)
        if scores.dtype.kind not in "fc":
            return np.ones(len(rows), dtype=bool)  # class labels: there is no NaN to tell
        return np.isfinite(scores).all(axis=1)

    def refusals(self, base: list[list], values: list, tried) -> list[str]:
        """Per feature, '' where the model scores ``base`` with that feature set to values[position] (or where
        that is not tried), else the step that refuses it. All at once first: a model taking them all is asked
        once."""
        changed = {p: [_with(row, p, values[p]) for row in base] for p in tried}
        all_rows = [row for rows in changed.values() for row in rows]
        if all_rows and self.finite(all_rows).all():
            return [""] * len(values)
        return ["" if p not in changed or self.finite(changed[p]).all() else self.refuser(changed[p])
                for p in range(len(values))]

    def refuser(self, rows) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _refuser(self.model, self.input(rows), [], self.proba)


def _with(row: list, position: int, value) -> list:
    changed = list(row)
    changed[position] = value
    return changed


def _refuser(estimator, X, path: list[str], proba: bool) -> str:
    """The step of ``estimator`` that refuses ``X``: the first along the data's way that raises, else the final
    estimator (which answered NaN); named with the path to it."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(estimator, Pipeline):
        steps = [(name, step) for name, step in estimator.steps if step not in (None, "passthrough")]
        for name, step in steps[:-1]:
            try:
                X = step.transform(X)
            except Exception:
                return _refuser(step, X, [*path, f"step '{name}'"], proba)
        name, last = steps[-1]
        return _refuser(last, X, [*path, f"step '{name}'"], proba)
    if isinstance(estimator, ColumnTransformer):
        columns = estimator._transformer_to_input_indices  # fitted: branch name -> its input columns' positions
        for name, transformer, _ in estimator.transformers_:
            part = X.iloc[:, columns[name]] if hasattr(X, "iloc") else X[:, columns[name]]
            if _refuses(transformer, part):
                return _refuser(transformer, part, [*path, f"branch '{name}'"], proba)
    if isinstance(estimator, FeatureUnion):
        for name, part in estimator.transformer_list:
            if part != "drop" and _refuses(part, X):
                return _refuser(part, X, [*path, f"part '{name}'"], proba)
    kind = type(estimator).__name__
    return f"{kind} ({' > '.join(path)})" if path else kind


def _refuses(transformer, X) -> bool:
    if isinstance(transformer, str):  # "drop", "passthrough"
        return False
    try:
        transformer.transform(X)
    except Exception:
        return True
    return False


def _base_rows(model, names: list[str], types: list[str], sample) -> list[list]:
    """A few complete rows the model scores: the sample's first, else values the fitted model reveals."""
    import pandas as pd

    if sample is not None and hasattr(sample, "columns") and not set(names) <= set(sample.columns):
        # A model that kept no column names (a pipeline ending in CatBoost) took the frame's columns in order.
        sample = sample.to_numpy() if sample.shape[1] == len(names) else None
    if sample is not None:
        frame = sample if hasattr(sample, "columns") else pd.DataFrame(np.asarray(sample), columns=names)
        head = frame[names].head(1000)
        complete = head.dropna().head(CHECK_ROWS)
        if len(complete):
            return [[_plain(value) for value in row] for row in complete.itertuples(index=False)]
        # No complete row: each feature's first value present in the sample
        return [[_plain(head[name].dropna().iloc[0]) if head[name].notna().any() else _made_up(model, name, kind)
                 for name, kind in zip(names, types)]]
    from .compile import feature_bounds

    bounds = feature_bounds(model, len(names)) if STRING not in types else None
    row = [_made_up(model, name, kind) for name, kind in zip(names, types)]
    if bounds is None:
        return [row]
    low, high = bounds
    return [row, [float(value) for value in (np.asarray(low) + np.asarray(high)) / 2]]


def _made_up(model, name: str, kind: str):
    """A value for a feature the sample does not give: zero, or a text value the model learned for it."""
    if kind == NUMBER:
        return 0.0
    learned = _learned_values(model, name)
    return next((value for value in learned if isinstance(value, str)), "")


def _learned_values(model, name: str) -> list:
    """The values (categories) the first fitted step seeing a text column learned for it, if it learned any."""
    from .describe import _encoded_columns

    for columns, fitted in _encoded_columns(model):
        if name in columns:
            position = columns.index(name)
            categories = getattr(fitted, "categories_", None)
            if categories is not None and position < len(categories):
                return list(categories[position])
            statistics = getattr(fitted, "statistics_", None)
            if statistics is not None and position < len(statistics):
                return [statistics[position]]
    return []


def _missing_marker(model, name: str, kind: str, sample) -> str:
    """How a missing value of the feature is passed: "NaN", or "None" for a text feature fitted on None."""
    if kind == NUMBER:
        return "NaN"
    if sample is not None and hasattr(sample, "columns") and name in sample.columns:
        column = sample[name]
        holes = column[column.isna()]
        if len(holes):
            return "None" if any(value is None for value in holes) else "NaN"
    return "None" if any(value is None for value in _learned_values(model, name)) else "NaN"


def _fitted_on_booleans(names: list[str], sample) -> set[str]:
    if sample is None or not hasattr(sample, "dtypes"):
        return set()
    return {name for name in names if name in sample.columns and sample[name].dtype.kind == "b"}


def _plain(value):
    """A numpy scalar as the Python value the server holds."""
    return value.item() if isinstance(value, np.generic) else value

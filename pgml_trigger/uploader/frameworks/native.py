"""A library's own booster (not its scikit-learn wrapper) with the predict()/predict_proba() pgml_trigger calls.

``xgboost.train`` gives an ``xgboost.Booster``, ``lightgbm.train`` a ``lightgbm.Booster``: objects with a
predict() of their own kind (a DMatrix, probabilities of the positive class only, ...). The uploader puts
such a booster into the framework's subclass of ``NativeModel``, and that is what is described, checked
against its ONNX graph, stored in the joblib payload and, where the graph does not score, called by the
server's scikit-learn engine like any estimator.
"""

from __future__ import annotations

import numpy as np

from ...errors import InvalidModel
from ...schema import NUMBER, FeatureInput, FeatureSchema
from ..describe import ModelInfo


class NativeModel:
    def __init__(self, booster, task: str, classes: list | None, feature_names: list[str]):
        self.booster = booster
        self.task = task
        self.classes_ = np.asarray(classes, dtype=object) if classes is not None else None
        self.feature_names = list(feature_names)
        self.n_features_in_ = len(self.feature_names)

    def predict(self, X) -> np.ndarray:
        scores = self.scores(np.asarray(X, dtype=np.float64))
        return scores if self.task == "regression" else self.classes_[np.argmax(scores, axis=1)]

    def predict_proba(self, X) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError(f"a {self.task} booster has no class probabilities")
        return self.scores(np.asarray(X, dtype=np.float64))

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities [N, n_classes] of a classifier, values [N] of a regressor."""
        raise NotImplementedError

    def info(self) -> ModelInfo:
        classes = None if self.classes_ is None else [
            label.item() if isinstance(label, np.generic) else label for label in self.classes_]
        # Boosters route a missing value down a learned branch, so every one of them accepts NaN.
        schema = FeatureSchema(names=tuple(self.feature_names), types=(NUMBER,) * self.n_features_in_,
                               inputs=(FeatureInput(missing="NaN"),) * self.n_features_in_, input_kind="array")
        return ModelInfo(task=self.task, classes=classes, schema=schema)


def both_classes(positive: np.ndarray) -> np.ndarray:
    """[N, 2] probabilities from a binary booster's probability of the second class."""
    positive = np.asarray(positive, dtype=np.float64).reshape(-1)
    return np.column_stack([1.0 - positive, positive])


def resolve(kind: str, task: str | None, found_task: str | None, n_classes: int, classes,
            names: list[str] | None, n_features: int, feature_names) -> tuple[str, list | None, list[str]]:
    """(task, classes, feature names) of a native booster, from what it says and the upload's arguments."""
    if found_task is None:
        raise InvalidModel(f"cannot tell whether this {kind} classifies or regresses from its objective; "
                           "only classification (binary, multiclass with probabilities) and regression objectives "
                           "are supported")
    if task is not None and task != found_task:
        raise InvalidModel(f"task={task!r}, but the {kind}'s objective is {found_task}")
    if found_task == "classification":
        classes = list(classes) if classes is not None else list(range(n_classes))
        if len(classes) != n_classes:
            raise InvalidModel(f"classes= names {len(classes)} classes; the {kind} has {n_classes}")
    elif classes is not None:
        raise InvalidModel(f"classes= given for a regressor ({kind})")
    if feature_names is not None:
        names = [str(name) for name in feature_names]
        if len(names) != n_features:
            raise InvalidModel(f"feature_names has {len(names)} names but the {kind} takes {n_features} features")
    elif names is None:
        names = [f"x{i}" for i in range(n_features)]
    if len(set(names)) != len(names):
        raise InvalidModel(f"feature names must be unique: {names}")
    return found_task, classes, names


def split_bounds(thresholds_by_feature, names: list[str]):
    """(low, high) per feature a little beyond its split thresholds (features never split on: -1, 1)."""
    low, high = np.full(len(names), -1.0), np.full(len(names), 1.0)
    position = {name: index for index, name in enumerate(names)}
    for feature, thresholds in thresholds_by_feature:
        if feature in position:
            low[position[feature]], high[position[feature]] = float(thresholds.min()), float(thresholds.max())
    margin = np.maximum((high - low) * 0.1, 1e-3)
    return low - margin, high + margin

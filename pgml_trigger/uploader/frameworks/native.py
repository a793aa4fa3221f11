"""A library's own booster (not its scikit-learn wrapper) with the predict()/predict_proba() pgml_trigger calls.

``xgboost.train`` gives an ``xgboost.Booster``, ``lightgbm.train`` a ``lightgbm.Booster``: objects with a
predict() of their own kind (a DMatrix, probabilities of the positive class only, ...). The uploader puts
such a booster into the framework's subclass of ``NativeModel``, and that is what is described, checked
against its ONNX graph, stored in the joblib payload and, where the graph does not score, called by the
server's scikit-learn engine like any estimator.

``BoosterFramework`` is what such a library's framework shares: a native booster is read (``read``) and
wrapped, described by its wrapper, converted by the library's own converter, and bounded by its split
thresholds; the library's scikit-learn API goes the scikit-learn way, through skl2onnx with the library's
converter registered. A library's module gives only what is its own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from ...errors import InvalidModel
from ...schema import NUMBER, FeatureInput, FeatureSchema
from ..describe import ModelInfo, feature_names_of
from . import Framework, final_step

# onnxmltools' tree converters write ai.onnx.ml operators of this version; skl2onnx must not ask for newer.
ML_OPSET = 3


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


@dataclass(frozen=True)
class BoosterReading:
    """What a native booster says of itself."""

    kind: str  # how messages name it: "xgboost.Booster (objective reg:squarederror)"
    task: str | None  # from its objective; None when that neither classifies nor regresses
    n_classes: int
    feature_names: list[str] | None  # None when the library made them up
    n_features: int
    classes: list | None = None  # the labels it was trained on, where it keeps them


class BoosterFramework(Framework):
    """A library with a native booster and a scikit-learn API; subclasses give what is the library's own."""

    wrapper: type[NativeModel]  # the NativeModel subclass a native booster is stored and scored as

    def is_native(self, model) -> bool:
        """Whether ``model`` is the library's own booster (``xgboost.Booster``, ...), not its scikit-learn API."""
        return isinstance(model, importlib.import_module(self.library).Booster)

    def read(self, booster) -> BoosterReading:
        raise NotImplementedError

    def booster_to_onnx(self, booster, info: ModelInfo) -> bytes:
        raise NotImplementedError

    def register_converters(self) -> None:
        """Register the library's converter with skl2onnx for its scikit-learn API classes."""
        raise NotImplementedError

    def booster_of(self, estimator):
        """The booster inside a scikit-learn API estimator."""
        return estimator

    def booster_bounds(self, booster, n_features: int):
        """Per-feature (low, high) around the booster's split thresholds; None where they are not read."""
        return None

    def prepare(self, model, *, feature_names=None, classes=None, task=None):
        if not self.is_native(model):
            return super().prepare(model, feature_names=feature_names, classes=classes, task=task)
        task, classes, names = resolve(self.read(model), task, classes, feature_names)
        return self.wrapper(model, task, classes, names)

    def describe(self, model, feature_names=None, sample=None) -> ModelInfo:
        if isinstance(model, NativeModel):
            return model.info()
        return super().describe(model, feature_names, sample)

    def to_onnx(self, model, info: ModelInfo) -> bytes:
        if isinstance(model, NativeModel):
            return self.booster_to_onnx(model.booster, info)
        return self.estimator_to_onnx(model, info)

    def estimator_to_onnx(self, model, info: ModelInfo) -> bytes:
        """The scikit-learn API model, alone or ending a pipeline, as one skl2onnx graph."""
        from skl2onnx import get_latest_tested_opset_version

        from ..compile import convert_sklearn

        self.register_converters()
        opsets = {"": get_latest_tested_opset_version(), "ai.onnx.ml": ML_OPSET}
        return convert_sklearn(model, info, target_opset=opsets, classifier=final_step(model))

    def feature_bounds(self, model, n_features: int):
        if isinstance(model, NativeModel):
            booster = model.booster
        elif final_step(model) is model:
            booster = self.booster_of(model)
        else:  # in a pipeline the thresholds are in the space of its last transform: a leading scaler's ranges
            return super().feature_bounds(model, n_features)
        return self.booster_bounds(booster, n_features)


def both_classes(positive: np.ndarray) -> np.ndarray:
    """[N, 2] probabilities from a binary booster's probability of the second class."""
    positive = np.asarray(positive, dtype=np.float64).reshape(-1)
    return np.column_stack([1.0 - positive, positive])


def resolve(booster: BoosterReading, task: str | None, classes, feature_names) -> tuple[str, list | None, list[str]]:
    """(task, classes, feature names) of a native booster, from what it says and the upload's arguments."""
    kind = booster.kind
    if booster.task is None:
        raise InvalidModel(f"cannot tell whether this {kind} classifies or regresses from its objective; "
                           "only classification (binary, multiclass with probabilities) and regression objectives "
                           "are supported")
    if task is not None and task != booster.task:
        raise InvalidModel(f"task={task!r}, but the {kind}'s objective is {booster.task}")
    classes = classes if classes is not None else booster.classes
    if booster.task == "classification":
        classes = list(classes) if classes is not None else list(range(booster.n_classes))
        if len(classes) != booster.n_classes:
            raise InvalidModel(f"classes= names {len(classes)} classes; the {kind} has {booster.n_classes}")
    elif classes is not None:
        raise InvalidModel(f"classes= given for a regressor ({kind})")
    names = feature_names_of(feature_names, booster.n_features, carried=booster.feature_names,
                             takes=f"the {kind} takes")
    return booster.task, classes, names


def split_bounds(thresholds_by_feature, names: list[str]):
    """(low, high) per feature a little beyond its split thresholds (features never split on: -1, 1)."""
    low, high = np.full(len(names), -1.0), np.full(len(names), 1.0)
    position = {name: index for index, name in enumerate(names)}
    for feature, thresholds in thresholds_by_feature:
        if feature in position:
            low[position[feature]], high[position[feature]] = float(thresholds.min()), float(thresholds.max())
    margin = np.maximum((high - low) * 0.1, 1e-3)
    return low - margin, high + margin

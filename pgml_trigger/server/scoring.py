"""Where a row is scored: a deserialized model plus the metadata recorded at upload."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..errors import ModelRejectedInput, WrongModelKind
from .features import FeatureSchema


@dataclass
class LoadedModel:
    name: str
    version: int
    sha256: str
    task: str  # "classification" | "regression"
    classes: list | None
    schema: FeatureSchema
    estimator: object
    payload_bytes: int
    label: str = field(init=False)
    numeric_output: bool = field(init=False)

    def __post_init__(self) -> None:
        self.label = f"{self.name}@{self.version}"
        self.numeric_output = self.task == "regression" or all(_is_number(c) for c in self.classes)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.name, self.version, self.sha256)

    def predict(self, X) -> float:
        if not self.numeric_output:
            raise WrongModelKind(f"model {self.label} predicts text labels ({_preview_classes(self.classes)}), "
                                 "not numbers", hint="use pgml_trigger.predict_label() or a text output column")
        return float(self._call("predict", X)[0])

    def predict_label(self, X) -> str:
        if self.task != "classification":
            raise WrongModelKind(f"model {self.label} is a regressor; it has no class labels",
                                 hint="use pgml_trigger.predict() or a numeric output column")
        label = self._call("predict", X)[0]
        return str(label.item() if hasattr(label, "item") else label)

    def predict_proba(self, X) -> list[float]:
        if self.task != "classification":
            raise WrongModelKind(f"model {self.label} is a regressor; it has no class probabilities")
        if not hasattr(self.estimator, "predict_proba"):
            raise WrongModelKind(f"model {self.label} ({type(self.estimator).__name__}) does not estimate "
                                 "probabilities",
                                 hint="refit it with probabilities enabled, e.g. SVC(probability=True)")
        return [float(p) for p in self._call("predict_proba", X)[0]]

    def _call(self, method: str, X):
        try:
            return getattr(self.estimator, method)(X)
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise ModelRejectedInput(f"model {self.label} rejected the input: {exc}") from exc


def _is_number(label) -> bool:
    return isinstance(label, (int, float)) and not (isinstance(label, float) and math.isnan(label))


def _preview_classes(classes: list) -> str:
    shown = ", ".join(repr(c) for c in classes[:5])
    return shown + (", ..." if len(classes) > 5 else "")

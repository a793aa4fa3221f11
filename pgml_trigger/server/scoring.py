"""Where a row is scored: a deserialized model plus the metadata recorded at upload."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import FeatureOutOfRange, ModelRejectedInput, WrongModelKind
from ..schema import FeatureSchema, is_number
from .counters import Usage
from .engines import REJECTED_INPUT, OnnxEngine, SklearnEngine


@dataclass
class LoadedModel:
    name: str
    version: int
    sha256: str
    task: str  # "classification" | "regression"
    classes: list | None
    schema: FeatureSchema
    engine: OnnxEngine | SklearnEngine
    payload_bytes: int
    usage: Usage  # of this model in this backend
    # Where rows with a missing value go when the compiled graph would score them unlike scikit-learn:
    # loads the joblib payload the first time such a row comes (not counted in payload_bytes).
    missing_value_engine: Callable[[], SklearnEngine] | None = None
    # A big compiled graph not built yet (load_plan.defers_graph): what builds it, once usage.seconds (spent
    # scoring) reaches graph_after; until then ``engine`` is the model's own payload.
    graph_later: Callable[[], tuple[OnnxEngine, int]] | None = None
    graph_after: float = 0.0
    load_seconds: float = 0.0  # fetching, checking and deserializing the payload, in this backend
    load_stages: dict = field(default_factory=dict)  # of those: import, fetch, sha256, deserialize, onnxruntime session
    label: str = field(init=False)
    numeric_output: bool = field(init=False)
    _fallback: SklearnEngine | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.label = f"{self.name}@{self.version}"
        self.numeric_output = self.task == "regression" or all(is_number(c) for c in self.classes)

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.name, self.version, self.sha256)

    @property
    def scoring_path(self) -> str:
        return self.engine.scoring_path

    def predict(self, row) -> float:
        self._check_numeric_output()
        value = float(self._call_row("predict_row", row))
        if not math.isfinite(value):
            raise self._not_finite(value)
        return value

    def predict_label(self, row) -> str:
        self._check_classifier()
        label = self._call_row("predict_row", row)
        return str(label.item() if hasattr(label, "item") else label)

    def predict_proba(self, row) -> list[float]:
        self._check_classifier()
        if not self.engine.has_proba:
            raise WrongModelKind(f"model {self.label} ({type(self.engine.estimator).__name__}) does not estimate "
                                 "probabilities",
                                 hint="refit it with probabilities enabled, e.g. SVC(probability=True)")
        scores = self._call_row("predict_proba_row", row)
        if not math.isfinite(sum(scores)):
            raise self._not_finite(scores)
        return scores

    def predict_many(self, rows) -> list[float]:
        """Predictions for many rows (a float64 matrix or a list of rows) at once, in order."""
        self._check_numeric_output()
        if len(rows) == 0:
            return []
        values = self._call_rows("predict_rows", rows).astype(np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            row_index = int(np.argmin(finite))
            raise self._not_finite(values[row_index], f"row {row_index + 1}: ")
        return values.tolist()

    def _not_finite(self, value, where: str = "") -> FeatureOutOfRange:
        """A prediction that is no finite number: the model computed past float range (a feature far beyond what
        it was trained on, squared by PolynomialFeatures, ...) or on a value it cannot take."""
        return FeatureOutOfRange(f"{where}model {self.label} gives {value} for this row, not a finite number",
                                 hint="a feature is likely far outside the range the model was trained on")

    def predict_label_many(self, rows) -> list[str]:
        self._check_classifier()
        if len(rows) == 0:
            return []
        return [str(label) for label in self._call_rows("predict_rows", rows).tolist()]

    def _check_classifier(self) -> None:
        if self.task != "classification":
            raise WrongModelKind(f"model {self.label} is a regressor; it has no class labels or probabilities",
                                 hint="use pgml_trigger.predict() or a numeric output column")

    def _check_numeric_output(self) -> None:
        if not self.numeric_output:
            raise WrongModelKind(f"model {self.label} predicts text labels ({_preview_classes(self.classes)}), "
                                 "not numbers", hint="use pgml_trigger.predict_label() or a text output column")

    def _call_row(self, method: str, row):
        engine = self.engine
        if self.missing_value_engine is not None and self.schema.has_hole(row):
            engine = self._missing_value_engine()
        return self._call(engine, method, row)

    def _call_rows(self, method: str, rows) -> np.ndarray:
        if self.missing_value_engine is None:
            return self._call(self.engine, method, rows)
        if isinstance(rows, np.ndarray):
            holes = np.isnan(rows).any(axis=1)
        else:
            holes = np.fromiter(map(self.schema.has_hole, rows), dtype=bool, count=len(rows))
        if not holes.any():
            return self._call(self.engine, method, rows)
        result = np.empty(len(rows), dtype=object)
        result[holes] = list(self._call(self._missing_value_engine(), method, _taken(rows, holes)))
        if not holes.all():
            result[~holes] = list(self._call(self.engine, method, _taken(rows, ~holes)))
        return result

    def keep_missing_value_engine(self, engine: SklearnEngine) -> None:
        """The model's own engine, loaded already, for the rows with a missing value the graph cannot score."""
        self._fallback = engine

    def _missing_value_engine(self) -> SklearnEngine:
        if self._fallback is None:
            self._fallback = self.missing_value_engine()
        return self._fallback

    def _call(self, engine, method: str, rows):
        usage = self.usage
        started = time.perf_counter()
        try:
            result = getattr(engine, method)(rows)
        except REJECTED_INPUT as exc:
            usage.errors += 1
            raise ModelRejectedInput(f"model {self.label} rejected the input: {exc}") from exc
        usage.calls += 1
        usage.rows += len(rows) if method.endswith("_rows") else 1
        usage.seconds += time.perf_counter() - started
        return result


def _taken(rows, chosen: np.ndarray):
    """The chosen rows of a matrix or a list of rows."""
    return rows[chosen] if isinstance(rows, np.ndarray) else [rows[i] for i in np.flatnonzero(chosen)]


def _preview_classes(classes: list) -> str:
    shown = ", ".join(repr(c) for c in classes[:5])
    return shown + (", ..." if len(classes) > 5 else "")

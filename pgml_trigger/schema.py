"""The types a model's features are described by: shared by the uploader, which records them, and the
server, which reads rows by them. Imports nothing of pgml_trigger's."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property

NUMBER = "number"
STRING = "string"

# How a missing value reaches the model, by the name models.feature_inputs records (see FeatureInput).
MISSING_MARKERS = {"NaN": math.nan, "None": None}
# The largest float32: a model that reads its numbers as float32 (trees, an ONNX graph with float inputs) would
# take anything beyond it as infinity.
FLOAT32_MAX = 3.4028234663852886e38


@dataclass(frozen=True)
class FeatureInput:
    """What one feature takes besides values of its type, as the uploader found the fitted model to take it
    (pgml_trigger/uploader/missing.py); stored per feature in models.feature_inputs."""

    missing: str | None = None  # a NULL is passed as MISSING_MARKERS[missing]; None: the model refuses it
    refused_by: str | None = None  # the step that refuses a missing value, when one does
    booleans: bool = False  # a numeric feature fitted on booleans takes JSON true/false as 1/0
    largest: float | None = None  # the largest magnitude of a number the model takes (FLOAT32_MAX), or any

    def to_json(self) -> dict:
        return {key: value for key, value in (("missing", self.missing), ("refused_by", self.refused_by),
                                              ("booleans", self.booleans), ("largest", self.largest)) if value}

    @classmethod
    def from_json(cls, item: dict) -> FeatureInput:
        return cls(missing=item.get("missing"), refused_by=item.get("refused_by"),
                   booleans=bool(item.get("booleans", False)), largest=item.get("largest"))


@dataclass(frozen=True)
class FeatureSchema:
    names: tuple[str, ...]
    types: tuple[str, ...]  # NUMBER or STRING, one per name
    inputs: tuple[FeatureInput, ...]  # one per name
    input_kind: str  # "array": a float64 matrix; "frame": a DataFrame with the fitted column names

    @cached_property
    def string_features(self) -> list[str]:
        return [name for name, kind in zip(self.names, self.types) if kind == STRING]

    @cached_property
    def accepts_nan(self) -> bool:
        """Whether some feature may be missing: only then can a row reach the model with a hole."""
        return any(feature.missing is not None for feature in self.inputs)

    @cached_property
    def accepts_missing(self) -> tuple[bool, ...]:
        return tuple(feature.missing is not None for feature in self.inputs)

    @cached_property
    def largest(self) -> float | None:
        """The smallest of the features' largest magnitudes, for a check of a whole row at once; None: any."""
        limits = [feature.largest for feature in self.inputs if feature.largest is not None]
        return min(limits) if limits else None

    def within(self, largest: float) -> FeatureSchema:
        """This schema with every numeric feature taking magnitudes up to ``largest`` at most."""
        inputs = tuple(feature if kind == STRING else replace(feature, largest=min(feature.largest or largest, largest))
                       for feature, kind in zip(self.inputs, self.types))
        return replace(self, inputs=inputs)

    @cached_property
    def missing_values(self) -> tuple:
        """Per feature, what a NULL becomes (NaN, or None for a text feature fitted so)."""
        return tuple(MISSING_MARKERS.get(feature.missing) for feature in self.inputs)

    @cached_property
    def has_hole(self) -> Callable[[list], bool]:
        """Whether a row of feature values (validated, in model order) holds a missing value."""
        if not self.string_features:
            return lambda row: math.isnan(sum(row))  # no infinity gets this far (features.py)
        return lambda row: any(value is None or value != value for value in row)

    @cached_property
    def values_by_name(self) -> Callable[[dict], tuple]:
        """The values of the features, in model order, from a mapping (KeyError when one is missing)."""
        getter = operator.itemgetter(*self.names)
        return getter if len(self.names) > 1 else lambda mapping: (getter(mapping),)

    @cached_property
    def merge_by_kind(self) -> Callable[[list], list]:
        """The row in model order from its numeric values followed by its text values, each in model order."""
        by_kind = [p for p, kind in enumerate(self.types) if kind != STRING] + \
                  [p for p, kind in enumerate(self.types) if kind == STRING]
        getter = operator.itemgetter(*sorted(range(len(by_kind)), key=by_kind.__getitem__))
        return (lambda values: list(getter(values))) if len(by_kind) > 1 else list


def refusing(names, refused_by: str) -> tuple[FeatureInput, ...]:
    """Every feature refusing a missing value, for the same reason."""
    return tuple(FeatureInput(refused_by=refused_by) for _ in names)


def is_number(label) -> bool:
    """Whether a class label can be written to a numeric column (the Python path and the SQL arithmetic of
    linear models agree on it)."""
    return isinstance(label, (int, float)) and not (isinstance(label, float) and math.isnan(label))

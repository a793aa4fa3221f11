"""The types a model's features are described by: shared by the uploader, which records them, and the
server, which reads rows by them. Imports nothing of pgml_trigger's."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

NUMBER = "number"
STRING = "string"


@dataclass(frozen=True)
class FeatureSchema:
    names: tuple[str, ...]
    types: tuple[str, ...]  # NUMBER or STRING, one per name
    accepts_nan: bool
    input_kind: str  # "array": a float64 matrix; "frame": a DataFrame with the fitted column names

    @cached_property
    def string_features(self) -> list[str]:
        return [name for name, kind in zip(self.names, self.types) if kind == STRING]

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


def is_number(label) -> bool:
    """Whether a class label can be written to a numeric column (the Python path and the SQL arithmetic of
    linear models agree on it)."""
    return isinstance(label, (int, float)) and not (isinstance(label, float) and math.isnan(label))

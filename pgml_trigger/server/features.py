"""Turn what SQL hands us (a float8[] by position, a jsonb object by name) into model input.

This is the one place where a row becomes features: SQL predict, the scoring
triggers and the uploader's checks all go through it. It enforces the
missing-value policy:

* a NULL (or NaN) feature becomes NaN when the model accepts missing values
  (scikit-learn's ``allow_nan`` tag, recorded at upload), and is an error
  naming the feature (or the column feeding it) otherwise;
* +/-Infinity is always an error, since no scikit-learn model accepts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import FeatureCountMismatch, FeatureMissing, FeatureMissingValue, FeatureOutOfRange, FeatureTypeMismatch

NUMBER = "number"
STRING = "string"
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}  # how to_jsonb() writes them


@dataclass(frozen=True)
class FeatureSchema:
    names: tuple[str, ...]
    types: tuple[str, ...]  # NUMBER or STRING, one per name
    accepts_nan: bool
    input_kind: str  # "array": a float64 matrix; "frame": a DataFrame with the fitted column names

    @property
    def string_features(self) -> list[str]:
        return [name for name, kind in zip(self.names, self.types) if kind == STRING]


def from_positional(schema: FeatureSchema, values: list, model_label: str, columns=None):
    """Model input for one row given as a list in the model's feature order (a SQL float8[])."""
    expected = len(schema.names)
    if not values:
        raise FeatureCountMismatch(f"features array is empty; model {model_label} expects {expected} features",
                                   detail=_feature_list(schema))
    if isinstance(values[0], list):
        raise FeatureCountMismatch(f"features for model {model_label} must be a one-dimensional array")
    if len(values) != expected:
        raise FeatureCountMismatch(f"model {model_label} expects {expected} features, got {len(values)}",
                                   detail=_feature_list(schema))
    if schema.string_features:
        raise FeatureTypeMismatch(
            f"model {model_label} has text features ({', '.join(schema.string_features)}) that a "
            "double precision[] cannot carry", hint="pass the features as jsonb by name, e.g. to_jsonb(row)")
    row = np.array(values, dtype=np.float64)
    if not np.isfinite(row).all():
        _check_non_finite(schema, row, values, model_label, columns)
    return _model_input(schema, list(row))


def from_mapping(schema: FeatureSchema, mapping, model_label: str, columns=None):
    """Model input for one row given by feature name (a SQL jsonb object); extra keys are ignored."""
    if not isinstance(mapping, dict):
        raise FeatureTypeMismatch(f"features for model {model_label} must be a JSON object keyed by feature name, "
                                  f"got a JSON {_json_type(mapping)}")
    row = []
    for position, (name, kind) in enumerate(zip(schema.names, schema.types)):
        try:
            value = mapping[name]
        except KeyError:
            raise FeatureMissing(f"{_label(schema, position, columns)} is missing from the input of model "
                                 f"{model_label}", detail=_feature_list(schema)) from None
        row.append(_coerce(schema, position, kind, value, model_label, columns))
    if schema.input_kind == "array":
        array = np.array(row, dtype=np.float64)
        if not np.isfinite(array).all():
            _check_non_finite(schema, array, row, model_label, columns)
    return _model_input(schema, row)


def _coerce(schema, position, kind, value, model_label, columns):
    if value is None:
        if not schema.accepts_nan:
            raise _missing_value(schema, position, model_label, columns, "NULL")
        return math.nan
    if kind == NUMBER:
        if isinstance(value, (int, float)):  # bool is an int: true/false score as 1/0
            number = float(value)
        elif isinstance(value, str) and value in _SPECIAL_FLOATS:
            number = _SPECIAL_FLOATS[value]
        else:
            raise FeatureTypeMismatch(f"{_label(schema, position, columns)} of model {model_label} must be a number, "
                                      f"got JSON {_json_type(value)} {_preview(value)}")
        if math.isnan(number) and not schema.accepts_nan:
            raise _missing_value(schema, position, model_label, columns, "NaN")
        if math.isinf(number):
            raise _infinite(schema, position, model_label, columns)
        return number
    if isinstance(value, str):
        return value
    raise FeatureTypeMismatch(f"{_label(schema, position, columns)} of model {model_label} must be text, "
                              f"got JSON {_json_type(value)} {_preview(value)}")


def _check_non_finite(schema, row, values, model_label, columns):
    for position, number in enumerate(row):
        if math.isnan(number) and not schema.accepts_nan:
            raise _missing_value(schema, position, model_label, columns, "NULL" if values[position] is None else "NaN")
        if math.isinf(number):
            raise _infinite(schema, position, model_label, columns)


def _model_input(schema: FeatureSchema, row: list):
    if schema.input_kind == "array":
        return np.array([row], dtype=np.float64)
    import pandas as pd

    # Numbers arrive as Python floats and text as str, so pandas infers the
    # dtypes the model was fitted with: float64 and a string/object column.
    return pd.DataFrame([row], columns=list(schema.names))


def _missing_value(schema, position, model_label, columns, what):
    return FeatureMissingValue(
        f"{_label(schema, position, columns)} is {what}, and model {model_label} does not accept missing values",
        hint="fill the value in, or upload a model that handles missing values (e.g. with a SimpleImputer)")


def _infinite(schema, position, model_label, columns):
    return FeatureOutOfRange(f"{_label(schema, position, columns)} is infinite; model {model_label} needs a finite "
                             "number")


def _label(schema: FeatureSchema, position: int, columns) -> str:
    """How an error names the value: by feature, or by the table column a trigger fed it from."""
    name = schema.names[position]
    if columns is None:
        return f'feature "{name}"'
    if columns[position] == name:
        return f'column "{name}"'
    return f'column "{columns[position]}" (feature "{name}")'


def _feature_list(schema: FeatureSchema) -> str:
    return "features in model order: " + ", ".join(schema.names)


def _json_type(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def _preview(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."

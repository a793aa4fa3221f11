"""Turn what SQL hands us (a float8[] by position, a jsonb object by name) into model input.

This is the one place where a row becomes features: SQL predict, the scoring
triggers and the uploader's checks all go through it. It enforces the
missing-value policy, feature by feature as the upload found the fitted model
to take them (models.feature_inputs, pgml_trigger/uploader/missing.py):

* a NULL (or NaN) feature is passed as what the model was fitted with (NaN,
  or None for a text feature fitted so) where the model accepts a missing
  value, and is an error naming the feature (or the column feeding it) and
  the step that refuses it otherwise;
* +/-Infinity is always an error, since no scikit-learn model accepts it, and so is
  a number beyond what the model reads it as (float32, for trees and float graphs);
* JSON true/false is a number only for a feature fitted on booleans.
"""

from __future__ import annotations

import math
import struct
from itertools import chain

import numpy as np

from ..errors import (
    FeatureAmbiguous,
    FeatureCountMismatch,
    FeatureMissing,
    FeatureMissingValue,
    FeatureOutOfRange,
    FeatureTypeMismatch,
    PgmlTriggerError,
)
from ..schema import NUMBER, FeatureSchema

_NAMED = 5  # missing features an error names before it counts the rest
_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}  # how to_jsonb() writes them


def from_positional(schema: FeatureSchema, values: list, model_label: str, columns=None):
    """The feature values of one row given as a list in the model's feature order (a SQL float8[])."""
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
    try:
        if math.isfinite(sum(values)) and _within(schema, values):  # the common case, checked in one pass
            return values
    except TypeError:  # a NULL element (None)
        pass
    row = [math.nan if value is None else value for value in values]
    _check_numbers(schema, row, values, model_label, columns)
    return row


def from_typed_arrays(schema: FeatureSchema, numbers: list, texts: list, model_label: str, columns=None):
    """The feature values of one row given as its numeric features (a SQL float8[]) and its text ones (a text[]),
    each in model order: how a scoring trigger hands over a row with text columns. Values, missing-value policy and
    errors are those of the row by name (from_mapping)."""
    n_texts = len(schema.string_features)
    if len(texts) != n_texts or len(numbers) != len(schema.names) - n_texts:
        raise FeatureCountMismatch(f"model {model_label} expects {len(schema.names) - n_texts} numeric and {n_texts} "
                                   f"text features, got {len(numbers)} and {len(texts)}", detail=_feature_list(schema))
    row = schema.merge_by_kind(numbers + texts)
    try:
        if math.isfinite(sum(numbers)) and None not in texts and _within(schema, numbers):  # the common case
            return row
    except TypeError:  # a NULL number (None)
        pass
    for position, (kind, value) in enumerate(zip(schema.types, row)):
        if value is None:
            row[position] = _null(schema, position, model_label, columns)
        elif kind == NUMBER:
            _checked_number(schema, position, value, model_label, columns)
    return row


def from_mapping(schema: FeatureSchema, mapping, model_label: str, columns=None):
    """The feature values of one row given by feature name (a SQL jsonb object, or a table row as JSON); extra
    keys are ignored."""
    if not isinstance(mapping, dict):
        raise FeatureTypeMismatch(f"features for model {model_label} must be a JSON object keyed by feature name, "
                                  f"got a JSON {_json_type(mapping)}")
    if not schema.string_features:
        try:
            values = schema.values_by_name(mapping)
            # One pass for the common case: a sum is a finite number only when every value is a finite
            # number (None, text, arrays and objects raise TypeError; an integer beyond float range, OverflowError),
            # and another for booleans, which sum as numbers.
            if math.isfinite(sum(values)) and bool not in map(type, values) and _within(schema, values):
                return list(map(float, values))
        except (KeyError, TypeError, OverflowError):
            pass
    missing = [position for position, name in enumerate(schema.names) if name not in mapping]
    if missing:
        named = ", ".join(_label(schema, position, columns) for position in missing[:_NAMED])
        if len(missing) > _NAMED:
            named += f" and {len(missing) - _NAMED} more"
        raise FeatureMissing(f"{named} {'is' if len(missing) == 1 else 'are'} missing from the input of model "
                             f"{model_label}", detail=_feature_list(schema))
    return [_coerce(schema, position, kind, mapping[name], model_label, columns)
            for position, (name, kind) in enumerate(zip(schema.names, schema.types))]


def distinct_columns(schema: FeatureSchema, text: str, parsed, model_label: str):
    """``parsed``, the JSON ``text`` of a row (or an array of rows) by name, after checking that no row names a
    feature twice: a row of a join can hold two columns of one name, and a JSON parser keeps the last of them.

    Every key of an object in the text ends in '":', so when the text holds no more of those than the rows have
    keys, no key comes twice (the common case, one pass over the text); otherwise the text is parsed again,
    keeping every key."""
    rows = parsed if isinstance(parsed, list) else [parsed]
    if text.count('":') == sum(len(row) for row in rows if isinstance(row, dict)):
        return parsed
    again = _json_keeping_pairs(text)
    for row in again if isinstance(again, list) else [again]:
        twice = [name for name in getattr(row, "twice", ()) if name in schema.names]
        if twice:
            raise FeatureAmbiguous(f"the row given to model {model_label} has two columns named \"{twice[0]}\", "
                                   "a feature of the model", hint="give the columns distinct names (e.g. AS "
                                                                  "another_name), one of them the feature's")
    return parsed


class _KeysTwice(dict):
    """A JSON object that held some keys more than once (``twice``); the last value of each is kept."""

    twice: tuple = ()


def _json_keeping_pairs(text: str):
    import json

    def pairs(items):
        mapping = dict(items)
        if len(mapping) == len(items):
            return mapping
        seen: set = set()
        marked = _KeysTwice(mapping)
        marked.twice = tuple(key for key, _ in items if key in seen or seen.add(key))
        return marked

    return json.loads(text, object_pairs_hook=pairs)


def matrix_from_mappings(schema: FeatureSchema, mappings) -> np.ndarray | None:
    """Many rows given by name (JSON objects, or table rows as JSON) as one float64 matrix in model order, in a
    few passes over all of them: when every row holds a finite number for every feature, the common case.
    None otherwise; the caller then takes the rows one by one (from_mapping), which says what is wrong where.
    """
    if schema.string_features:
        return None
    values = schema.values_by_name
    try:
        rows = [values(mapping) for mapping in mappings]  # a row that is not an object: TypeError
        # As in from_mapping: sum() refuses None, text, arrays and objects, and a total is finite only when
        # every value is a finite number (numpy would parse the text "1.5" as a number; sum() does not); booleans
        # sum as numbers.
        if not math.isfinite(sum(map(sum, rows))) or bool in set(map(type, chain.from_iterable(rows))):
            return None
    except (KeyError, TypeError, OverflowError):
        return None
    width = len(schema.names)
    matrix = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width).reshape(-1, width)
    if schema.largest is not None and matrix.size and np.abs(matrix).max() > schema.largest:
        return None
    return matrix


def from_array_send(schema: FeatureSchema, data: bytes, model_label: str) -> np.ndarray:
    """The rows of a SQL double precision[][] in its binary form (array_send), as a float64 matrix.

    Parsed with numpy rather than letting PL/Python build a list per row and
    a float per element. A NULL element follows the missing-value policy like
    a NULL in a one-row float8[].
    """
    if schema.string_features:
        raise FeatureTypeMismatch(
            f"model {model_label} has text features ({', '.join(schema.string_features)}) that a "
            "double precision[][] cannot carry", hint="pass the rows as jsonb[], e.g. array_agg(to_jsonb(t))")
    ndim, has_nulls, element_type = struct.unpack_from(">iiI", data)
    if ndim == 0:
        return np.empty((0, len(schema.names)))
    if element_type != _FLOAT8_OID:
        raise FeatureTypeMismatch(f"features for model {model_label} must be double precision values")
    if ndim != 2:
        raise FeatureCountMismatch(f"features for model {model_label} must be a two-dimensional array, "
                                   f"one row of features per element; got {ndim} dimension(s)")
    n_rows, _, n_features, _ = struct.unpack_from(">iiii", data, 12)
    if n_features != len(schema.names):
        raise FeatureCountMismatch(f"model {model_label} expects {len(schema.names)} features, "
                                   f"got rows of {n_features}", detail=_feature_list(schema))
    if has_nulls:
        matrix, nulls = _parse_with_nulls(data, 28, n_rows * n_features)
    else:
        # Each element is its length (always 8) and a big-endian float8.
        cells = np.frombuffer(data, dtype=_CELL, count=n_rows * n_features, offset=28)
        matrix, nulls = cells["value"].astype(np.float64), None
    matrix = matrix.reshape(n_rows, n_features)
    refused = _refused_cells(schema, matrix)
    if refused is not None:
        row_index = int(np.argwhere(refused)[0][0])
        row = matrix[row_index]
        values = [None if nulls is not None and nulls[row_index * n_features + i] else value
                  for i, value in enumerate(row.tolist())]
        try:
            _check_numbers(schema, row, values, model_label, None)
        except PgmlTriggerError as exc:
            raise in_row(exc, row_index) from None
    return matrix


def _refused_cells(schema: FeatureSchema, matrix: np.ndarray) -> np.ndarray | None:
    """Where a matrix of numbers holds what _checked_number refuses, or None when nowhere."""
    refused = None
    if not np.isfinite(matrix).all():
        refused = np.isinf(matrix) | (np.isnan(matrix) & ~np.asarray(schema.accepts_missing))
    if schema.largest is not None:
        too_large = np.abs(matrix) > np.array([feature.largest or math.inf for feature in schema.inputs])
        refused = too_large if refused is None else refused | too_large
    return refused if refused is not None and refused.any() else None


def in_row(error: PgmlTriggerError, row_index: int) -> PgmlTriggerError:
    """The same error, saying which row of a batch (counted from 1, like SQL arrays) it is about."""
    return type(error)(f"row {row_index + 1}: {error.message}", detail=error.detail, hint=error.hint)


_FLOAT8_OID = 701
_CELL = np.dtype([("length", ">i4"), ("value", ">f8")])


def _parse_with_nulls(data: bytes, offset: int, count: int):
    """The slow path: a NULL element is only a length of -1, so elements cannot be located without walking."""
    values = np.empty(count, dtype=np.float64)
    nulls = np.zeros(count, dtype=bool)
    read_length, read_value = struct.Struct(">i").unpack_from, struct.Struct(">d").unpack_from
    for i in range(count):
        (length,) = read_length(data, offset)
        offset += 4
        if length < 0:
            values[i], nulls[i] = math.nan, True
        else:
            (values[i],) = read_value(data, offset)
            offset += length
    return values, nulls


def _coerce(schema, position, kind, value, model_label, columns):
    if value is None:
        return _null(schema, position, model_label, columns)
    if kind == NUMBER:
        if isinstance(value, bool) and not schema.inputs[position].booleans:
            raise FeatureTypeMismatch(f"{_label(schema, position, columns)} of model {model_label} must be a number, "
                                      f"got JSON boolean {_preview(value).lower()}",
                                      hint="the model was not fitted on booleans: pass 1 or 0 if that is what it "
                                           "means")
        if isinstance(value, (int, float)):  # a bool here is one the model was fitted on: true/false score as 1/0
            try:
                number = float(value)
            except OverflowError:  # an integer beyond float range
                raise _infinite(schema, position, model_label, columns) from None
        elif isinstance(value, str) and value in _SPECIAL_FLOATS:
            number = _SPECIAL_FLOATS[value]
        else:
            raise FeatureTypeMismatch(f"{_label(schema, position, columns)} of model {model_label} must be a number, "
                                      f"got JSON {_json_type(value)} {_preview(value)}")
        return _checked_number(schema, position, number, model_label, columns)
    if isinstance(value, str):
        return value
    raise FeatureTypeMismatch(f"{_label(schema, position, columns)} of model {model_label} must be text, "
                              f"got JSON {_json_type(value)} {_preview(value)}")


def _check_numbers(schema, row, values, model_label, columns):
    """A row of numbers that is not all finite or not all within range; ``values``: as given, with None where SQL
    had a NULL."""
    for position, number in enumerate(row):
        _checked_number(schema, position, number, model_label, columns, null=values[position] is None)


def _null(schema, position, model_label, columns):
    """A NULL feature: what the model was fitted with for a missing value where it accepts one, an error naming
    the feature otherwise."""
    if schema.inputs[position].missing is None:
        raise _missing_value(schema, position, model_label, columns, "NULL")
    return schema.missing_values[position]


def _checked_number(schema, position, number, model_label, columns, null=False) -> float:
    """A number under the missing-value policy: NaN (from a NULL when ``null``) only where the model accepts a
    missing value; infinity never, since no scikit-learn model accepts it."""
    if number != number:
        if schema.inputs[position].missing is None:
            raise _missing_value(schema, position, model_label, columns, "NULL" if null else "NaN")
    elif math.isinf(number):
        raise _infinite(schema, position, model_label, columns)
    else:
        largest = schema.inputs[position].largest
        if largest is not None and abs(number) > largest:
            raise FeatureOutOfRange(f"{_label(schema, position, columns)} is {number:.17g}, beyond ±{largest:.8g}: "
                                    f"model {model_label} reads it as float32, where it would be infinite")
    return number


def _within(schema: FeatureSchema, numbers) -> bool:
    """Whether finite numbers all lie within the smallest of the features' largest magnitudes."""
    largest = schema.largest
    return largest is None or not numbers or (max(numbers) <= largest and min(numbers) >= -largest)


def _missing_value(schema, position, model_label, columns, what):
    refused_by = schema.inputs[position].refused_by
    if refused_by is None:
        return FeatureMissingValue(f"{_label(schema, position, columns)} is {what}, and model {model_label} does "
                                   "not accept missing values", hint="fill the value in")
    return FeatureMissingValue(
        f"{_label(schema, position, columns)} is {what}, and model {model_label} does not accept a missing value "
        f"there: {refused_by} refuses it",
        hint="fill the value in, or refit the model so that something before that step fills it (e.g. a "
             "SimpleImputer)")


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

"""features.py and describe.py without a server: the row-to-input rules in isolation."""

from __future__ import annotations

import math
import re

import pytest
import trained

from pgml_trigger.errors import (
    FeatureCountMismatch,
    FeatureMissing,
    FeatureMissingValue,
    FeatureOutOfRange,
    FeatureTypeMismatch,
)
from pgml_trigger.schema import FLOAT32_MAX, NUMBER, STRING, FeatureInput, FeatureSchema
from pgml_trigger.server.features import (
    from_mapping,
    from_positional,
    from_typed_arrays,
    matrix_from_mappings,
)
from pgml_trigger.uploader.describe import describe

REFUSED = FeatureInput(refused_by="StandardScaler (step 'scale')")


def _schema(names, types, inputs, input_kind="array"):
    return FeatureSchema(names=names, types=types, inputs=inputs, input_kind=input_kind)


NUMERIC = _schema(("a", "b"), (NUMBER, NUMBER), (REFUSED, REFUSED))
NAN_OK = _schema(("a", "b"), (NUMBER, NUMBER), (FeatureInput(missing="NaN"),) * 2)
MIXED = _schema(("city", "n"), (STRING, NUMBER), (REFUSED, REFUSED), "frame")


def test_positional_row_is_the_values_in_model_order():
    assert from_positional(NUMERIC, [1.5, 2.0], "m@1") == [1.5, 2.0]


def test_mapping_orders_values_by_feature_and_makes_numbers_float():
    row = from_mapping(MIXED, {"n": 3, "city": "Oslo", "extra": [1]}, "m@1")
    assert row == ["Oslo", 3.0] and isinstance(row[1], float)


def test_typed_arrays_give_the_row_by_name():
    """A trigger's float8[] and text[] of a row with text columns: the values, NULLs and errors of the row by name."""
    schema = _schema(("n", "city", "m", "zone"), (NUMBER, STRING, NUMBER, STRING), (REFUSED,) * 4, "frame")
    assert from_typed_arrays(schema, [1.5, 2.0], ["Oslo", "b"], "m@1") == [1.5, "Oslo", 2.0, "b"]
    for numbers, texts in (([1.0, None], [None, "b"]), ([math.nan, 1.0], ["Oslo", None]),
                           ([1.0, -math.inf], ["Oslo", "b"])):
        by_name = dict(zip(("n", "m"), numbers)) | dict(zip(("city", "zone"), texts))
        by_name = {k: "NaN" if v != v else "-Infinity" if v == -math.inf else v for k, v in by_name.items()}
        with pytest.raises((FeatureMissingValue, FeatureOutOfRange)) as by_kind:
            from_typed_arrays(schema, numbers, texts, "m@1", columns=("n", "c", "m", "zone"))
        with pytest.raises(type(by_kind.value), match=re.escape(by_kind.value.message)):
            from_mapping(schema, by_name, "m@1", columns=("n", "c", "m", "zone"))
    nan_ok = _schema(("city", "n"), (STRING, NUMBER), (FeatureInput(missing="None"), FeatureInput(missing="NaN")),
                     "frame")
    city, n = from_typed_arrays(nan_ok, [None], [None], "m@1")
    assert city is None and math.isnan(n)  # as the model was fitted: None for this text feature, NaN for numbers
    with pytest.raises(FeatureCountMismatch, match="expects 1 numeric and 1 text features, got 2 and 1"):
        from_typed_arrays(MIXED, [1.0, 2.0], ["Oslo"], "m@1")


def test_nulls_become_nan_only_where_accepted():
    assert math.isnan(from_positional(NAN_OK, [None, 1.0], "m@1")[0])
    with pytest.raises(FeatureMissingValue, match='feature "a" is NULL') as caught:
        from_positional(NUMERIC, [None, 1.0], "m@1")
    assert caught.value.message == ('feature "a" is NULL, and model m@1 does not accept a missing value there: '
                                    "StandardScaler (step 'scale') refuses it")
    assert caught.value.hint.startswith("fill the value in, or refit the model")
    with pytest.raises(FeatureMissingValue, match='column "col_a" \\(feature "a"\\) is NaN'):
        from_mapping(NUMERIC, {"a": "NaN", "b": 1}, "m@1", columns=("col_a", "b"))


def test_missing_values_are_taken_feature_by_feature():
    schema = _schema(("a", "b"), (NUMBER, NUMBER), (FeatureInput(missing="NaN"), REFUSED))
    assert math.isnan(from_mapping(schema, {"a": None, "b": 1}, "m@1")[0])
    with pytest.raises(FeatureMissingValue, match='feature "b" is NULL'):
        from_mapping(schema, {"a": 1, "b": None}, "m@1")
    with pytest.raises(FeatureMissingValue, match='feature "b" is NaN'):
        from_positional(schema, [math.nan, math.nan], "m@1")


def test_numbers_beyond_float32_where_the_model_reads_float32():
    schema = _schema(("a", "b"), (NUMBER, NUMBER), (FeatureInput(largest=FLOAT32_MAX), FeatureInput()))
    assert from_mapping(schema, {"a": 3.4e38, "b": 1e300}, "m@1") == [3.4e38, 1e300]
    for given in ({"a": 1e300, "b": 0}, {"a": -3.5e38, "b": 0}):
        with pytest.raises(FeatureOutOfRange, match='feature "a" is .*, beyond ±3.4028235e\\+38'):
            from_mapping(schema, given, "m@1")
        with pytest.raises(FeatureOutOfRange, match='feature "a"'):
            from_positional(schema, [given["a"], 0.0], "m@1")
    assert matrix_from_mappings(schema, [{"a": 1e300, "b": 0}]) is None  # then row by row, which says why


def test_booleans_only_where_the_model_was_fitted_on_them():
    with pytest.raises(FeatureTypeMismatch, match='feature "a" of model m@1 must be a number, got JSON boolean true'):
        from_mapping(NUMERIC, {"a": True, "b": 1}, "m@1")
    schema = _schema(("a", "b"), (NUMBER, NUMBER), (FeatureInput(booleans=True), REFUSED))
    assert from_mapping(schema, {"a": True, "b": 1}, "m@1") == [1.0, 1.0]


def test_special_floats_written_by_to_jsonb():
    assert math.isnan(from_mapping(NAN_OK, {"a": "NaN", "b": 0}, "m@1")[0])
    with pytest.raises(FeatureOutOfRange, match='feature "b" is infinite'):
        from_mapping(NAN_OK, {"a": 1, "b": "-Infinity"}, "m@1")


@pytest.mark.parametrize("values, error, message", [
    ([], FeatureCountMismatch, "empty"),
    ([1.0], FeatureCountMismatch, "expects 2 features, got 1"),
    ([[1.0, 2.0]], FeatureCountMismatch, "one-dimensional"),
])
def test_positional_shape_errors(values, error, message):
    with pytest.raises(error, match=message):
        from_positional(NUMERIC, values, "m@1")


def test_mapping_errors_name_the_feature():
    with pytest.raises(FeatureMissing, match='feature "b" is missing from the input of model m@1'):
        from_mapping(NUMERIC, {"a": 1}, "m@1")
    with pytest.raises(FeatureTypeMismatch, match='feature "a" of model m@1 must be a number, got JSON string'):
        from_mapping(NUMERIC, {"a": "x", "b": 1}, "m@1")
    with pytest.raises(FeatureTypeMismatch, match='feature "city" of model m@1 must be text, got JSON number'):
        from_mapping(MIXED, {"city": 1, "n": 1}, "m@1")
    with pytest.raises(FeatureTypeMismatch, match="text features \\(city\\)"):
        from_positional(MIXED, [1.0, 2.0], "m@1")


def test_describe_reads_text_columns_off_the_fitted_encoder():
    info = describe(trained.mixed_pipeline())
    assert dict(zip(info.schema.names, info.schema.types)) == {
        "age": NUMBER, "bmi": NUMBER, "bp": NUMBER, "s1": NUMBER, "s5": NUMBER, "sex": STRING, "bmi_band": STRING}
    assert info.task == "regression" and info.classes is None and info.schema.input_kind == "frame"


def test_describe_records_missing_value_support_and_classes():
    assert describe(trained.hgb_breast_cancer()).schema.accepts_nan is True
    assert describe(trained.linear_breast_cancer()).schema.accepts_nan is False
    info = describe(trained.iris_text_labels()[0])
    assert info.classes == ["setosa", "versicolor", "virginica"]
    assert info.schema.names == ("x0", "x1", "x2", "x3") and info.schema.input_kind == "array"


def test_an_integer_beyond_float_range_is_out_of_range():
    with pytest.raises(FeatureOutOfRange, match='feature "a" is infinite'):
        from_mapping(NUMERIC, {"a": 10**400, "b": 1}, "m@1")


def test_many_rows_by_name_make_one_matrix_in_model_order():
    rows = [{"b": 2, "a": 1.5, "extra": "x"}, {"a": 1, "b": -0.0}]
    matrix = matrix_from_mappings(NUMERIC, rows)
    assert matrix.dtype == float and matrix.tolist() == [from_mapping(NUMERIC, row, "m@1") for row in rows]
    assert matrix_from_mappings(NUMERIC, []).shape == (0, 2)


@pytest.mark.parametrize("odd", [{"a": "1.5", "b": 1}, {"a": None, "b": 1}, {"a": 1}, {"a": [1], "b": 1},
                                 {"a": True, "b": 1}, {"a": math.inf, "b": 1}, {"a": math.nan, "b": 1},
                                 {"a": 10**400, "b": 1}, None, [1, 2], "a"])
def test_a_row_the_matrix_cannot_take_as_it_is_sends_the_batch_row_by_row(odd):
    """None: the caller then reads each row with from_mapping, which refuses or accepts it with its reasons."""
    assert matrix_from_mappings(NUMERIC, [{"a": 1, "b": 2}, odd]) is None
    assert matrix_from_mappings(NAN_OK, [odd]) is None
    assert matrix_from_mappings(MIXED, [{"city": "Oslo", "n": 1}]) is None

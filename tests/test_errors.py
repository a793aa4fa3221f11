"""Bad input: a clear error with a meaningful SQLSTATE, a usable session, and nothing half-written."""

from __future__ import annotations

import json

import psycopg
import pytest
import trained
from tables import create_table

from pgml_trigger import upload
from pgml_trigger.uploader.compile import ATOL, RTOL


@pytest.fixture
def models(conn):
    upload(conn, "bc", trained.linear_breast_cancer())  # rejects missing values
    upload(conn, "hgb", trained.hgb_breast_cancer())  # accepts missing values
    upload(conn, "mixed", trained.mixed_pipeline())
    upload(conn, "reg", trained.diabetes_ridge())
    upload(conn, "iris", trained.iris_text_labels()[0])
    return trained.breast_cancer()[0]


def _expect(conn, sql, params, error, *fragments):
    with pytest.raises(error) as caught:
        conn.execute(sql, params)
    message = caught.value.diag.message_primary
    for fragment in fragments:
        assert fragment in message
    assert caught.value.sqlstate not in ("38000", "XX000")
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the session is still usable
    return caught.value


def test_wrong_number_of_features(conn, models):
    error = _expect(conn, "SELECT pgml_trigger.predict('bc', %s::float8[])", [[1.0] * 29],
                    psycopg.errors.InvalidParameterValue, "model bc@1 expects 30 features, got 29")
    assert "mean_radius" in error.diag.message_detail


def test_empty_array(conn, models):
    _expect(conn, "SELECT pgml_trigger.predict('bc', ARRAY[]::float8[])", None,
            psycopg.errors.InvalidParameterValue, "features array is empty", "expects 30 features")


def test_two_dimensional_array_for_one_row(conn, models):
    _expect(conn, "SELECT pgml_trigger.predict('reg', ARRAY[[1.0, 2.0], [3.0, 4.0]])", None,
            psycopg.errors.InvalidParameterValue, "one-dimensional")


def test_missing_feature_is_named(conn, models):
    row = models.iloc[0].to_dict()
    del row["worst_area"]
    _expect(conn, "SELECT pgml_trigger.predict('bc', %s::jsonb)", [json.dumps(row)],
            psycopg.errors.UndefinedColumn, 'feature "worst_area" is missing', "bc@1")


def test_wrong_type_is_named(conn, models):
    row = dict(models.iloc[0].to_dict(), mean_texture="rough")
    _expect(conn, "SELECT pgml_trigger.predict('bc', %s::jsonb)", [json.dumps(row)],
            psycopg.errors.DatatypeMismatch, 'feature "mean_texture"', "must be a number", "'rough'")
    X, _ = trained.diabetes_mixed()
    mixed = dict(X.iloc[0].to_dict(), sex=3)
    _expect(conn, "SELECT pgml_trigger.predict('mixed', %s::jsonb)", [json.dumps(mixed)],
            psycopg.errors.DatatypeMismatch, 'feature "sex"', "must be text")


def test_features_not_an_object(conn, models):
    _expect(conn, "SELECT pgml_trigger.predict('bc', '[1, 2]'::jsonb)", None,
            psycopg.errors.DatatypeMismatch, "must be a JSON object", "got a JSON array")


def test_text_features_cannot_come_as_float_array(conn, models):
    _expect(conn, "SELECT pgml_trigger.predict('mixed', ARRAY[1, 2, 3, 4, 5, 6, 7]::float8[])", None,
            psycopg.errors.DatatypeMismatch, "text features (sex, bmi_band)")


def test_null_feature_is_an_error_for_models_without_missing_value_support(conn, models):
    row = list(models.iloc[0])
    row[4] = None
    _expect(conn, "SELECT pgml_trigger.predict('bc', %s::float8[])", [row],
            psycopg.errors.NullValueNotAllowed, 'feature "mean_smoothness" is NULL',
            "does not accept a missing value there: LogisticRegression (step 'logisticregression') refuses it")
    named = dict(models.iloc[0].to_dict(), mean_smoothness=None)
    _expect(conn, "SELECT pgml_trigger.predict('bc', %s::jsonb)", [json.dumps(named)],
            psycopg.errors.NullValueNotAllowed, 'feature "mean_smoothness" is NULL')


def test_null_feature_is_nan_for_models_that_accept_it(conn, models):
    model = trained.hgb_breast_cancer()
    row = models.iloc[[0]].copy()
    row.iloc[0, 4] = float("nan")
    values = [None if value != value else value for value in row.iloc[0]]
    got = conn.execute("SELECT pgml_trigger.predict_proba('hgb', %s::float8[])", [values]).fetchone()[0]
    assert got == pytest.approx(list(model.predict_proba(row)[0]), rel=RTOL, abs=ATOL)  # compiled to ONNX


def test_infinity_is_out_of_range(conn, models):
    row = list(models.iloc[0])
    row[0] = float("inf")
    _expect(conn, "SELECT pgml_trigger.predict('bc', %s::float8[])", [row],
            psycopg.errors.NumericValueOutOfRange, 'feature "mean_radius" is infinite')


def test_wrong_kind_of_model(conn, models):
    _expect(conn, "SELECT pgml_trigger.predict_proba('reg', ARRAY[0,0,0,0,0,0,0,0,0,0]::float8[])", None,
            psycopg.errors.WrongObjectType, "reg@1 is a regressor")
    _expect(conn, "SELECT pgml_trigger.predict('iris', ARRAY[5.1, 3.5, 1.4, 0.2])", None,
            psycopg.errors.WrongObjectType, "predicts text labels")


def test_unknown_category_rejected_by_the_model_names_it(conn):
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X, y = trained.diabetes_mixed()
    strict = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="error"), ["sex"])),
                           LinearRegression()).fit(X[["sex"]], y)
    upload(conn, "strict", strict)
    _expect(conn, "SELECT pgml_trigger.predict('strict', '{\"sex\": \"other\"}'::jsonb)", None,
            psycopg.errors.DataException, "model strict@1 rejected the input", "other")


def test_failed_multi_row_insert_writes_nothing(conn, models):
    create_table(conn, "tumors", models, extra={"score": "double precision"})
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    columns = ", ".join(f'"{name}"' for name in models.columns)
    good = "(" + ", ".join(repr(float(v)) for v in models.iloc[0]) + ")"
    bad = "(" + ", ".join(["NULL"] + [repr(float(v)) for v in models.iloc[1][1:]]) + ")"
    error = _expect(conn, f"INSERT INTO tumors ({columns}) VALUES {good}, {good}, {bad}", None,
                    psycopg.errors.NullValueNotAllowed, 'column "mean_radius" is NULL', "bc@1")
    assert error.diag.message_primary.startswith("pgml_trigger: ")
    assert conn.execute("SELECT count(*) FROM tumors").fetchone()[0] == 0


def test_failed_statement_in_a_transaction_rolls_back_cleanly(connect, models):
    session = connect(autocommit=False)
    session.execute("CREATE TABLE log (n int)")
    session.execute("INSERT INTO log VALUES (1)")
    with pytest.raises(psycopg.errors.UndefinedObject):
        session.execute("SELECT pgml_trigger.predict('missing', ARRAY[1.0])")
    session.rollback()
    assert session.execute("SELECT to_regclass('log')").fetchone() == (None,)
    assert session.execute("SELECT pgml_trigger.predict('reg', ARRAY[0,0,0,0,0,0,0,0,0,0]::float8[])").fetchone()


@pytest.mark.parametrize("attach_sql, error, fragment", [
    ("SELECT pgml_trigger.attach('t', 'bc', 'nope')", psycopg.errors.UndefinedColumn, 'column "nope" of t'),
    ("SELECT pgml_trigger.attach('t', 'bc', 'flag')", psycopg.errors.DatatypeMismatch, "output column \"flag\""),
    ("SELECT pgml_trigger.attach('t', 'reg', 'label')", psycopg.errors.DatatypeMismatch, "reg@1 is a regressor"),
    ("SELECT pgml_trigger.attach('t', 'reg', 'score', ARRAY['a'])", psycopg.errors.InvalidParameterValue,
     "expects 10 features"),
    ("SELECT pgml_trigger.attach('t', 'bc', 'score')", psycopg.errors.UndefinedColumn,
     'column "mean_radius" of t does not exist; model bc@1 needs it'),
    ("SELECT pgml_trigger.attach('t', 'reg', 'score', ARRAY['label','a','a','a','a','a','a','a','a','a'])",
     psycopg.errors.DatatypeMismatch, 'column "label" is text, but feature "age"'),
    ("SELECT pgml_trigger.attach('t', 'nope', 'score')", psycopg.errors.UndefinedObject, 'model "nope"'),
])
def test_attach_refuses_what_cannot_work(conn, models, attach_sql, error, fragment):
    conn.execute("CREATE TABLE t (a float8, score float8, label text, flag boolean)")
    _expect(conn, attach_sql, None, error, fragment)
    assert conn.execute("SELECT count(*) FROM pgml_trigger.attachments").fetchone()[0] == 0

"""Scoring a table's row by name: predict('m', t), predict_proba, predict_label, and predict_batch over json_agg(t).

Every value is compared with the model's own offline output (scikit-learn's predict on the same rows).
"""

from __future__ import annotations

import numpy as np
import psycopg
import pytest
import trained
from tables import load_table
from threadpoolctl import threadpool_limits

from pgml_trigger import upload
from pgml_trigger.uploader.compile import ATOL, RTOL


def _offline(model, frame) -> list[float]:
    """scikit-learn's predict one row at a time, as the server scores (a whole matrix may differ in the last bit)."""
    return [float(model.predict(frame.iloc[[i]])[0]) for i in range(len(frame))]


def test_numeric_row_scores_by_name_like_the_model(conn):
    model = trained.forest_breast_cancer()
    X, _ = trained.breast_cancer()
    upload(conn, "bc", model)
    # The table's columns in reverse order of the model's features, and extra columns besides.
    load_table(conn, "tumours", X[list(reversed(X.columns))], extra={"note": "text", "seen": "date"})
    conn.execute("UPDATE tumours SET note = 'x', seen = '2024-01-01'")
    values, labels, probabilities = zip(*conn.execute(
        "SELECT pgml_trigger.predict('bc', t), pgml_trigger.predict_label('bc', t), "
        "pgml_trigger.predict_proba('bc', t) FROM tumours AS t ORDER BY id").fetchall())
    assert list(values) == model.predict(X).astype(float).tolist()
    assert list(labels) == [str(label) for label in model.predict(X)]
    np.testing.assert_allclose(np.asarray(probabilities), model.predict_proba(X), rtol=RTOL, atol=ATOL)


def test_text_labels_from_a_row(conn):
    model, data = trained.iris_text_labels()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    upload(conn, "iris", model, feature_names=names)
    conn.execute("CREATE TABLE flowers (id serial, petal_width float8, petal_length float8, sepal_width float8, "
                 "sepal_length float8)")
    with conn.cursor().copy("COPY flowers (sepal_length, sepal_width, petal_length, petal_width) FROM STDIN") as copy:
        for row in data:
            copy.write_row(row.tolist())
    labels = [label for (label,) in conn.execute(
        "SELECT pgml_trigger.predict_label('iris', f) FROM flowers AS f ORDER BY id").fetchall()]
    assert labels == list(model.predict(data))


def test_mixed_text_and_numeric_row(conn):
    model = trained.mixed_pipeline()
    X, _ = trained.diabetes_mixed()
    upload(conn, "mixed", model)
    load_table(conn, "visits", X[["sex", "s5", "bmi_band", "age", "bp", "s1", "bmi"]])
    got = [value for (value,) in conn.execute(
        "SELECT pgml_trigger.predict('mixed', v) FROM visits AS v ORDER BY id").fetchall()]
    assert got == _offline(model, X)


def test_numeric_and_real_columns_score_as_the_numbers_they_hold(conn):
    """A numeric or real column scores as the decimal it shows (as to_jsonb() gives it), not as a float8 of it."""
    model = trained.diabetes_ridge()
    X, _ = trained.diabetes()
    upload(conn, "diabetes", model)
    load_table(conn, "patients", X)
    conn.execute("ALTER TABLE patients ALTER COLUMN age TYPE numeric, ALTER COLUMN bmi TYPE real")
    got = [value for (value,) in conn.execute(
        "SELECT pgml_trigger.predict('diabetes', p) FROM patients AS p ORDER BY id").fetchall()]
    shown = X.copy()
    shown["age"] = [float(f"{value:.15g}") for value in X["age"]]  # float8 -> numeric keeps 15 digits
    shown["bmi"] = [float(str(np.float32(value))) for value in X["bmi"]]  # real prints its shortest decimal
    assert got == _offline(model, shown)


def test_a_view_row_and_a_row_cast_to_a_type(conn):
    model = trained.diabetes_ridge()
    X, _ = trained.diabetes()
    upload(conn, "diabetes", model)
    load_table(conn, "patients", X)
    columns = ", ".join(X.columns)
    conn.execute(f"CREATE VIEW patient_features AS SELECT id, {columns}, 'extra'::text AS remark FROM patients")
    conn.execute(f"CREATE TYPE patient_type AS ({', '.join(f'{c} float8' for c in reversed(X.columns))})")
    from_view = [value for (value,) in conn.execute(
        "SELECT pgml_trigger.predict('diabetes', v) FROM patient_features AS v ORDER BY id").fetchall()]
    from_row = [value for (value,) in conn.execute(
        f"SELECT pgml_trigger.predict('diabetes', ROW({', '.join(reversed(X.columns))})::patient_type) "
        "FROM patients ORDER BY id").fetchall()]
    assert from_view == from_row == _offline(model, X)


def test_missing_columns_are_named(conn):
    model = trained.diabetes_ridge()
    X, _ = trained.diabetes()
    upload(conn, "diabetes", model)
    load_table(conn, "patients", X.drop(columns=["bmi", "s3"]))
    with pytest.raises(psycopg.errors.UndefinedColumn) as caught:
        conn.execute("SELECT pgml_trigger.predict('diabetes', p) FROM patients AS p").fetchall()
    assert 'feature "bmi", feature "s3" are missing from the input of model diabetes@1' in str(caught.value)


def test_wrong_typed_column_is_named(conn):
    model = trained.diabetes_ridge()
    X, _ = trained.diabetes()
    upload(conn, "diabetes", model)
    load_table(conn, "patients", X)
    conn.execute("ALTER TABLE patients ALTER COLUMN bmi TYPE text")
    conn.execute("UPDATE patients SET bmi = 'heavy'")
    with pytest.raises(psycopg.errors.DatatypeMismatch) as caught:  # as for jsonb
        conn.execute("SELECT pgml_trigger.predict('diabetes', p) FROM patients AS p").fetchall()
    assert 'feature "bmi" of model diabetes@1 must be a number' in str(caught.value)
    mixed = trained.mixed_pipeline()
    frame, _ = trained.diabetes_mixed()
    upload(conn, "mixed", mixed)
    load_table(conn, "visits", frame)
    conn.execute("ALTER TABLE visits ALTER COLUMN sex TYPE integer USING (sex = 'male')::integer")
    with pytest.raises(psycopg.errors.DatatypeMismatch) as caught:
        conn.execute("SELECT pgml_trigger.predict('mixed', v) FROM visits AS v").fetchall()
    assert 'feature "sex" of model mixed@1 must be text' in str(caught.value)


def test_null_row_is_null_and_null_column_follows_the_missing_value_policy(conn):
    model = trained.diabetes_ridge()
    X, _ = trained.diabetes()
    upload(conn, "diabetes", model)
    load_table(conn, "patients", X.iloc[:3])
    assert conn.execute("SELECT pgml_trigger.predict('diabetes', NULL::patients)").fetchone() == (None,)
    conn.execute("UPDATE patients SET bmi = NULL WHERE id = 1")
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        conn.execute("SELECT pgml_trigger.predict('diabetes', p) FROM patients AS p WHERE id = 1").fetchall()


def test_predict_batch_over_rows_as_json(conn):
    model = trained.mixed_pipeline()
    X, _ = trained.diabetes_mixed()
    upload(conn, "mixed", model)
    load_table(conn, "visits", X)
    got = conn.execute("SELECT pgml_trigger.predict_batch('mixed', json_agg(v ORDER BY id)) FROM visits AS v"
                       ).fetchone()[0]
    with threadpool_limits(1):  # one matrix on one thread, as the server scores a batch
        assert got == model.predict(X).astype(float).tolist()
    with_null = conn.execute("SELECT pgml_trigger.predict_batch('mixed', json_build_array(NULL, v)) "
                             "FROM visits AS v WHERE id = 2").fetchone()[0]
    assert with_null == [None, _offline(model, X.iloc[[1]])[0]]


def test_predict_batch_over_numeric_rows_as_json(conn):
    """All-numeric rows take the batch's one-matrix path; a row the path cannot read goes row by row and is named."""
    model = trained.forest_breast_cancer()
    X, _ = trained.breast_cancer()
    upload(conn, "bc", model)
    load_table(conn, "tumours", X[list(reversed(X.columns))], extra={"note": "text"})
    got = conn.execute("SELECT pgml_trigger.predict_batch('bc', json_agg(t ORDER BY id)) FROM tumours AS t"
                       ).fetchone()[0]
    assert got == _offline(model, X)
    as_jsonb = conn.execute("SELECT pgml_trigger.predict_batch('bc', array_agg(to_jsonb(t) ORDER BY id)) "
                            "FROM tumours AS t").fetchone()[0]
    assert as_jsonb == got
    # A number written as text is not a number, in a batch as in one row.
    conn.execute("ALTER TABLE tumours ALTER COLUMN mean_radius TYPE text")
    with pytest.raises(psycopg.errors.DatatypeMismatch,
                       match='row 1: feature "mean_radius" of model bc@1 must be a number, got JSON string'):
        conn.execute("SELECT pgml_trigger.predict_batch('bc', json_agg(t ORDER BY id)) FROM tumours AS t")


def test_literal_calls_resolve_as_before(conn):
    """A record overload must not capture arrays; an untyped literal stays ambiguous between jsonb and float8[]."""
    model = trained.diabetes_ridge()
    X, _ = trained.diabetes()
    upload(conn, "diabetes", model)
    row = X.iloc[0].tolist()
    numeric_array = "ARRAY[" + ", ".join(repr(v) for v in row) + "]"
    assert conn.execute(f"SELECT pgml_trigger.predict('diabetes', {numeric_array})").fetchone()[0] == \
        _offline(model, X.iloc[[0]])[0]
    assert conn.execute(f"SELECT pgml_trigger.predict_batch('diabetes', ARRAY[{numeric_array}])").fetchone()[0] == \
        _offline(model, X.iloc[[0]])
    with pytest.raises(psycopg.errors.AmbiguousFunction):
        conn.execute("SELECT pgml_trigger.predict('diabetes', '{\"age\": 1}')")

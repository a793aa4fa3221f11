"""predict_batch() and score(): many rows per call, the model's own answers (scikit-learn's predict), in order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pytest
import trained
from psycopg import sql
from tables import load_table
from threadpoolctl import threadpool_limits

from pgml_trigger import upload
from pgml_trigger.uploader.compile import ATOL, RTOL


def _offline(model, frame) -> list[float]:
    """scikit-learn's predict over the whole frame on one thread, as the server scores a batch."""
    with threadpool_limits(1):
        return model.predict(frame).astype(float).tolist()


@pytest.mark.parametrize("compile", [True, False], ids=["onnx", "sklearn"])
def test_predict_batch_equals_the_models_predict_in_order(conn, compile):
    X, _ = trained.breast_cancer()
    model = trained.forest_breast_cancer()
    upload(conn, "bc", model, sample=X, compile=compile)
    load_table(conn, "tumours", X)
    columns = ", ".join(X.columns)
    by_array, by_json = conn.execute(
        f"SELECT pgml_trigger.predict_batch('bc', array_agg(ARRAY[{columns}] ORDER BY id DESC)), "
        "pgml_trigger.predict_batch('bc', array_agg(to_jsonb(t) ORDER BY id DESC)) FROM tumours AS t").fetchone()
    assert by_array == by_json == _offline(model, X)[::-1]


def test_a_null_row_in_jsonb_batch_predicts_null(conn):
    X, _ = trained.diabetes()
    model = trained.diabetes_ridge()
    upload(conn, "diabetes", model)
    load_table(conn, "patients", X.head(5))
    got = conn.execute("SELECT pgml_trigger.predict_batch('diabetes', array_agg(CASE WHEN id = 3 THEN NULL "
                       "ELSE to_jsonb(p) END ORDER BY id)) FROM patients AS p").fetchone()[0]
    expected = _offline(model, X.head(5).drop(index=2))
    assert got[2] is None
    assert got[:2] + got[3:] == pytest.approx(expected, rel=1e-12)


def test_null_features_follow_the_missing_value_policy(conn):
    X, _ = trained.breast_cancer()
    upload(conn, "linear", trained.linear_breast_cancer(), sample=X)
    upload(conn, "hgb", trained.hgb_breast_cancer(), sample=X)
    upload(conn, "forest", trained.forest_breast_cancer(), sample=X)
    rows = [X.iloc[i].tolist() for i in range(4)]
    rows[2][5] = None
    rows[3][0] = None
    with pytest.raises(psycopg.errors.NullValueNotAllowed, match=f'row 3: feature "{X.columns[5]}" is NULL'):
        conn.execute("SELECT pgml_trigger.predict_batch('linear', %s::float8[][])", [rows])
    with_nan = pd.DataFrame([[np.nan if v is None else v for v in row] for row in rows], columns=X.columns)
    # forest: rows with a NULL are scored by scikit-learn, the others by ONNX
    for name, model in (("hgb", trained.hgb_breast_cancer()), ("forest", trained.forest_breast_cancer())):
        got = conn.execute("SELECT pgml_trigger.predict_batch(%s, %s::float8[][])", [name, rows]).fetchone()[0]
        assert got == _offline(model, with_nan)


def test_batch_errors_name_the_row(conn):
    X, _ = trained.breast_cancer()
    upload(conn, "bc", trained.linear_breast_cancer(), sample=X)
    upload(conn, "mixed", trained.mixed_pipeline())
    upload(conn, "iris", trained.iris_text_labels()[0])
    good = X.iloc[0].tolist()
    with pytest.raises(psycopg.errors.NumericValueOutOfRange, match="row 2: .* is infinite"):
        conn.execute("SELECT pgml_trigger.predict_batch('bc', %s::float8[][])", [[good, good[:-1] + [float("inf")]]])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="expects 30 features, got rows of 29"):
        conn.execute("SELECT pgml_trigger.predict_batch('bc', %s::float8[][])", [[good[:-1]]])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="two-dimensional"):
        conn.execute("SELECT pgml_trigger.predict_batch('bc', %s::float8[])", [good])
    with pytest.raises(psycopg.errors.UndefinedColumn, match="row 2: feature \"mean_radius\", .* are missing"):
        conn.execute("SELECT pgml_trigger.predict_batch('bc', ARRAY[%s::jsonb, '{}'::jsonb])",
                     [X.iloc[[0]].to_json(orient="records")[1:-1]])
    with pytest.raises(psycopg.errors.DatatypeMismatch, match="text features"):
        conn.execute("SELECT pgml_trigger.predict_batch('mixed', ARRAY[[1, 2, 3, 4, 5, 6, 7]]::float8[][])")
    with pytest.raises(psycopg.errors.WrongObjectType, match="predicts text labels"):
        conn.execute("SELECT pgml_trigger.predict_batch('iris', ARRAY[[1, 2, 3, 4]]::float8[][])")
    assert conn.execute("SELECT pgml_trigger.predict_batch('bc', '{}'::float8[])").fetchone()[0] == []


def test_score_fills_every_row_and_returns_the_count(conn):
    X, _ = trained.breast_cancer()
    model = trained.forest_breast_cancer()
    upload(conn, "bc", model, sample=X)
    load_table(conn, "tumours", X, extra={"risk": "double precision", "verdict": "text"})
    conn.execute("DELETE FROM tumours WHERE id % 10 = 0")  # holes in the heap
    conn.execute("UPDATE tumours SET mean_radius = mean_radius WHERE id % 7 = 0")  # moved row versions
    count = conn.execute("SELECT count(*) FROM tumours").fetchone()[0]
    assert conn.execute("SELECT pgml_trigger.score('bc', 'tumours', 'risk', batch_size => 50)").fetchone()[0] == count
    assert conn.execute("SELECT pgml_trigger.score('bc', 'tumours', 'verdict')").fetchone()[0] == count
    risk = [value for (value,) in conn.execute("SELECT risk FROM tumours ORDER BY id").fetchall()]
    kept = X[[(i + 1) % 10 != 0 for i in range(len(X))]]  # ids run from 1 in the frame's order
    assert risk == _offline(model, kept)
    assert conn.execute("SELECT count(*) FROM tumours WHERE verdict IS DISTINCT FROM risk::integer::text"
                        ).fetchone()[0] == 0


def test_score_quotes_names_and_maps_columns(conn):
    X, _ = trained.diabetes_mixed()
    upload(conn, "mixed", trained.mixed_pipeline(), sample=X)
    renamed = X.rename(columns={"age": "Age In Years"})
    load_table(conn, "Visit Log", renamed, extra={"Predicted; Value": "numeric"})
    features = ["Age In Years", "bmi", "bp", "s1", "s5", "sex", "bmi_band"]
    scored = conn.execute("SELECT pgml_trigger.score('mixed', '\"Visit Log\"', 'Predicted; Value', %s)",
                          [features]).fetchone()[0]
    assert scored == len(X)
    got = conn.execute(sql.SQL("SELECT {} FROM {} ORDER BY id").format(
        sql.Identifier("Predicted; Value"), sql.Identifier("Visit Log"))).fetchall()
    # float32 sums in a different order in the graph and in scikit-learn: equal within the compiled tolerance
    assert [float(value) for (value,) in got] == pytest.approx(_offline(trained.mixed_pipeline(), X), rel=RTOL,
                                                               abs=ATOL)


def test_score_checks_its_arguments(conn):
    X, _ = trained.diabetes()
    upload(conn, "diabetes", trained.diabetes_ridge())
    load_table(conn, "patients", X.head(3), extra={"label": "text", "prediction": "float8"})
    with pytest.raises(psycopg.errors.DatatypeMismatch, match="must be numeric"):
        conn.execute("SELECT pgml_trigger.score('diabetes', 'patients', 'label')")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        conn.execute("SELECT pgml_trigger.score('diabetes', 'patients', 'nope')")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="expects 10 features"):
        conn.execute("SELECT pgml_trigger.score('diabetes', 'patients', 'prediction', ARRAY['age'])")
    conn.execute("UPDATE patients SET bmi = NULL WHERE id = 2")
    with pytest.raises(psycopg.errors.NullValueNotAllowed, match=r'row \d: feature "bmi" is NULL') as raised:
        conn.execute("SELECT pgml_trigger.score('diabetes', 'patients', 'prediction')")
    assert "from ctid (0,1) of patients" in raised.value.diag.message_detail
    conn.execute("TRUNCATE patients")
    assert conn.execute("SELECT pgml_trigger.score('diabetes', 'patients', 'prediction')").fetchone()[0] == 0

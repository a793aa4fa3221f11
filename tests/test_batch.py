"""predict_batch() and score(): many rows per call, the same answers as per-row predict()."""

from __future__ import annotations

import psycopg
import pytest
import trained
from psycopg import sql
from tables import load_table

from pgml_trigger import upload
from pgml_trigger.compile import ATOL, RTOL


def _per_row(conn, model: str, table: str, columns: list[str]) -> list[float]:
    array = ", ".join(columns)
    return [value for (value,) in conn.execute(
        f"SELECT pgml_trigger.predict(%s, ARRAY[{array}]) FROM {table} ORDER BY id", [model]).fetchall()]


@pytest.mark.parametrize("compile", [True, False], ids=["onnx", "sklearn"])
def test_predict_batch_equals_per_row_predict_in_order(conn, compile):
    X, _ = trained.breast_cancer()
    upload(conn, "bc", trained.forest_breast_cancer(), sample=X, compile=compile)
    load_table(conn, "tumours", X)
    columns = ", ".join(X.columns)
    by_array, by_json = conn.execute(
        f"SELECT pgml_trigger.predict_batch('bc', array_agg(ARRAY[{columns}] ORDER BY id DESC)), "
        "pgml_trigger.predict_batch('bc', array_agg(to_jsonb(t) ORDER BY id DESC)) FROM tumours AS t").fetchone()
    expected = _per_row(conn, "bc", "tumours", list(X.columns))[::-1]
    assert by_array == by_json == expected


def test_a_null_row_in_jsonb_batch_predicts_null(conn):
    X, _ = trained.diabetes()
    upload(conn, "diabetes", trained.diabetes_ridge())
    load_table(conn, "patients", X.head(5))
    got = conn.execute("SELECT pgml_trigger.predict_batch('diabetes', array_agg(CASE WHEN id = 3 THEN NULL "
                       "ELSE to_jsonb(p) END ORDER BY id)) FROM patients AS p").fetchone()[0]
    expected = _per_row(conn, "diabetes", "patients", list(X.columns))
    assert got == expected[:2] + [None] + expected[3:]


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
    for model in ("hgb", "forest"):  # forest: rows with a NULL are scored by scikit-learn, the others by ONNX
        got = conn.execute("SELECT pgml_trigger.predict_batch(%s, %s::float8[][])", [model, rows]).fetchone()[0]
        assert got == [conn.execute("SELECT pgml_trigger.predict(%s, %s::float8[])", [model, row]).fetchone()[0]
                       for row in rows]


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
    with pytest.raises(psycopg.errors.UndefinedColumn, match="row 2: feature \"mean_radius\" is missing"):
        conn.execute("SELECT pgml_trigger.predict_batch('bc', ARRAY[%s::jsonb, '{}'::jsonb])",
                     [X.iloc[[0]].to_json(orient="records")[1:-1]])
    with pytest.raises(psycopg.errors.DatatypeMismatch, match="text features"):
        conn.execute("SELECT pgml_trigger.predict_batch('mixed', ARRAY[[1, 2, 3, 4, 5, 6, 7]]::float8[][])")
    with pytest.raises(psycopg.errors.WrongObjectType, match="predicts text labels"):
        conn.execute("SELECT pgml_trigger.predict_batch('iris', ARRAY[[1, 2, 3, 4]]::float8[][])")
    assert conn.execute("SELECT pgml_trigger.predict_batch('bc', '{}'::float8[])").fetchone()[0] == []


def test_score_fills_every_row_and_returns_the_count(conn):
    X, _ = trained.breast_cancer()
    upload(conn, "bc", trained.forest_breast_cancer(), sample=X)
    load_table(conn, "tumours", X, extra={"risk": "double precision", "verdict": "text"})
    conn.execute("DELETE FROM tumours WHERE id % 10 = 0")  # holes in the heap
    conn.execute("UPDATE tumours SET mean_radius = mean_radius WHERE id % 7 = 0")  # moved row versions
    count = conn.execute("SELECT count(*) FROM tumours").fetchone()[0]
    assert conn.execute("SELECT pgml_trigger.score('bc', 'tumours', 'risk', batch_size => 50)").fetchone()[0] == count
    assert conn.execute("SELECT pgml_trigger.score('bc', 'tumours', 'verdict')").fetchone()[0] == count
    risk = [value for (value,) in conn.execute("SELECT risk FROM tumours ORDER BY id").fetchall()]
    assert risk == _per_row(conn, "bc", "tumours", list(X.columns))
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
    expected = conn.execute(sql.SQL("SELECT pgml_trigger.predict('mixed', jsonb_build_object({})) FROM {} AS v "
                                    "ORDER BY id").format(
        sql.SQL(", ").join(sql.SQL("{}, v.{}").format(sql.Literal(name), sql.Identifier(column))
                           for name, column in zip(X.columns, features)),
        sql.Identifier("Visit Log"))).fetchall()
    # float32 sums in a different order for one row and for many: equal within the compiled tolerance
    assert [float(value) for (value,) in got] == pytest.approx([value for (value,) in expected], rel=RTOL, abs=ATOL)


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

"""Scoring triggers: attach, detach, and every way rows arrive."""

from __future__ import annotations

import psycopg
import pytest
import trained
from tables import copy_rows, create_table, load_table

from pgml_trigger import linear, upload


@pytest.fixture
def bc(conn):
    X, _ = trained.breast_cancer()
    model = trained.linear_breast_cancer()
    upload(conn, "bc", model)
    create_table(conn, "tumors", X, extra={"score": "double precision", "label": "text", "note": "text"})
    return X, model


def _offline(model, X):
    return [float(model.predict(X.iloc[[i]])[0]) for i in range(len(X))]


def _columns(X):
    return ", ".join(f'"{name}"' for name in X.columns)


def test_attach_returns_trigger_and_copy_fires_it(conn, bc):
    X, model = bc
    assert conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')").fetchone()[0] == "pgml_score_score"
    copy_rows(conn, "tumors", X)
    got = [score for (score,) in conn.execute("SELECT score FROM tumors ORDER BY id")]
    assert got == _offline(model, X)


def test_multi_row_values_and_insert_select_fire_it(conn, bc):
    X, model = bc
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    rows = X.iloc[:3]
    values = ", ".join("(" + ", ".join(repr(float(v)) for v in row) + ")" for row in rows.itertuples(index=False))
    conn.execute(f"INSERT INTO tumors ({_columns(X)}) VALUES {values}")
    conn.execute(f"INSERT INTO tumors ({_columns(X)}) SELECT {_columns(X)} FROM tumors ORDER BY id")
    got = [score for (score,) in conn.execute("SELECT score FROM tumors ORDER BY id")]
    assert got == _offline(model, rows) * 2


def test_text_output_column_gets_the_label(conn):
    model, data = trained.iris_text_labels()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    upload(conn, "iris", model, feature_names=names)
    import pandas as pd

    frame = pd.DataFrame(data, columns=names)
    create_table(conn, "flowers", frame, extra={"species": "text"})
    conn.execute("SELECT pgml_trigger.attach('flowers', 'iris', 'species')")
    copy_rows(conn, "flowers", frame)
    got = [species for (species,) in conn.execute("SELECT species FROM flowers ORDER BY id")]
    assert got == list(model.predict(data))


def test_features_list_maps_differently_named_columns(conn):
    model, data = trained.iris_text_labels()
    upload(conn, "iris", model)  # features x0..x3
    conn.execute('CREATE TABLE petals ("Petal Width" float8, "sepal ""w""" float8, sl float8, pl float8, '
                 "species varchar(20))")
    conn.execute("""SELECT pgml_trigger.attach('petals', 'iris', 'species',
                    ARRAY['sl', 'sepal "w"', 'pl', 'Petal Width'])""")
    row = data[60]
    conn.execute('INSERT INTO petals (sl, "sepal ""w""", pl, "Petal Width") VALUES (%s, %s, %s, %s)', list(row))
    assert conn.execute("SELECT species FROM petals").fetchone()[0] == model.predict([row])[0]


def test_update_rescoring_only_when_a_feature_changes(conn, bc):
    X, model = bc
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    copy_rows(conn, "tumors", X.iloc[:2])
    conn.execute("UPDATE tumors SET score = -1")  # the output column is not a feature: no re-score
    conn.execute("UPDATE tumors SET note = 'seen'")  # not a feature column: trigger does not fire
    conn.execute('UPDATE tumors SET "mean_radius" = "mean_radius"')  # a feature, unchanged: keeps the value
    assert [s for (s,) in conn.execute("SELECT score FROM tumors ORDER BY id")] == [-1.0, -1.0]
    # Copy row 1's features into row 0 (ids 1 and 2): row 0 changes, and is re-scored as row 1.
    sets = ", ".join(f'"{name}" = src."{name}"' for name in X.columns)
    conn.execute(f"UPDATE tumors AS t SET {sets} FROM tumors AS src WHERE t.id = 1 AND src.id = 2")
    assert [s for (s,) in conn.execute("SELECT score FROM tumors ORDER BY id")] == [
        float(model.predict(X.iloc[[1]])[0]), -1.0]


def test_mixed_type_pipeline_from_trigger(conn):
    model = trained.mixed_pipeline()
    X, _ = trained.diabetes_mixed()
    upload(conn, "mixed", model)
    create_table(conn, "visits", X, extra={"prediction": "double precision"})
    conn.execute("SELECT pgml_trigger.attach('visits', 'mixed', 'prediction')")
    copy_rows(conn, "visits", X)
    got = [p for (p,) in conn.execute("SELECT prediction FROM visits ORDER BY id")]
    assert got == _offline(model, X)


def test_detach_removes_trigger_function_and_record(conn, bc):
    X, _ = bc
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    conn.execute("SELECT pgml_trigger.detach('tumors', 'score')")
    copy_rows(conn, "tumors", X.iloc[:1])
    assert conn.execute("SELECT score FROM tumors").fetchone()[0] is None
    assert conn.execute("SELECT count(*) FROM pgml_trigger.attachments").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tumors'::regclass").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'score\\_%' "
                        "AND pronamespace = 'pgml_trigger'::regnamespace").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.UndefinedObject, match='no model is attached to column "score"'):
        conn.execute("SELECT pgml_trigger.detach('tumors', 'score')")


def test_attaching_again_replaces_the_attachment(conn, bc):
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc@1', 'score')")
    assert conn.execute("SELECT model_ref FROM pgml_trigger.attachments").fetchall() == [("bc@1",)]
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tumors'::regclass").fetchone()[0] == 1


def test_dropping_the_table_forgets_the_attachment(conn, bc):
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    conn.execute("DROP TABLE tumors")
    assert conn.execute("SELECT count(*) FROM pgml_trigger.attachments").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'score\\_%' "
                        "AND pronamespace = 'pgml_trigger'::regnamespace").fetchone()[0] == 0


def test_trigger_follows_the_production_alias(conn, connect):
    X, y = trained.diabetes()
    from sklearn.linear_model import Ridge

    first, second = Ridge(alpha=0.1).fit(X, y), Ridge(alpha=50.0).fit(X, y)
    upload(conn, "d", first, alias="production")
    upload(conn, "d", second)
    load_table(conn, "patients", X.iloc[:0], extra={"risk": "float8"})
    conn.execute("SELECT pgml_trigger.attach('patients', 'd', 'risk')")
    writer = connect()
    copy_rows(writer, "patients", X.iloc[:1])
    conn.execute("SELECT pgml_trigger.set_alias('d', 'production', 2)")
    copy_rows(writer, "patients", X.iloc[:1])
    got = [r for (r,) in conn.execute("SELECT risk FROM patients ORDER BY id")]
    expected = [float(first.predict(X.iloc[[0]])[0]), float(second.predict(X.iloc[[0]])[0])]
    assert got == pytest.approx(expected, rel=linear.RTOL, abs=linear.ATOL)  # the trigger's SQL arithmetic

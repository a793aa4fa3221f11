"""Prediction log, challengers, statement mode, logged call sites, counters and the model_versions view."""

from __future__ import annotations

import psycopg
import pytest
import trained
from sklearn.linear_model import Ridge
from tables import copy_rows, create_table

from pgml_trigger import upload


@pytest.fixture
def diabetes(conn):
    X, y = trained.diabetes()
    champion, challenger = Ridge(alpha=0.1).fit(X, y), Ridge(alpha=30.0).fit(X, y)
    upload(conn, "risk", champion, alias="production")
    upload(conn, "risk", challenger, alias="staging")
    create_table(conn, "patients", X, extra={"risk": "double precision"})
    return X, champion, challenger


def _offline(model, X):
    return [float(model.predict(X.iloc[[i]])[0]) for i in range(len(X))]


def test_logged_attachment_writes_predictions_with_row_keys_and_features(conn, diabetes):
    X, champion, _ = diabetes
    conn.execute("SELECT pgml_trigger.attach('patients', 'risk', 'risk', log => true)")
    copy_rows(conn, "patients", X.iloc[:20])
    rows = conn.execute("SELECT model_name, model_version, role, target, output_column, row_key, prediction, "
                        "features FROM pgml_trigger.prediction_log ORDER BY row_key::int").fetchall()
    assert [r[:6] for r in rows] == [("risk", 1, "champion", "public.patients", "risk", str(i)) for i in range(1, 21)]
    assert [r[6] for r in rows] == _offline(champion, X.iloc[:20])
    assert rows[0][7] == {name: float(value) for name, value in X.iloc[0].items()}
    assert [r for (r,) in conn.execute("SELECT risk FROM patients ORDER BY id")] == [r[6] for r in rows]


def test_a_rolled_back_insert_leaves_no_log_rows(connect, conn, diabetes):
    X, _, _ = diabetes
    conn.execute("SELECT pgml_trigger.attach('patients', 'risk', 'risk', log => true)")
    session = connect(autocommit=False)
    copy_rows(session, "patients", X.iloc[:5])
    assert session.execute("SELECT count(*) FROM pgml_trigger.prediction_log").fetchone()[0] == 5
    session.rollback()
    assert conn.execute("SELECT count(*) FROM pgml_trigger.prediction_log").fetchone()[0] == 0


def test_challenger_scores_into_the_log_only(conn, diabetes):
    X, champion, challenger = diabetes
    conn.execute("SELECT pgml_trigger.attach('patients', 'risk', 'risk', challenger => 'risk@staging')")
    copy_rows(conn, "patients", X.iloc[:10])
    assert [r for (r,) in conn.execute("SELECT risk FROM patients ORDER BY id")] == _offline(champion, X.iloc[:10])
    logged = conn.execute("SELECT role, model_version, prediction, features FROM pgml_trigger.prediction_log "
                          "ORDER BY role, row_key::int").fetchall()
    assert [(role, version) for role, version, _, _ in logged] == [("challenger", 2)] * 10 + [("champion", 1)] * 10
    assert [p for _, _, p, _ in logged[:10]] == _offline(challenger, X.iloc[:10])
    assert all(features is None for *_, features in logged)  # log => false: predictions only


def test_challenger_must_take_the_same_features(conn, diabetes):
    upload(conn, "other", trained.iris_text_labels()[0])
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="does not take the features"):
        conn.execute("SELECT pgml_trigger.attach('patients', 'risk', 'risk', challenger => 'other')")


def test_statement_mode_scores_inserts_in_chunks_into_the_log(conn, diabetes):
    X, champion, _ = diabetes
    conn.execute("SELECT pgml_trigger.attach('patients', 'risk', 'predicted_risk', mode => 'statement')")
    copy_rows(conn, "patients", X)
    conn.execute("INSERT INTO patients (age, sex, bmi, bp, s1, s2, s3, s4, s5, s6) "
                 "SELECT age, sex, bmi, bp, s1, s2, s3, s4, s5, s6 FROM patients, generate_series(1, 25)")
    total = len(X) * 26
    assert conn.execute("SELECT count(risk) FROM patients").fetchone()[0] == 0  # the table is not written
    logged = conn.execute("SELECT count(*), count(DISTINCT row_key), min(output_column), bool_and(features IS NULL) "
                          "FROM pgml_trigger.prediction_log").fetchone()
    assert logged == (total, total, "predicted_risk", True)
    first = conn.execute("SELECT l.prediction FROM pgml_trigger.prediction_log AS l "
                         "WHERE l.row_key::int <= %s ORDER BY l.row_key::int", [len(X)]).fetchall()
    assert [p for (p,) in first] == pytest.approx(_offline(champion, X), rel=1e-12)
    assert conn.execute("SELECT mode FROM pgml_trigger.attachments").fetchone()[0] == "statement"


def test_statement_mode_needs_a_primary_key(conn, diabetes):
    conn.execute("CREATE TABLE keyless (age float8)")
    with pytest.raises(psycopg.errors.InvalidTableDefinition, match="needs a primary key on keyless"):
        conn.execute("SELECT pgml_trigger.attach('keyless', 'risk', 'p', ARRAY['age','age','age','age','age','age',"
                     "'age','age','age','age'], mode => 'statement')")


def test_logged_call_site(conn, diabetes):
    X, champion, _ = diabetes
    got = conn.execute("SELECT pgml_trigger.predict('risk', %s::float8[], 'order-17')", [list(X.iloc[3])]).fetchone()
    assert got[0] == float(champion.predict(X.iloc[[3]])[0])
    assert conn.execute("SELECT role, row_key, prediction, target FROM pgml_trigger.prediction_log").fetchall() == [
        ("call", "order-17", got[0], None)]


def test_drift_from_the_prediction_log(conn, diabetes):
    X, y = trained.diabetes()
    upload(conn, "profiled", Ridge().fit(X, y), sample=X)
    create_table(conn, "recent", X, extra={"risk": "double precision"})
    conn.execute("SELECT pgml_trigger.attach('recent', 'profiled', 'risk', log => true)")
    copy_rows(conn, "recent", X.assign(bmi=X["bmi"] + 0.08))
    drifted = conn.execute("SELECT feature, rows FROM pgml_trigger.drift('profiled', 'pgml_trigger.prediction_log') "
                           "WHERE drifted").fetchall()
    assert drifted == [("bmi", len(X))]


def test_counters_add_up_calls_rows_errors_and_loads_over_backends(conn, connect, diabetes):
    X, _, _ = diabetes
    others = [connect() for _ in range(2)]
    for session in [conn, *others]:
        for i in range(5):
            session.execute("SELECT pgml_trigger.predict('risk@1', %s::float8[])", [list(X.iloc[i])])
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            session.execute("SELECT pgml_trigger.predict('risk@1', ARRAY[1.0])")
        session.execute("SELECT pgml_trigger.predict_batch('risk@1', %s::float8[][])", [X.iloc[:7].values.tolist()])
    for session in others:  # asking for counters() publishes a backend's own counts first
        session.execute("SELECT count(*) FROM pgml_trigger.counters()")
    row = conn.execute("SELECT backends, calls, rows, errors, loads, seconds > 0, load_seconds FROM "
                       "pgml_trigger.counters() WHERE name = 'risk' AND version = 1").fetchone()
    assert row[:6] == (3, 3 * 6, 3 * 12, 3, 3, True)
    # The three loads into the caches, one per backend, as cache_info() timed them in each.
    loaded = [session.execute("SELECT load_seconds FROM pgml_trigger.cache_info() WHERE name = 'risk'").fetchone()[0]
              for session in [conn, *others]]
    assert row[6] == pytest.approx(sum(loaded), rel=1e-9)


def test_model_versions_view(conn, diabetes):
    rows = conn.execute("SELECT name, version, format, scoring_path, aliases, sklearn_version IS NOT NULL, "
                        "payload_bytes > 0 FROM pgml_trigger.model_versions ORDER BY version").fetchall()
    assert rows == [("risk", 1, "joblib", "sklearn", ["production"], True, True),
                    ("risk", 2, "joblib", "sklearn", ["staging"], True, True)]

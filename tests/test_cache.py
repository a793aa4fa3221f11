"""The per-backend model cache: one load per backend, and other sessions' changes seen on the next statement."""

from __future__ import annotations

import psycopg
import pytest
import trained
from sklearn.linear_model import Ridge

from pgml_trigger import upload


def _models(X, y):
    return Ridge(alpha=0.1).fit(X, y), Ridge(alpha=50.0).fit(X, y)


def test_a_model_is_deserialized_once_per_backend(conn):
    X, _ = trained.diabetes()
    upload(conn, "diabetes", trained.diabetes_ridge())
    for i in range(25):
        conn.execute("SELECT pgml_trigger.predict('diabetes', %s::float8[])", [list(X.iloc[i])])
    conn.execute("SELECT sum(pgml_trigger.predict('diabetes', ARRAY[age, sex, bmi, bp, s1, s2, s3, s4, s5, s6])) "
                 "FROM (SELECT 0.01 AS age, 0.02 AS sex, 0.03 AS bmi, 0.0 AS bp, 0.0 AS s1, 0.0 AS s2, 0.0 AS s3, "
                 "0.0 AS s4, 0.0 AS s5, 0.0 AS s6 FROM generate_series(1, 500)) AS rows")
    assert conn.execute("SELECT name, version, loads FROM pgml_trigger.cache_info()").fetchall() == [
        ("diabetes", 1, 1)]


def test_open_session_sees_new_version_without_reconnecting(conn, connect):
    X, y = trained.diabetes()
    first, second = _models(X, y)
    upload(conn, "churn", first)
    reader = connect()
    row = list(X.iloc[3])
    predict = "SELECT pgml_trigger.predict('churn', %s::float8[])"
    assert reader.execute(predict, [row]).fetchone()[0] == float(first.predict(X.iloc[[3]])[0])
    upload(conn, "churn", second)  # committed by another session
    assert reader.execute(predict, [row]).fetchone()[0] == float(second.predict(X.iloc[[3]])[0])


def test_open_session_sees_alias_moves(conn, connect):
    X, y = trained.diabetes()
    first, second = _models(X, y)
    upload(conn, "churn", first, alias="production")
    upload(conn, "churn", second)
    reader = connect()
    predict = "SELECT pgml_trigger.predict('churn', %s::float8[])"
    row = list(X.iloc[5])
    assert reader.execute(predict, [row]).fetchone()[0] == float(first.predict(X.iloc[[5]])[0])
    conn.execute("SELECT pgml_trigger.set_alias('churn', 'production', 2)")
    assert reader.execute(predict, [row]).fetchone()[0] == float(second.predict(X.iloc[[5]])[0])
    conn.execute("SELECT pgml_trigger.set_alias('churn', 'production', 1)")
    assert reader.execute(predict, [row]).fetchone()[0] == float(first.predict(X.iloc[[5]])[0])


def test_open_session_sees_a_deleted_model(conn, connect):
    X, _ = trained.diabetes()
    upload(conn, "churn", trained.diabetes_ridge())
    reader = connect()
    reader.execute("SELECT pgml_trigger.predict('churn', %s::float8[])", [list(X.iloc[0])])
    conn.execute("DELETE FROM pgml_trigger.models WHERE name = 'churn'")
    with pytest.raises(psycopg.errors.UndefinedObject, match='model "churn" does not exist'):
        reader.execute("SELECT pgml_trigger.predict('churn', %s::float8[])", [list(X.iloc[0])])


def test_uncommitted_upload_is_invisible_to_other_sessions(conn, connect):
    X, y = trained.diabetes()
    first, second = _models(X, y)
    upload(conn, "churn", first)
    reader = connect()
    predict = "SELECT pgml_trigger.predict('churn', %s::float8[])"
    row = list(X.iloc[1])
    reader.execute(predict, [row])
    writer = connect(autocommit=False)
    writer.execute("SELECT 1")  # open a transaction: upload() then joins it instead of committing
    upload(writer, "churn", second)
    assert reader.execute(predict, [row]).fetchone()[0] == float(first.predict(X.iloc[[1]])[0])
    writer.rollback()
    assert reader.execute(predict, [row]).fetchone()[0] == float(first.predict(X.iloc[[1]])[0])

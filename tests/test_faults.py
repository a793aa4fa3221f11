"""Faults: a backend killed with SIGKILL mid-load and mid-INSERT, payloads that cannot load.

After a backend dies by SIGKILL the postmaster ends every session and
recovers from the WAL; afterwards no partial rows may be visible, every
payload must still match its sha256, and scoring must work. Killing needs a
server on this machine whose processes we may signal: the local cluster.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import sys
import threading
import time

import joblib
import psycopg
import pytest
import trained
from psycopg.types.json import Jsonb

from pgml_trigger import formats, upload


@pytest.fixture
def killable(server):
    if server["kind"] != "local cluster":
        pytest.skip(f"killing backends needs the local cluster fixture; this server comes from {server['kind']}")


def _insert_raw(conn, name: str, payload: bytes, features=("a",)) -> None:
    """A models row written directly, bypassing the uploader's checks (but with the right sha256)."""
    conn.execute("""
        INSERT INTO pgml_trigger.models (name, version, format, payload, sha256, task, feature_names, feature_types,
                                         feature_inputs, input_kind, python_version, sklearn_version, numpy_version,
                                         joblib_version)
        VALUES (%s, 0, 'joblib', %s, %s, 'regression', %s, %s, %s, 'array', '3', '1', '1', '1')""",
                 [name, payload, formats.sha256(payload), list(features), ["number"] * len(features),
                  Jsonb([{}] * len(features))])


def _model_table(conn):
    return conn.execute("SELECT name, version, sha256, encode(sha256(payload), 'hex'), octet_length(payload) "
                        "FROM pgml_trigger.models ORDER BY name, version").fetchall()


def _kill_while_running(dsn: str, statement: str, marker: str, after: float) -> str:
    """Run statement in its own session; SIGKILL its backend ``after`` seconds into it; return how it ended."""
    victim = psycopg.connect(dsn, autocommit=True)
    pid = victim.info.backend_pid
    outcome: list[str] = []

    def run():
        try:
            victim.execute(statement)
            outcome.append("finished")
        except psycopg.OperationalError as exc:
            outcome.append(f"killed: {type(exc).__name__}")

    thread = threading.Thread(target=run)
    thread.start()
    with psycopg.connect(dsn, autocommit=True) as watcher:
        deadline = time.monotonic() + 30
        while not watcher.execute("SELECT true FROM pg_stat_activity WHERE pid = %s AND state = 'active' "
                                  "AND query LIKE %s", [pid, f"%{marker}%"]).fetchone():
            assert time.monotonic() < deadline, "the statement never started"
            time.sleep(0.02)
    time.sleep(after)
    os.kill(pid, signal.SIGKILL)
    thread.join(60)
    victim.close()
    return outcome[0]


def _recovered(dsn: str) -> psycopg.Connection:
    """A new session once the postmaster has restarted the backends and replayed the WAL."""
    deadline = time.monotonic() + 120
    while True:
        try:
            session = psycopg.connect(dsn, autocommit=True)
            session.execute("SELECT 1")
            return session
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "the server did not come back"
            time.sleep(0.2)


class _Call:
    """Pickles as a call of function(*args): loading the payload runs it (here: time.sleep, a slow load)."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return (self.function, self.args)


def test_sigkill_during_model_loading(killable, dsn, conn, figure):
    upload(conn, "reg", trained.diabetes_ridge())
    _insert_raw(conn, "slow", pickle.dumps((_Call(time.sleep, 60), None), protocol=4))
    before = _model_table(conn)
    ended = _kill_while_running(dsn, "SELECT pgml_trigger.predict('slow', ARRAY[1.0])", "'slow'", after=1.0)
    assert ended.startswith("killed")
    with _recovered(dsn) as session:
        assert _model_table(session) == before
        assert all(row[2] == row[3] for row in before)
        X, _ = trained.diabetes()
        expected = float(trained.diabetes_ridge().predict(X.iloc[[0]])[0])
        assert session.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [list(X.iloc[0])]).fetchone() == (
            expected,)
    figure("backend SIGKILLs survived (model loading)", 1)


def test_sigkill_during_bulk_scored_insert(killable, dsn, conn, figure):
    upload(conn, "reg", trained.diabetes_ridge())
    X, _ = trained.diabetes()
    columns = ", ".join(f"{name} float8" for name in X.columns)
    conn.execute(f"CREATE TABLE scored (id serial PRIMARY KEY, {columns}, score float8)")
    conn.execute("SELECT pgml_trigger.attach('scored', 'reg', 'score')")
    names = ", ".join(X.columns)
    conn.execute(f"INSERT INTO scored ({names}) SELECT {', '.join(['0.01'] * 10)} FROM generate_series(1, 100)")
    committed = conn.execute("SELECT id, score FROM scored ORDER BY id").fetchall()
    before = _model_table(conn)
    bulk = (f"INSERT INTO scored ({names}) SELECT {', '.join(['g / 1e7'] * 10)} "
            "FROM generate_series(1, 5000000) AS g /* bulk */")
    ended = _kill_while_running(dsn, bulk, "/* bulk */", after=1.5)
    assert ended.startswith("killed")
    with _recovered(dsn) as session:
        assert session.execute("SELECT id, score FROM scored ORDER BY id").fetchall() == committed
        assert _model_table(session) == before
        session.execute(f"INSERT INTO scored ({names}) VALUES ({', '.join(['0.01'] * 10)})")
        assert session.execute("SELECT count(*), count(DISTINCT score) FROM scored").fetchone() == (101, 1)
    figure("backend SIGKILLs survived (bulk INSERT ... SELECT)", 1)


def test_payload_whose_module_is_missing_is_a_clean_error(conn, tmp_path):
    module = tmp_path / "pgml_only_on_the_client.py"
    module.write_text("class Estimator:\n    def predict(self, X):\n        return [0.0] * len(X)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import pgml_only_on_the_client

        buffer = io.BytesIO()
        joblib.dump(pgml_only_on_the_client.Estimator(), buffer)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("pgml_only_on_the_client", None)
    _insert_raw(conn, "elsewhere", buffer.getvalue())
    for _ in range(2):  # the failure is not cached as something else
        with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
            conn.execute("SELECT pgml_trigger.predict('elsewhere', ARRAY[1.0])")
        assert caught.value.diag.message_primary == (
            "pgml_trigger: model elsewhere@1 cannot be loaded in this server: "
            "No module named 'pgml_only_on_the_client'")
    assert conn.execute("SELECT 1").fetchone() == (1,)


def test_truncated_payload_is_a_clean_error(conn):
    upload(conn, "cut", trained.diabetes_ridge())
    # Stored bytes cut short behind the immutability trigger's back: the sha256 no longer matches.
    conn.execute("ALTER TABLE pgml_trigger.models DISABLE TRIGGER models_before_update")
    conn.execute("UPDATE pgml_trigger.models SET payload = substring(payload FROM 1 FOR octet_length(payload) / 2)")
    conn.execute("ALTER TABLE pgml_trigger.models ENABLE TRIGGER models_before_update")
    with pytest.raises(psycopg.errors.DataCorrupted) as caught:
        conn.execute("SELECT pgml_trigger.predict('cut', ARRAY[0,0,0,0,0,0,0,0,0,0]::float8[])")
    assert "does not match its sha256" in caught.value.diag.message_primary

    # Cut short before upload, with the sha256 of what was cut: intact as stored, but no pickle.
    full = formats.dump(trained.diabetes_ridge())
    _insert_raw(conn, "short", full[: len(full) // 2], features=list(trained.diabetes()[0].columns))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
        conn.execute("SELECT pgml_trigger.predict('short', ARRAY[0,0,0,0,0,0,0,0,0,0]::float8[])")
    assert caught.value.diag.message_primary.startswith("pgml_trigger: model short@1 cannot be deserialized: ")
    assert conn.execute("SELECT 1").fetchone() == (1,)


def _big_forest():
    X, y = trained.breast_cancer()
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=400, random_state=0).fit(X, y)


def test_payload_larger_than_a_backend_may_hold_is_a_clean_error(conn, connect, dsn):
    upload(conn, "big", _big_forest(), compile=False)
    upload(conn, "small", trained.diabetes_ridge())
    size = conn.execute("SELECT payload_bytes FROM pgml_trigger.model_catalog WHERE name = 'big'").fetchone()[0]
    assert size > 2**20
    conn.execute(f"ALTER DATABASE {psycopg.sql.Identifier(conn.info.dbname).as_string(conn)} "
                 "SET pgml_trigger.model_cache_mb = 1")
    session = connect()  # a new backend reads the setting
    X, _ = trained.breast_cancer()
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match=r"model big@1 has a payload of .* MB, more than a "
                                                                  r"backend may hold"):
        session.execute("SELECT pgml_trigger.predict('big', %s::float8[])", [list(X.iloc[0])])
    assert session.execute("SELECT pgml_trigger.predict('small', ARRAY[0,0,0,0,0,0,0,0,0,0]::float8[])").fetchone()


class _Huge:
    """Unpickles into a 10**15-byte bytearray: more memory than any backend gets."""

    def __reduce__(self):
        return (bytearray, (10**15,))


def test_running_out_of_memory_while_loading_is_a_clean_error(conn):
    buffer = io.BytesIO()
    joblib.dump(_Huge(), buffer)
    _insert_raw(conn, "huge", buffer.getvalue())
    with pytest.raises(psycopg.errors.OutOfMemory, match="model huge@1 does not fit in this backend's memory"):
        conn.execute("SELECT pgml_trigger.predict('huge', ARRAY[1.0])")
    assert conn.execute("SELECT 1").fetchone() == (1,)  # the backend lives on

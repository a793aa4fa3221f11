"""Scans that call predict() run in parallel workers, which read the catalog and payloads from the server's files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
import trained
from sklearn.linear_model import Ridge

from pgml_trigger import upload

FEATURES_BC = list(trained.breast_cancer()[0].columns)
COPIES = 6  # of the 569 breast-cancer rows: a modest table, scanned in parallel with the costs below set to 0
# Workers for any table, whatever the planner thinks they cost.
PARALLEL = ("SET parallel_setup_cost = 0", "SET parallel_tuple_cost = 0", "SET min_parallel_table_scan_size = 0",
            "SET max_parallel_workers_per_gather = 2")


def _parallel_session(connect):
    """A new backend: its first statement may be a parallel query, so it bootstraps without SPI too."""
    session = connect()
    for setting in PARALLEL:
        session.execute(setting)
    return session


def _serial_session(connect):
    session = connect()
    session.execute("SET max_parallel_workers_per_gather = 0")
    return session


def _workers(session, query: str, params=()) -> tuple[int, int]:
    """(planned, launched) of the query's Gather, from EXPLAIN ANALYZE (which runs it)."""
    plan = session.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", params).fetchone()[0][0]["Plan"]
    stack = [plan]
    while stack:
        node = stack.pop()
        if "Workers Planned" in node:
            return node["Workers Planned"], node.get("Workers Launched", 0)
        stack.extend(node.get("Plans", []))
    return 0, 0


def _breast_cancer_table(conn) -> pd.DataFrame:
    """The table bc: COPIES times the breast-cancer rows, with an id; its rows, in id order."""
    X, _ = trained.breast_cancer()
    rows = pd.concat([X] * COPIES, ignore_index=True)
    conn.execute(f"CREATE TABLE bc (id integer PRIMARY KEY, {', '.join(f'{c} float8' for c in FEATURES_BC)})")
    with conn.cursor().copy(f"COPY bc (id, {', '.join(FEATURES_BC)}) FROM STDIN") as copy:
        for i, row in enumerate(rows.itertuples(index=False)):
            copy.write_row([i, *row])
    conn.execute("VACUUM ANALYZE bc")
    return rows


def _server_files(conn) -> Path:
    """This database's directory of the server's files (pgml_trigger/server/model_files.py, snapshot.py)."""
    data = conn.execute("SHOW data_directory").fetchone()[0]
    oid = conn.execute("SELECT oid FROM pg_database WHERE datname = current_database()").fetchone()[0]
    return Path(data) / "pg_stat_tmp" / "pgml_trigger" / str(oid)


def _local_files_only(server):
    if server["kind"] == "testcontainers":
        pytest.skip("reads the server's data directory on this host")


def test_a_parallel_scan_scores_in_workers_as_the_library_does(conn, connect):
    forest = trained.forest_breast_cancer()
    upload(conn, "forest", forest)
    rows = _breast_cancer_table(conn)
    session = _parallel_session(connect)
    positional = f"ARRAY[{', '.join(FEATURES_BC)}]"
    total = "SELECT sum(pgml_trigger.predict('forest', t)) FROM bc AS t"
    assert _workers(session, total) == (2, 2)
    assert session.execute(total).fetchone()[0] == float(forest.predict(rows).sum())

    scored = session.execute(
        f"SELECT id, pgml_trigger.predict('forest', {positional}), pgml_trigger.predict_label('forest', t), "
        f"pgml_trigger.predict_proba('forest', to_jsonb(t)) FROM bc AS t ORDER BY id").fetchall()
    assert _workers(session, f"SELECT pgml_trigger.predict_proba('forest', {positional}) FROM bc") == (2, 2)
    assert [value for _, value, _, _ in scored] == forest.predict(rows).astype(float).tolist()
    assert [label for _, _, label, _ in scored] == [str(label) for label in forest.predict(rows)]
    assert np.allclose([proba for *_, proba in scored], forest.predict_proba(rows), atol=1e-6)


def test_create_table_as_scores_in_workers(conn, connect):
    forest = trained.forest_breast_cancer()
    upload(conn, "forest", forest)
    rows = _breast_cancer_table(conn)
    session = _parallel_session(connect)
    planned, launched = _workers(session, "CREATE TABLE scored AS SELECT id, pgml_trigger.predict('forest', t) AS p "
                                          "FROM bc AS t")
    assert (planned, launched) == (2, 2)
    assert [p for (p,) in session.execute("SELECT p FROM scored ORDER BY id")] == \
        forest.predict(rows).astype(float).tolist()


def test_workers_see_an_alias_move_and_a_new_version(conn, connect):
    X, y = trained.diabetes()
    first, second, third = (Ridge(alpha=alpha).fit(X, y) for alpha in (0.1, 10.0, 100.0))
    upload(conn, "churn", first, alias="production")
    upload(conn, "churn", second)
    features = list(X.columns)
    conn.execute(f"CREATE TABLE d ({', '.join(f'{name} float8' for name in features)})")
    table = pd.concat([X] * 8, ignore_index=True)
    with conn.cursor().copy("COPY d FROM STDIN") as copy:
        for row in table.itertuples(index=False):
            copy.write_row(row)
    conn.execute("VACUUM ANALYZE d")
    session = _parallel_session(connect)
    total = "SELECT sum(pgml_trigger.predict('churn', d)) FROM d"

    def scored() -> float:
        assert _workers(session, total) == (2, 2)
        return session.execute(total).fetchone()[0]

    assert scored() == pytest.approx(first.predict(table).sum())
    conn.execute("SELECT pgml_trigger.set_alias('churn', 'production', 2)")  # another session, committed
    assert scored() == pytest.approx(second.predict(table).sum())
    conn.execute("DELETE FROM pgml_trigger.aliases WHERE name = 'churn'")
    upload(conn, "churn", third)  # no alias: the latest version
    assert scored() == pytest.approx(third.predict(table).sum())


def test_payload_files_are_private_to_the_server_checked_and_fetched_again(server, conn, connect):
    _local_files_only(server)
    forest = trained.forest_breast_cancer()
    upload(conn, "forest", forest)
    rows = _breast_cancer_table(conn)
    compiled_sha256 = conn.execute("SELECT compiled_sha256 FROM pgml_trigger.models").fetchone()[0]
    directory = _server_files(conn)
    data_directory = directory.parents[2]
    stored = directory / "models" / compiled_sha256
    owner = data_directory.stat().st_uid
    for path in (directory, directory / "models", directory / "catalog", stored):
        assert path.stat().st_uid == owner
        assert path.stat().st_mode & 0o077 == 0, f"{path} is open to others"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == compiled_sha256

    graph = bytearray(stored.read_bytes())
    graph[len(graph) // 2] ^= 0xFF
    stored.write_bytes(bytes(graph))
    total = "SELECT sum(pgml_trigger.predict('forest', t)) FROM bc AS t"
    one_worker = _parallel_session(connect)  # planned with two, launched with one, and a leader that only gathers:
    one_worker.execute("SET max_parallel_workers = 1")  # one process reads the file
    one_worker.execute("SET parallel_leader_participation = off")
    with pytest.raises(psycopg.errors.DataCorrupted, match=r"model forest@1: the server's file .* does not match "
                                                           r"its sha256; it was removed"):
        one_worker.execute(total)
    assert not stored.exists()

    serial = _serial_session(connect)  # fetches the graph through SPI and writes it again
    assert serial.execute(total).fetchone()[0] == float(forest.predict(rows).sum())
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == compiled_sha256
    assert _parallel_session(connect).execute(total).fetchone()[0] == float(forest.predict(rows).sum())


def test_without_a_snapshot_a_parallel_query_says_what_to_do(server, conn, connect):
    _local_files_only(server)
    forest = trained.forest_breast_cancer()
    upload(conn, "forest", forest)
    rows = _breast_cancer_table(conn)
    catalog = _server_files(conn) / "catalog"
    for snapshot in catalog.iterdir():
        snapshot.unlink()
    total = "SELECT sum(pgml_trigger.predict('forest', t)) FROM bc AS t"
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState,
                       match="cannot read the model catalog in a parallel query") as raised:
        _parallel_session(connect).execute(total)
    assert "max_parallel_workers_per_gather = 0" in raised.value.diag.message_hint
    assert _serial_session(connect).execute(total).fetchone()[0] == float(forest.predict(rows).sum())
    assert _parallel_session(connect).execute(total).fetchone()[0] == float(forest.predict(rows).sum())


def test_a_parallel_query_names_a_reference_that_resolves_to_nothing(conn, connect):
    upload(conn, "forest", trained.forest_breast_cancer())
    _breast_cancer_table(conn)
    session = _parallel_session(connect)
    for reference, error, message in (
            ("nothing", psycopg.errors.UndefinedObject, 'model "nothing" does not exist'),
            ("forest@7", psycopg.errors.UndefinedObject, 'model "forest" has no version 7'),
            ("forest@staging", psycopg.errors.UndefinedObject, 'model "forest" has no alias "staging"')):
        with pytest.raises(error, match=message):
            session.execute("SELECT sum(pgml_trigger.predict(%s, t)) FROM bc AS t", [reference])


def test_deleting_a_version_removes_its_files(server, conn):
    _local_files_only(server)
    X, y = trained.diabetes()
    upload(conn, "churn", Ridge(alpha=0.1).fit(X, y))
    upload(conn, "churn", Ridge(alpha=10.0).fit(X, y))
    models = _server_files(conn) / "models"
    hashes = dict(conn.execute("SELECT version, coalesce(compiled_sha256, sha256) FROM pgml_trigger.models").fetchall())
    assert all((models / sha256).exists() for sha256 in hashes.values())
    conn.execute("SELECT pgml_trigger.delete_model('churn', 1)")
    assert not (models / hashes[1]).exists()
    assert (models / hashes[2]).exists()

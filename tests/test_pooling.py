"""Through PgBouncer, as most applications reach PostgreSQL: predictions, triggers, alias moves, warm_up, and
what server-side prepared statements do in a transaction pool.

Each test starts its own PgBouncer (the Debian package; install/setup-dev.sh installs it, and a machine without
it fails these tests rather than skipping them) on a free loopback port in front of the test's database:
``auth_type = trust`` for loopback clients, and for the server the same login as the suite's direct connections.
As root it runs as the ``postgres`` OS user, as the suite's local cluster does (PgBouncer refuses to run as root).

PgBouncer 1.18 (Debian 12) does not track protocol-level prepared statements: ``max_prepared_statements`` came
in 1.21. In a transaction pool a client must not prepare statements on the server (psycopg:
``prepare_threshold=None``); in a session pool they work, and the default ``server_reset_query`` (DISCARD ALL)
drops them when a client leaves, while PL/Python's state, and so pgml_trigger's model cache, stays with the
server connection. docs/pooling.md says what follows for sizing and warm_up.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
import trained
from sklearn.linear_model import Ridge
from tables import copy_rows, create_table

from pgml_trigger import upload
from pgml_trigger.localcluster import SERVER_OS_USER, free_port

PREDICT = "SELECT pgml_trigger.predict(%s, %s::float8[])"
PSYCOPG_DEFAULT_THRESHOLD = 5  # psycopg prepares a statement on the server from its sixth run on a connection


class PgBouncer:
    """One PgBouncer process in front of one database, in its own directory; ``stop()`` removes both."""

    def __init__(self, server_dsn: str, pool_mode: str, pool_size: int, connect_query: str | None):
        binary = shutil.which("pgbouncer", path=os.environ.get("PATH", "") + ":/usr/sbin")
        if binary is None:
            pytest.fail("pgbouncer is not installed: apt-get install pgbouncer (install/setup-dev.sh does it)")
        self.binary = binary
        self.server = psycopg.conninfo.conninfo_to_dict(server_dsn)
        self.pool_mode, self.pool_size, self.connect_query = pool_mode, pool_size, connect_query
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pgml_trigger_pgbouncer_"))
        self.process: subprocess.Popen | None = None
        self.clients: list[psycopg.Connection] = []

    @property
    def dsn(self) -> str:
        return psycopg.conninfo.make_conninfo(host="127.0.0.1", port=self.port, dbname=self.server["dbname"],
                                              user=self.server["user"])

    def _config(self) -> str:
        target = {key: self.server[key] for key in ("host", "port", "dbname", "password") if key in self.server}
        if self.connect_query is not None:
            target["connect_query"] = self.connect_query
        # PgBouncer's connection strings quote a value in single quotes, doubling any inside.
        entry = " ".join("{}='{}'".format(key, str(value).replace("'", "''")) for key, value in target.items())
        return "\n".join([
            "[databases]",
            f"{self.server['dbname']} = {entry}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {self.root / 'userlist.txt'}",
            f"pool_mode = {self.pool_mode}",
            f"default_pool_size = {self.pool_size}",
            "max_client_conn = 50",
            f"logfile = {self.root / 'pgbouncer.log'}",
            "",
        ])

    def start(self) -> PgBouncer:
        (self.root / "pgbouncer.ini").write_text(self._config())
        (self.root / "userlist.txt").write_text(f'"{self.server["user"]}" ""\n')
        as_user = {}
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SERVER_OS_USER)
            for path in (self.root, *self.root.iterdir()):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            as_user = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        self.process = subprocess.Popen([self.binary, str(self.root / "pgbouncer.ini")], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, **as_user)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited with {self.process.returncode}:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"pgbouncer did not listen on port {self.port}:\n{self.log()}")

    def connect(self, **options) -> psycopg.Connection:
        """A client connection through the pool: autocommit, and no server-side prepared statements unless
        ``prepare_threshold`` says otherwise."""
        options.setdefault("autocommit", True)
        options.setdefault("prepare_threshold", None)
        client = psycopg.connect(self.dsn, **options)
        self.clients.append(client)
        return client

    def log(self) -> str:
        path = self.root / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def pool(dsn):
    """pool(pool_mode="transaction", pool_size=2, connect_query=None): a new PgBouncer in front of the test's
    database; its clients are closed and it is stopped at the end."""
    started: list[PgBouncer] = []

    def _pool(pool_mode: str = "transaction", pool_size: int = 2, connect_query: str | None = None) -> PgBouncer:
        bouncer = PgBouncer(dsn, pool_mode, pool_size, connect_query)
        started.append(bouncer)
        return bouncer.start()

    yield _pool
    for bouncer in started:
        bouncer.stop()


@pytest.fixture
def breast_cancer(conn):
    """The breast-cancer classifier uploaded as 'bc' (compiled to ONNX), and its rows in table tumors."""
    X, _ = trained.breast_cancer()
    model = trained.linear_breast_cancer()
    upload(conn, "bc", model)
    create_table(conn, "tumors", X, extra={"score": "double precision"})
    return X, model


def _columns(X) -> str:
    return ", ".join(f'"{name}"' for name in X.columns)


@pytest.mark.parametrize("pool_mode", ["transaction", "session"])
def test_predictions_through_the_pool_equal_scikit_learns(conn, pool, breast_cancer, pool_mode):
    X, model = breast_cancer
    copy_rows(conn, "tumors", X)
    client = pool(pool_mode).connect()
    expected = model.predict(X).astype(float).tolist()
    sample = range(0, len(X), 25)
    assert [client.execute(PREDICT, ["bc", list(X.iloc[i])]).fetchone()[0] for i in sample] == [
        expected[i] for i in sample]
    by_name = client.execute("SELECT pgml_trigger.predict('bc', t) FROM tumors AS t ORDER BY id").fetchall()
    assert [value for (value,) in by_name] == expected
    batch = client.execute(f"SELECT pgml_trigger.predict_batch('bc', array_agg(ARRAY[{_columns(X)}] ORDER BY id)) "
                           "FROM tumors").fetchone()[0]
    assert batch == expected


def test_a_trigger_fills_its_column_through_a_transaction_pool(pool, breast_cancer):
    X, model = breast_cancer
    client = pool("transaction").connect()
    client.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    copy_rows(client, "tumors", X.iloc[:200])
    client.execute(f"INSERT INTO tumors ({_columns(X)}) VALUES ({', '.join(['%s'] * X.shape[1])})",
                   [float(value) for value in X.iloc[200]])
    got = [score for (score,) in client.execute("SELECT score FROM tumors ORDER BY id")]
    assert got == model.predict(X.iloc[:201]).astype(float).tolist()


def test_an_alias_moved_on_a_direct_connection_reaches_every_pooled_backend(conn, pool):
    """Two server connections both hold version 1 in their caches; the move is seen by each on its next
    statement, whichever client it serves."""
    X, y = trained.diabetes()
    first, second = Ridge(alpha=0.1).fit(X, y), Ridge(alpha=50.0).fit(X, y)
    upload(conn, "churn", first, alias="production")
    upload(conn, "churn", second)
    bouncer = pool("transaction", pool_size=2)
    holder, other = bouncer.connect(autocommit=False), bouncer.connect()
    row = list(X.iloc[5])

    def predictions() -> dict[int, float]:
        """Per server connection (its backend's pid), the prediction of churn@production: the holder keeps its
        server connection in an open transaction, so the other client is given the second one."""
        query = "SELECT pg_backend_pid(), pgml_trigger.predict('churn@production', %s::float8[])"
        held = holder.execute(query, [row]).fetchone()
        served = other.execute(query, [row]).fetchone()
        holder.commit()
        return dict([held, served])

    before = predictions()
    assert len(before) == 2
    assert set(before.values()) == {float(first.predict(X.iloc[[5]])[0])}
    conn.execute("SELECT pgml_trigger.set_alias('churn', 'production', 2)")
    after = predictions()
    assert after.keys() == before.keys()
    assert set(after.values()) == {float(second.predict(X.iloc[[5]])[0])}


def test_warm_up_through_a_transaction_pool(pool, breast_cancer):
    X, _ = breast_cancer
    client = pool("transaction", pool_size=1).connect()
    warmed = client.execute("SELECT model, name, version, scoring_path FROM pgml_trigger.warm_up('bc')").fetchall()
    assert warmed == [("bc", "bc", 1, "onnx")]
    for i in range(5):
        client.execute(PREDICT, ["bc", list(X.iloc[i])])
    assert client.execute("SELECT name, loads FROM pgml_trigger.cache_info()").fetchall() == [("bc", 1)]


def test_connect_query_warms_each_new_server_connection(pool, breast_cancer):
    """PgBouncer's per-database connect_query runs on every server connection it opens, before any client
    uses it: the model is cached before the first client statement."""
    bouncer = pool("transaction", pool_size=2, connect_query="SELECT pgml_trigger.warm_up('bc')")
    holder, other = bouncer.connect(autocommit=False), bouncer.connect()
    cached = "SELECT pg_backend_pid(), name, loads FROM pgml_trigger.cache_info()"
    first = holder.execute(cached).fetchall()
    second = other.execute(cached).fetchall()
    holder.commit()
    assert [(name, loads) for _, name, loads in first + second] == [("bc", 1), ("bc", 1)]
    assert first[0][0] != second[0][0]


def test_server_side_prepared_statements_collide_in_a_transaction_pool(pool, breast_cancer):
    """PgBouncer 1.18 hands its one server connection to both clients in turn. psycopg, as it comes, prepares a
    statement on the server from its sixth run on, naming a connection's first one _pg3_0: the second client to
    get there finds the name taken. With prepare_threshold=None the same clients take turns freely."""
    X, _ = breast_cancer
    bouncer = pool("transaction", pool_size=1)
    first, second = (bouncer.connect(prepare_threshold=PSYCOPG_DEFAULT_THRESHOLD) for _ in range(2))
    for i in range(PSYCOPG_DEFAULT_THRESHOLD + 1):
        first.execute(PREDICT, ["bc", list(X.iloc[i])])
    with pytest.raises(psycopg.errors.DuplicatePreparedStatement, match="_pg3_0"):
        for i in range(PSYCOPG_DEFAULT_THRESHOLD + 1):
            second.execute(PREDICT, ["bc", list(X.iloc[i])])
    unprepared = [bouncer.connect() for _ in range(2)]
    pids = set()
    for i in range(20):
        client = unprepared[i % 2]
        pids.add(client.execute("SELECT pg_backend_pid()").fetchone()[0])
        client.execute(PREDICT, ["bc", list(X.iloc[i])])
    assert len(pids) == 1


def test_prepared_statements_work_in_a_session_pool_and_the_cache_outlives_the_client(pool, breast_cancer):
    """In a session pool a client keeps its server connection: prepared statements work. When it leaves,
    DISCARD ALL (server_reset_query) drops them, so the next client on that server connection can prepare the
    same names, while the backend's model cache stays: the next client's predictions load nothing."""
    X, model = breast_cancer
    bouncer = pool("session", pool_size=1)
    first = bouncer.connect(prepare_threshold=0)
    pid = first.execute("SELECT pg_backend_pid()").fetchone()[0]
    for i in range(10):
        assert first.execute(PREDICT, ["bc", list(X.iloc[i])]).fetchone()[0] == float(model.predict(X.iloc[[i]])[0])
    prepared = "SELECT name FROM pg_prepared_statements ORDER BY name"
    assert first.execute(prepared, prepare=False).fetchall() == [("_pg3_0",), ("_pg3_1",)]
    first.close()
    second = bouncer.connect(prepare_threshold=0)
    assert second.execute("SELECT pg_backend_pid()").fetchone()[0] == pid
    assert second.execute(prepared, prepare=False).fetchall() == [("_pg3_0",)]  # its own SELECT pg_backend_pid()
    for i in range(10, 20):
        assert second.execute(PREDICT, ["bc", list(X.iloc[i])]).fetchone()[0] == float(model.predict(X.iloc[[i]])[0])
    assert second.execute("SELECT name, loads FROM pgml_trigger.cache_info()").fetchall() == [("bc", 1)]


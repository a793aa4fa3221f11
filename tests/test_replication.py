"""One registry, many scoring clusters: the catalog travels by logical replication (pgml-trigger replicate).

Three throwaway clusters of their own: a registry with wal_level = logical and two scoring clusters,
each with pgml_trigger installed from the session's server environment. Each test works in new
databases and drops its subscriptions (and so the registry's slots) at the end.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import textwrap
import time

import psycopg
import pytest
import trained
from psycopg import sql
from psycopg.types.json import Jsonb
from sklearn.linear_model import LogisticRegression, Ridge

from pgml_trigger import upload
from pgml_trigger.admin.install import install
from pgml_trigger.admin.replicate import replicate
from pgml_trigger.admin.status import status
from pgml_trigger.cli import main
from pgml_trigger.errors import InstallError
from pgml_trigger.localcluster import LocalCluster

TEMPLATE = "pgml_trigger_template"
WAIT_S = 60.0
_names = itertools.count()


class Cluster:
    """A LocalCluster with pgml_trigger installed into a template database, and new databases made from it."""

    def __init__(self, python_path: str, **settings):
        self.local = LocalCluster(settings=settings).start()
        self.python_path = python_path
        self._admin(f"CREATE DATABASE {TEMPLATE}")
        install(self.local.dsn(TEMPLATE), python_path=python_path, log=lambda message: None)

    def _admin(self, statement, params=None) -> None:
        with psycopg.connect(self.local.dsn(), autocommit=True) as admin:
            admin.execute(statement, params)

    def new_database(self, python_path: str | None = None) -> str:
        name = f"repl_{next(_names)}"
        self._admin(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(TEMPLATE)))
        self._admin(sql.SQL("ALTER DATABASE {} SET pgml_trigger.python_path = {}").format(
            sql.Identifier(name), sql.Literal(python_path or self.python_path)))
        return self.local.dsn(name)


@pytest.fixture(scope="module")
def clusters(installed):
    made = []
    try:
        for settings in ({"wal_level": "logical"}, {}, {}):
            made.append(Cluster(installed.python_path, **settings))
        yield made
    finally:
        for cluster in made:
            cluster.local.stop()


@pytest.fixture
def registry_and_subscribers(clusters):
    """(registry DSN, [subscriber DSNs]): new databases; their subscriptions are dropped afterwards."""
    registry, *scoring = clusters
    dsns = [registry.new_database(), *(cluster.new_database() for cluster in scoring)]
    yield dsns[0], dsns[1:]
    for dsn in dsns[1:]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for (name,) in conn.execute("SELECT subname FROM pg_subscription").fetchall():
                conn.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(name)))


def _eventually(conn, query: str, params, expected, what: str) -> float:
    """Poll ``query`` on ``conn`` (one statement each time, in the same session) until it returns
    ``expected``; return the seconds that took."""
    start = time.monotonic()
    while True:
        got = conn.execute(query, params).fetchall()
        if got == expected:
            return time.monotonic() - start
        assert time.monotonic() - start < WAIT_S, f"{what}: still {got} after {WAIT_S:.0f} s, expected {expected}"
        time.sleep(0.05)


def _predict(conn, row) -> float:
    return conn.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [row]).fetchone()[0]


def test_subscribers_follow_uploads_alias_moves_rollbacks_and_deletes(registry_and_subscribers, figure):
    registry_dsn, subscriber_dsns = registry_and_subscribers
    X, y = trained.diabetes()
    models = [Ridge(alpha=alpha).fit(X, y) for alpha in (0.5, 5.0, 50.0)]
    row = list(X.iloc[11])
    expected = [float(model.predict(X.iloc[[11]])[0]) for model in models]
    with psycopg.connect(registry_dsn, autocommit=True) as registry:
        upload(registry, "reg", models[0], alias="production")
        printed = []
        names = replicate(registry_dsn, subscriber_dsns, out=printed.append)
        assert len(set(names)) == 2
        assert any("CREATE PUBLICATION pgml_trigger_catalog" in text for text in printed)
        assert sum("CREATE SUBSCRIPTION" in text for text in printed) == 2
        subscribers = [psycopg.connect(dsn, autocommit=True) for dsn in subscriber_dsns]
        try:
            # The initial copy is done when replicate() returns.
            assert [_predict(conn, row) for conn in subscribers] == [expected[0]] * 2

            delays = []
            upload(registry, "reg", models[1])
            registry.execute("SELECT pgml_trigger.set_alias('reg', 'production', 2)")
            for conn in subscribers:  # sessions opened before the move see it on a later statement
                delays.append(_eventually(conn, "SELECT pgml_trigger.predict('reg', %s::float8[])", [row],
                                          [(expected[1],)], "alias move"))
            upload(registry, "reg", models[2], alias="staging")
            for conn in subscribers:
                _eventually(conn, "SELECT version FROM pgml_trigger.aliases WHERE alias = 'staging'", None, [(3,)],
                            "new version with an alias")
                assert conn.execute("SELECT pgml_trigger.predict('reg@staging', %s::float8[])", [row]).fetchone(
                    ) == (expected[2],)

            assert registry.execute("SELECT pgml_trigger.rollback('reg')").fetchone() == (1,)
            for conn in subscribers:
                _eventually(conn, "SELECT pgml_trigger.predict('reg', %s::float8[])", [row], [(expected[0],)],
                            "rollback")
                assert conn.execute("SELECT from_version, to_version, kind FROM pgml_trigger.alias_history "
                                    "WHERE alias = 'production' ORDER BY id DESC LIMIT 1").fetchone() == (
                    2, 1, "rollback")

            registry.execute("SELECT pgml_trigger.delete_model('reg', 2)")
            for conn in subscribers:
                _eventually(conn, "SELECT version FROM pgml_trigger.model_versions ORDER BY version", None,
                            [(1,), (3,)], "delete")
            figure("alias move seen on a subscriber, worst of two (s)", round(max(delays), 3))

            # A subscriber's catalog is the registry's: local writes are refused, and nothing changes.
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="receives its models from a registry"):
                upload(subscribers[0], "local", models[0])
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="insert on aliases is refused here"):
                subscribers[0].execute("SELECT pgml_trigger.set_alias('reg', 'production', 3)")
            assert subscribers[0].execute("SELECT count(*) FROM pgml_trigger.models").fetchone() == (2,)

            lines = []
            status(subscribers[0], out=lines.append)
            assert any(names[0] in line for line in lines), lines
            lines = []
            status(registry, out=lines.append)
            assert sum(name in line for line in lines for name in names) == 2, lines
        finally:
            for conn in subscribers:
                conn.close()


def test_sql_arithmetic_triggers_on_a_subscriber_follow_the_registry(registry_and_subscribers):
    registry_dsn, (subscriber_dsn, _) = registry_and_subscribers
    X, y = trained.breast_cancer()
    first = trained.linear_breast_cancer()
    second = LogisticRegression(C=0.001, max_iter=5000).fit(X, y)  # a weaker model: other labels on some rows
    disagree = X[first.predict(X) != second.predict(X)]
    assert len(disagree) > 0
    with psycopg.connect(registry_dsn, autocommit=True) as registry, \
            psycopg.connect(subscriber_dsn, autocommit=True) as subscriber:
        upload(registry, "bc", first, alias="production")
        upload(registry, "bc", second)
        replicate(registry_dsn, [subscriber_dsn], out=lambda text: None)
        subscriber.execute(sql.SQL("CREATE TABLE scored ({}, label bigint)").format(
            sql.SQL(", ").join(sql.SQL("{} float8").format(sql.Identifier(name)) for name in X.columns)))
        subscriber.execute("SELECT pgml_trigger.attach('scored', 'bc', 'label')")
        assert subscriber.execute("SELECT row_trigger_path FROM pgml_trigger.model_versions WHERE version = 1"
                                  ).fetchone() == ("sql",)
        columns = sql.SQL(", ").join(map(sql.Identifier, X.columns))
        insert = sql.SQL("INSERT INTO scored ({}) VALUES ({})").format(
            columns, sql.SQL(", ").join(sql.Placeholder() * len(X.columns)))
        row = [float(value) for value in disagree.iloc[0]]
        subscriber.execute(insert, row)

        registry.execute("SELECT pgml_trigger.set_alias('bc', 'production', 2)")
        _eventually(subscriber, "SELECT version FROM pgml_trigger.resolve_model('bc')", None, [(2,)], "alias move")
        subscriber.execute(insert, row)
        assert [label for (label,) in subscriber.execute("SELECT label FROM scored").fetchall()] == [
            int(first.predict(disagree.iloc[[0]])[0]), int(second.predict(disagree.iloc[[0]])[0])]


def test_a_subscriber_down_while_versions_arrive_catches_up(clusters, registry_and_subscribers):
    registry_dsn, (subscriber_dsn, _) = registry_and_subscribers
    scoring = clusters[1].local
    X, y = trained.diabetes()
    models = [Ridge(alpha=alpha).fit(X, y) for alpha in (0.1, 1.0, 10.0, 100.0)]
    row = list(X.iloc[3])
    with psycopg.connect(registry_dsn, autocommit=True) as registry:
        upload(registry, "reg", models[0], alias="production")
        replicate(registry_dsn, [subscriber_dsn], out=lambda text: None)
        scoring.pause()
        try:
            for version, model in enumerate(models[1:], start=2):
                upload(registry, "reg", model)
                registry.execute("SELECT pgml_trigger.set_alias('reg', 'production', %s)", [version])
        finally:
            scoring.resume()
    with psycopg.connect(subscriber_dsn, autocommit=True) as subscriber:
        _eventually(subscriber, "SELECT version FROM pgml_trigger.model_versions ORDER BY version", None,
                    [(1,), (2,), (3,), (4,)], "versions uploaded while the subscriber was down")
        _eventually(subscriber, "SELECT pgml_trigger.predict('reg', %s::float8[])", [row],
                    [(float(models[3].predict(X.iloc[[3]])[0]),)], "the last alias move")
        assert subscriber.execute("SELECT count(*) FROM pgml_trigger.alias_history WHERE alias = 'production'"
                                  ).fetchone() == (4,)


def test_a_version_a_subscriber_trigger_pins_outlives_its_delete_on_the_registry(registry_and_subscribers):
    registry_dsn, (subscriber_dsn, _) = registry_and_subscribers
    X, y = trained.diabetes()
    pinned, other = Ridge(alpha=0.5).fit(X, y), Ridge(alpha=5.0).fit(X, y)
    with psycopg.connect(registry_dsn, autocommit=True) as registry, \
            psycopg.connect(subscriber_dsn, autocommit=True) as subscriber:
        upload(registry, "reg", pinned)
        upload(registry, "reg", other, alias="production")
        replicate(registry_dsn, [subscriber_dsn], out=lambda text: None)
        subscriber.execute("CREATE TABLE visits (age float8, sex float8, bmi float8, bp float8, s1 float8, "
                           "s2 float8, s3 float8, s4 float8, s5 float8, s6 float8, progression float8)")
        subscriber.execute("SELECT pgml_trigger.attach('visits', 'reg@1', 'progression')")

        registry.execute("SELECT pgml_trigger.delete_model('reg', 1)")
        registry.execute("SELECT pgml_trigger.set_alias('reg', 'staging', 2)")  # a later change, to wait for
        _eventually(subscriber, "SELECT version FROM pgml_trigger.aliases WHERE alias = 'staging'", None, [(2,)],
                    "changes after the delete")
        assert subscriber.execute("SELECT version FROM pgml_trigger.models ORDER BY version").fetchall() == [
            (1,), (2,)]
        subscriber.execute("INSERT INTO visits SELECT * FROM jsonb_populate_record(NULL::visits, %s)",
                           [Jsonb(X.iloc[0].to_dict())])
        got = subscriber.execute("SELECT progression FROM visits").fetchone()[0]
        assert got == pytest.approx(float(pinned.predict(X.iloc[[0]])[0]), rel=1e-9)
    with psycopg.connect(registry_dsn, autocommit=True) as registry:
        assert registry.execute("SELECT version FROM pgml_trigger.models").fetchall() == [(2,)]


def test_replicate_refuses_what_would_not_work(server, clusters, registry_and_subscribers, dsn, capsys):
    registry_dsn, (subscriber_dsn, _) = registry_and_subscribers
    with psycopg.connect(dsn, autocommit=True) as conn:
        wal_level = conn.execute("SHOW wal_level").fetchone()[0]
    if wal_level != "logical":  # the suite's own cluster runs with the default, replica
        with pytest.raises(InstallError, match="wal_level = replica") as refused:
            replicate(dsn, [subscriber_dsn], out=lambda text: None)
        assert "ALTER SYSTEM SET wal_level = logical" in refused.value.hint

    with psycopg.connect(subscriber_dsn, autocommit=True) as subscriber:
        upload(subscriber, "local", trained.diabetes_ridge())
        with pytest.raises(InstallError, match="already holds 1 model version"):
            replicate(registry_dsn, [subscriber_dsn], out=lambda text: None)
        assert subscriber.execute("SELECT count(*) FROM pg_subscription").fetchone() == (0,)

    fresh = clusters[2].new_database()
    assert main(["replicate", "--from", registry_dsn, "--to", fresh, "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "CREATE SUBSCRIPTION" in printed and "PUBLICATION pgml_trigger_catalog" in printed
    with psycopg.connect(fresh, autocommit=True) as target:
        assert target.execute("SELECT count(*) FROM pg_subscription").fetchone() == (0,)
    assert main(["replicate", "--from", registry_dsn, "--to", fresh]) == 0
    with psycopg.connect(fresh, autocommit=True) as target:
        assert target.execute("SELECT count(*) FROM pg_subscription WHERE subenabled").fetchone() == (1,)
        target.execute("DROP SUBSCRIPTION " + target.execute("SELECT subname FROM pg_subscription").fetchone()[0])


def test_shards_score_the_rows_they_store(registry_and_subscribers, capsys):
    """A hash-partitioned table on the registry whose partitions are postgres_fdw foreign tables on the two
    scoring clusters: each shard receives the model by subscription and scores its rows with its own trigger."""
    registry_dsn, shard_dsns = registry_and_subscribers
    X, y = trained.diabetes()
    model = trained.diabetes_ridge()
    expected = {i: float(value) for i, value in enumerate(model.predict(X))}
    columns = sql.SQL(", ").join(sql.SQL("{} float8").format(sql.Identifier(name)) for name in X.columns)
    with psycopg.connect(registry_dsn, autocommit=True) as coordinator:
        upload(coordinator, "reg", model, alias="production")
        replicate(registry_dsn, shard_dsns, out=lambda text: None)
        coordinator.execute("CREATE EXTENSION postgres_fdw")
        coordinator.execute(sql.SQL("CREATE TABLE visits (id bigint NOT NULL, {}, progression float8) "
                                    "PARTITION BY HASH (id)").format(columns))
        for remainder, dsn in enumerate(shard_dsns):
            with psycopg.connect(dsn, autocommit=True) as shard:
                shard.execute(sql.SQL("CREATE TABLE visits (id bigint PRIMARY KEY, {}, progression float8)").format(
                    columns))
                shard.execute("SELECT pgml_trigger.attach('visits', 'reg', 'progression')")
            info = psycopg.conninfo.conninfo_to_dict(dsn)
            server = sql.Identifier(f"shard{remainder}")
            coordinator.execute(sql.SQL("CREATE SERVER {} FOREIGN DATA WRAPPER postgres_fdw "
                                        "OPTIONS (host {}, port {}, dbname {})").format(
                server, sql.Literal(info["host"]), sql.Literal(str(info["port"])), sql.Literal(info["dbname"])))
            coordinator.execute(sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER {} OPTIONS (user {})").format(
                server, sql.Literal(info["user"])))
            coordinator.execute(sql.SQL(
                "CREATE FOREIGN TABLE {} PARTITION OF visits FOR VALUES WITH (MODULUS 2, REMAINDER {}) "
                "SERVER {} OPTIONS (table_name 'visits')").format(
                sql.Identifier(f"visits_{remainder}"), sql.Literal(remainder), server))

        coordinator.execute(
            sql.SQL("INSERT INTO visits (id, {}) SELECT (r ->> 'id')::bigint, {} FROM jsonb_array_elements(%s) AS r")
            .format(sql.SQL(", ").join(map(sql.Identifier, X.columns)),
                    sql.SQL(", ").join(sql.SQL("(r ->> {})::float8").format(sql.Literal(name)) for name in X.columns)),
            [Jsonb([{"id": i, **X.iloc[i].to_dict()} for i in range(len(X))])])

        # Every row was scored where it is stored, and reads back through the coordinator.
        per_shard = []
        for dsn in shard_dsns:
            with psycopg.connect(dsn, autocommit=True) as shard:
                rows = shard.execute("SELECT id, progression FROM visits").fetchall()
                per_shard.append(len(rows))
                assert all(value == pytest.approx(expected[i], rel=1e-9) for i, value in rows)
        assert sum(per_shard) == len(X) and min(per_shard) > 0
        through = dict(coordinator.execute("SELECT id, progression FROM visits").fetchall())
        assert through.keys() == expected.keys()
        assert all(through[i] == pytest.approx(expected[i], rel=1e-9) for i in expected)
        # predict() over the partitioned table runs on the coordinator, with the registry's model.
        predicted = dict(coordinator.execute(
            "SELECT id, pgml_trigger.predict('reg', to_jsonb(v)) FROM visits AS v").fetchall())
        assert all(predicted[i] == pytest.approx(expected[i], rel=1e-9) for i in expected)

        # score() on both shards at once from the CLI, after the predictions were wiped.
        for dsn in shard_dsns:
            with psycopg.connect(dsn, autocommit=True) as shard:
                shard.execute("UPDATE visits SET progression = NULL")
        assert main(["score", "reg", "visits", "progression", *(f"--dsn={dsn}" for dsn in shard_dsns)]) == 0
        printed = capsys.readouterr()
        assert f"{len(X):,}/{len(X):,} rows, 2/2 databases" in printed.err
        assert [line.split(": ")[1].split(" rows")[0] for line in printed.out.splitlines()] == [
            f"{count:,}" for count in per_shard]
        through = dict(coordinator.execute("SELECT id, progression FROM visits").fetchall())
        assert all(through[i] == pytest.approx(expected[i], rel=1e-9) for i in expected)


def test_a_subscriber_without_a_module_a_new_version_needs_reports_it_and_scores_the_older_ones(
        clusters, installed, monkeypatch):
    """The registry's environment has a module of custom transformers that the subscriber's lacks."""
    extra = tempfile.mkdtemp(prefix="pgml_trigger_registry_site_")
    try:
        os.chmod(extra, 0o755)
        with open(os.path.join(extra, "registry_only_steps.py"), "w") as module:
            module.write(textwrap.dedent("""
                from sklearn.base import BaseEstimator, TransformerMixin

                class Doubler(BaseEstimator, TransformerMixin):
                    def fit(self, X, y=None):
                        self.n_features_in_ = X.shape[1]
                        return self

                    def transform(self, X):
                        return X * 2.0
            """))
        with open(os.path.join(extra, "environment.pth"), "w") as pth:  # the server's environment, then this
            pth.write(f"import site; site.addsitedir({installed.python_path!r})\n")
        monkeypatch.syspath_prepend(extra)
        from registry_only_steps import Doubler
        from sklearn.pipeline import make_pipeline

        registry, subscriber_cluster, _ = clusters
        registry_dsn, subscriber_dsn = registry.new_database(python_path=extra), subscriber_cluster.new_database()
        X, y = trained.diabetes()
        plain, custom = Ridge(alpha=0.5).fit(X.to_numpy(), y), make_pipeline(Doubler(), Ridge()).fit(X.to_numpy(), y)
        row = list(X.iloc[0])
        with psycopg.connect(registry_dsn, autocommit=True) as reg, \
                psycopg.connect(subscriber_dsn, autocommit=True) as subscriber:
            upload(reg, "reg", plain, feature_names=list(X.columns), alias="production")
            replicate(registry_dsn, [subscriber_dsn], out=lambda text: None)
            upload(reg, "reg", custom, feature_names=list(X.columns), alias="staging")
            assert reg.execute("SELECT pgml_trigger.predict('reg@staging', %s::float8[])", [row]).fetchone()[0] == (
                pytest.approx(float(custom.predict(X.to_numpy()[:1])[0]), rel=1e-9))
            _eventually(subscriber, "SELECT version FROM pgml_trigger.aliases WHERE alias = 'staging'", None, [(2,)],
                        "the new version")

            verdicts = subscriber.execute("SELECT version, loads, error FROM pgml_trigger.doctor() ORDER BY version"
                                          ).fetchall()
            assert [(version, loads) for version, loads, _ in verdicts] == [(1, True), (2, False)]
            assert "registry_only_steps" in verdicts[1][2]
            with pytest.raises(psycopg.Error, match="registry_only_steps"):
                subscriber.execute("SELECT pgml_trigger.predict('reg@staging', %s::float8[])", [row])
            assert subscriber.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [row]).fetchone()[0] == (
                pytest.approx(float(plain.predict(X.to_numpy()[:1])[0]), rel=1e-9))
            # The subscription goes on: a later change still arrives.
            reg.execute("SELECT pgml_trigger.set_alias('reg', 'production', 2)")
            _eventually(subscriber, "SELECT version FROM pgml_trigger.aliases WHERE alias = 'production'", None,
                        [(2,)], "a later alias move")
            for (name,) in subscriber.execute("SELECT subname FROM pg_subscription").fetchall():
                subscriber.execute(sql.SQL("DROP SUBSCRIPTION {}").format(sql.Identifier(name)))
    finally:
        shutil.rmtree(extra, ignore_errors=True)

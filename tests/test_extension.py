"""pgml_trigger as a PostgreSQL extension: CREATE/DROP EXTENSION, the installer run again, and dumps that
restore and keep scoring."""

from __future__ import annotations

import psycopg
import pytest
import trained
from dumps import dump, psql, restore
from psycopg import sql
from sklearn.linear_model import Ridge
from tables import copy_rows, create_table

from pgml_trigger import __version__, upload

QUIET = {"log": lambda message: None}

# What a restored or converted database must still hold, row for row.
_CONTENTS = {
    "models": "SELECT name, version, sha256, created_at, created_by, description FROM pgml_trigger.models "
              "ORDER BY name, version",
    "aliases": "SELECT name, alias, version, updated_at FROM pgml_trigger.aliases ORDER BY name, alias",
    "history": "SELECT id, name, alias, from_version, to_version, kind, moved_at FROM pgml_trigger.alias_history "
               "ORDER BY id",
    "attachments": "SELECT id, target::text, output_column, model_ref, columns FROM pgml_trigger.attachments "
                   "ORDER BY id",
    "log": "SELECT id, model_name, model_version, row_key, prediction FROM pgml_trigger.prediction_log ORDER BY id",
    "rows": "SELECT id, risk, risk_logged FROM accounts ORDER BY id",
}


def contents(dsn: str, names=tuple(_CONTENTS)) -> dict[str, list]:
    with psycopg.connect(dsn) as conn:
        return {name: conn.execute(_CONTENTS[name]).fetchall() for name in names}


def test_dx_shows_the_version_the_server_runs(conn):
    extversion = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'pgml_trigger'").fetchone()[0]
    assert extversion == conn.execute("SELECT pgml_trigger.version()").fetchone()[0] == __version__


def test_create_extension_from_scratch(server, installed, new_database):
    dsn = new_database(installed_copy=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pgml_trigger CASCADE")  # plpython3u too; the host default environment
        assert conn.execute("SELECT pgml_trigger.version()").fetchone()[0] == __version__
        assert conn.execute("SELECT pgml_trigger._database_setting('pgml_trigger.python_path')").fetchone()[0] is None


def test_drop_extension_refuses_attached_triggers_unless_cascade(conn):
    X, y = trained.diabetes()
    upload(conn, "churn", Ridge().fit(X, y))
    create_table(conn, "accounts", X, extra={"risk": "float8"})
    conn.execute("SELECT pgml_trigger.attach('accounts', 'churn', 'risk')")
    copy_rows(conn, "accounts", X.iloc[:3])
    with pytest.raises(psycopg.errors.DependentObjectsStillExist,
                       match="trigger pgml_score_risk on table accounts depends on function pgml_trigger.score_1"):
        conn.execute("DROP EXTENSION pgml_trigger")
    conn.execute("DROP EXTENSION pgml_trigger CASCADE")
    assert conn.execute("SELECT count(risk) FROM accounts").fetchone()[0] == 3  # the rows stay, scored
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'accounts'::regclass").fetchone()[0] == 0
    left = conn.execute("SELECT count(*) FROM pg_proc WHERE pronamespace = 'pgml_trigger'::regnamespace").fetchone()
    assert left[0] == 0


def _scored_database(conn) -> tuple:
    """Two versions and an alias, a table scored by SQL arithmetic (risk) and by Python with a log
    (risk_logged), rows in it."""
    X, y = trained.diabetes()
    models = [Ridge(alpha=alpha).fit(X, y) for alpha in (0.5, 5.0)]
    upload(conn, "churn", models[0], alias="production")
    upload(conn, "churn", models[1], description="second")
    conn.execute("SELECT pgml_trigger.set_alias('churn', 'staging', 2)")
    create_table(conn, "accounts", X, extra={"risk": "float8", "risk_logged": "float8"})
    conn.execute("SELECT pgml_trigger.attach('accounts', 'churn', 'risk')")
    conn.execute("SELECT pgml_trigger.attach('accounts', 'churn@staging', 'risk_logged', log => true)")
    copy_rows(conn, "accounts", X.iloc[:5])
    return X, models


def _still_scores(dsn: str, X, models) -> None:
    """A trigger-scored INSERT (both paths), a predict(), and a new attachment, in a new session."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        copy_rows(conn, "accounts", X.iloc[5:7])
        risk, logged = conn.execute("SELECT risk, risk_logged FROM accounts ORDER BY id DESC LIMIT 1").fetchone()
        assert risk == pytest.approx(models[0].predict(X.iloc[[6]])[0], rel=1e-9)
        assert logged == pytest.approx(models[1].predict(X.iloc[[6]])[0], rel=1e-9)
        predicted = conn.execute("SELECT pgml_trigger.predict('churn@2', %s::double precision[])",
                                 [X.iloc[0].tolist()]).fetchone()[0]
        assert predicted == pytest.approx(models[1].predict(X.iloc[[0]])[0], rel=1e-9)
        conn.execute("ALTER TABLE accounts ADD COLUMN risk_again float8")
        conn.execute("SELECT pgml_trigger.attach('accounts', 'churn@1', 'risk_again')")
        assert conn.execute("SELECT max(id) FROM pgml_trigger.attachments").fetchone()[0] == 3


@pytest.fixture
def scored(dsn, conn):
    X, models = _scored_database(conn)
    return dsn, X, models, contents(dsn)


def test_restore_into_another_database_of_the_same_cluster(scored, new_database, tmp_path):
    dsn, X, models, before = scored
    dump(dsn, "-Fc", path=tmp_path / "db.dump")
    target = new_database(installed_copy=False)  # no pgml_trigger.python_path: the host's default serves
    restore(target, tmp_path / "db.dump")
    assert contents(target) == before
    _still_scores(target, X, models)


def test_data_only_dump_into_a_restored_schema(scored, new_database):
    dsn, X, models, before = scored
    target = new_database(installed_copy=False)
    psql(target, dump(dsn, "--schema-only"))
    # As PostgreSQL advises for data-only dumps: the tables' triggers must not fire again on the rows.
    psql(target, dump(dsn, "--data-only", "--disable-triggers"))
    assert contents(target) == before
    _still_scores(target, X, models)


@pytest.fixture
def other_cluster(server):
    if server["kind"] != "local cluster":
        pytest.skip(f"a second cluster needs the local cluster fixture; this server comes from {server['kind']}")
    from pgml_trigger.localcluster import LocalCluster

    with LocalCluster() as cluster:
        yield cluster


def test_restore_into_another_cluster_plain_and_with_create(scored, other_cluster, tmp_path):
    dsn, X, models, before = scored
    plain = other_cluster.dsn("plain")
    with psycopg.connect(other_cluster.dsn(), autocommit=True) as admin:
        admin.execute("CREATE DATABASE plain")
    psql(plain, dump(dsn))  # pg_dump | psql; the roles do not exist there yet
    assert contents(plain) == before
    _still_scores(plain, X, models)

    dump(dsn, "-Fc", "--create", path=tmp_path / "created.dump")
    restore(other_cluster.dsn(), tmp_path / "created.dump", "--create")
    created = other_cluster.dsn(psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])
    assert contents(created) == before
    _still_scores(created, X, models)


def test_a_missing_environment_is_one_clean_error(dsn, conn, connect):
    X, y = trained.diabetes()
    upload(conn, "churn", Ridge().fit(X, y))
    conn.execute(sql.SQL("ALTER DATABASE {} SET pgml_trigger.python_path = '/nonexistent/site-packages'").format(
        sql.Identifier(conn.info.dbname)))
    session = connect()
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
        session.execute("SELECT pgml_trigger.predict('churn', %s::double precision[])", [X.iloc[0].tolist()])
    diagnostic = caught.value.diag
    assert diagnostic.message_primary.startswith(
        "pgml_trigger: the server cannot import the pgml_trigger Python package (No module named 'pgml_trigger'); "
        "its environment: /nonexistent/site-packages")
    assert diagnostic.message_hint == ("install the environment on the database host, as root: pgml-trigger install "
                                       f"--dsn 'dbname={conn.info.dbname}' (or install/install.sh with the same "
                                       "options)")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as again:  # looks again, says the same
        session.execute("SELECT pgml_trigger.version()")
    assert again.value.diag.message_primary == diagnostic.message_primary

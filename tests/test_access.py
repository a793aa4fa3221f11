"""Who may do what: pgml_trigger_user scores and reads metadata, pgml_trigger_admin manages models, PUBLIC nothing.

Login roles are cluster-wide: each test makes its own, with unique names, and drops them at the end.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
import trained
from psycopg import sql

import pgml_trigger
from pgml_trigger import upload
from pgml_trigger.uploader.linear import ATOL, RTOL

_serial = itertools.count()


@pytest.fixture
def role(dsn, conn):
    """role(kind, *grants) -> a login role's DSN on the test database; roles and their sessions go at the end."""
    made, sessions = [], []

    def make(kind: str, *member_of: str):
        name = f"pgml_t{os.getpid()}_{next(_serial)}_{kind}"
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
        made.append(name)
        for group in member_of:
            conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(name)))
        return name, psycopg.conninfo.make_conninfo(dsn, user=name)

    def session(role_dsn: str, **kwargs):
        connection = psycopg.connect(role_dsn, autocommit=kwargs.pop("autocommit", True), **kwargs)
        sessions.append(connection)
        return connection

    make.session = session
    yield make
    for connection in sessions:
        connection.close()
    for name in made:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


@pytest.fixture
def model(conn):
    upload(conn, "reg", trained.diabetes_ridge())
    X, _ = trained.diabetes()
    return X


def _denied(session, statement, params=None):
    with pytest.raises(psycopg.errors.InsufficientPrivilege) as caught:
        session.execute(statement, params)
    assert session.execute("SELECT 1").fetchone() == (1,)
    return caught.value.diag.message_primary


def test_public_has_no_privileges(conn):
    objects = conn.execute("""
        SELECT p.oid::regprocedure::text, has_function_privilege('public', p.oid, 'EXECUTE')
        FROM pg_proc AS p WHERE p.pronamespace = 'pgml_trigger'::regnamespace""").fetchall()
    assert len(objects) > 20
    assert [name for name, granted in objects if granted] == []
    relations = conn.execute("""
        SELECT c.oid::regclass::text, c.relkind,
               CASE WHEN c.relkind = 'S' THEN has_sequence_privilege('public', c.oid, 'USAGE, SELECT, UPDATE')
                    ELSE has_table_privilege('public', c.oid,
                                             'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
               END
        FROM pg_class AS c WHERE c.relnamespace = 'pgml_trigger'::regnamespace AND c.relkind IN ('r', 'v', 'S')
        """).fetchall()
    assert {"pgml_trigger.models", "pgml_trigger.aliases", "pgml_trigger.model_catalog"} <= {r[0] for r in relations}
    assert [name for name, _, granted in relations if granted] == []
    assert conn.execute("SELECT has_schema_privilege('public', 'pgml_trigger', 'USAGE, CREATE')").fetchone() == (False,)


def test_generated_trigger_functions_are_not_public(conn, model):
    conn.execute("CREATE TABLE t (age float8, sex float8, bmi float8, bp float8, s1 float8, s2 float8, s3 float8, "
                 "s4 float8, s5 float8, s6 float8, score float8)")
    conn.execute("SELECT pgml_trigger.attach('t', 'reg', 'score')")
    function = conn.execute("SELECT function_name FROM pgml_trigger.attachments").fetchone()[0]
    assert conn.execute("SELECT has_function_privilege('public', %s, 'EXECUTE')",
                        [f"pgml_trigger.{function}()"]).fetchone() == (False,)


def test_a_role_without_pgml_trigger_roles_cannot_score(conn, model, role):
    _, outsider_dsn = role("outsider")
    outsider = role.session(outsider_dsn)
    assert "schema pgml_trigger" in _denied(outsider, "SELECT pgml_trigger.predict('reg', ARRAY[0,0,0,0,0,0,0,0,0,0])")


def test_user_scores_and_reads_metadata_but_never_a_payload(conn, model, role):
    _, user_dsn = role("user", "pgml_trigger_user")
    user = role.session(user_dsn)
    row = model.iloc[3]
    expected = float(trained.diabetes_ridge().predict(model.iloc[[3]])[0])
    assert user.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [list(row)]).fetchone()[0] == expected
    assert user.execute("SELECT pgml_trigger.predict('reg', %s::jsonb)",
                        [psycopg.types.json.Jsonb(row.to_dict())]).fetchone()[0] == expected
    assert user.execute("SELECT * FROM pgml_trigger.resolve_model('reg')").fetchone() == ("reg", 1)
    assert user.execute("SELECT pgml_trigger.version()").fetchone() == (pgml_trigger.__version__,)
    assert user.execute("SELECT name, version, loads FROM pgml_trigger.cache_info()").fetchall() == [("reg", 1, 1)]
    name, version, payload_bytes, features = user.execute(
        "SELECT name, version, payload_bytes, feature_names FROM pgml_trigger.model_catalog").fetchone()
    assert (name, version, features) == ("reg", 1, list(model.columns))
    assert payload_bytes == conn.execute("SELECT octet_length(payload) FROM pgml_trigger.models").fetchone()[0]

    assert "table models" in _denied(user, "SELECT payload FROM pgml_trigger.models")
    assert "table models" in _denied(user, "SELECT compiled_payload FROM pgml_trigger.models")
    assert "table models" in _denied(user, "SELECT * FROM pgml_trigger.models")
    assert "table models" in _denied(user, "SELECT octet_length(payload) FROM pgml_trigger.models")
    assert user.execute("SELECT name, version, sha256 FROM pgml_trigger.models").fetchall() == [
        ("reg", 1, conn.execute("SELECT sha256 FROM pgml_trigger.models").fetchone()[0])]
    # The server's own way to the payload gives SQL nothing but its length.
    assert user.execute("SELECT pgml_trigger._fetch_payload('reg', 1, false)").fetchone() == (payload_bytes,)
    assert user.execute("SELECT alias FROM pgml_trigger.aliases").fetchall() == []


def test_user_cannot_change_models_or_aliases(conn, model, role):
    conn.execute("SELECT pgml_trigger.set_alias('reg', 'production', 1)")
    before = conn.execute("SELECT m.*, a.* FROM pgml_trigger.models m, pgml_trigger.aliases a").fetchall()
    user_name, user_dsn = role("user", "pgml_trigger_user")
    user = role.session(user_dsn)

    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        upload(user, "reg", trained.diabetes_ridge())
    _denied(user, "UPDATE pgml_trigger.models SET description = 'mine'")
    _denied(user, "DELETE FROM pgml_trigger.models")
    _denied(user, "INSERT INTO pgml_trigger.aliases (name, alias, version) VALUES ('reg', 'mine', 1)")
    _denied(user, "UPDATE pgml_trigger.aliases SET version = 1")
    _denied(user, "DELETE FROM pgml_trigger.aliases")
    assert "function set_alias" in _denied(user, "SELECT pgml_trigger.set_alias('reg', 'production', 1)")
    _denied(user, "UPDATE pgml_trigger.catalog_state SET generation = 0")
    _denied(user, "DELETE FROM pgml_trigger.attachments")
    assert conn.execute("SELECT m.*, a.* FROM pgml_trigger.models m, pgml_trigger.aliases a").fetchall() == before


def test_user_attaches_only_to_its_own_tables(conn, model, role):
    user_name, user_dsn = role("user", "pgml_trigger_user")
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(user_name)))
    columns = ", ".join(f"{name} float8" for name in model.columns)
    conn.execute(f"CREATE TABLE theirs ({columns}, score float8)")
    conn.execute("GRANT ALL ON theirs TO pgml_trigger_user")
    user = role.session(user_dsn)
    user.execute(f"CREATE TABLE mine ({columns}, score float8)")

    message = _denied(user, "SELECT pgml_trigger.attach('theirs', 'reg', 'score')")
    assert message == f'role "{user_name}" may not attach or detach models on table theirs'
    assert user.execute("SELECT pgml_trigger.attach('mine', 'reg', 'score')").fetchone() == ("pgml_score_score",)
    assert conn.execute("SELECT target::text, created_by FROM pgml_trigger.attachments").fetchall() == [
        ("mine", user_name)]
    values = ", ".join(["%s"] * len(model.columns))
    user.execute(f"INSERT INTO mine VALUES ({values})", list(model.iloc[0]))
    expected = float(trained.diabetes_ridge().predict(model.iloc[[0]])[0])
    assert user.execute("SELECT score FROM mine").fetchone()[0] == pytest.approx(expected, rel=RTOL, abs=ATOL)

    # Someone else's attachment cannot be detached (nor replaced) by the user.
    conn.execute("SELECT pgml_trigger.attach('theirs', 'reg', 'score')")
    _denied(user, "SELECT pgml_trigger.detach('theirs', 'score')")
    _denied(user, "SELECT pgml_trigger._detach('theirs', 'theirs', 'score')")
    _denied(user, "SELECT pgml_trigger._attach('theirs', 'theirs', 'reg', 'score', NULL, 'row', false, NULL)")
    # ... but its trigger scores the user's INSERTs into that table.
    user.execute(f"INSERT INTO theirs VALUES ({values})", list(model.iloc[0]))
    assert conn.execute("SELECT score FROM theirs").fetchone()[0] == pytest.approx(expected, rel=RTOL, abs=ATOL)

    user.execute("SELECT pgml_trigger.detach('mine', 'score')")
    user.execute("SELECT pgml_trigger.attach('mine', 'reg', 'score')")
    user.execute("DROP TABLE mine")  # the drop event trigger forgets the attachment, as the owner of the record
    assert conn.execute("SELECT target::text FROM pgml_trigger.attachments").fetchall() == [("theirs",)]


def test_user_scores_and_batch_scores_its_own_table(conn, model, role):
    user_name, user_dsn = role("user", "pgml_trigger_user")
    conn.execute(sql.SQL("GRANT CREATE ON SCHEMA public TO {}").format(sql.Identifier(user_name)))
    user = role.session(user_dsn)
    columns = ", ".join(f"{name} float8" for name in model.columns)
    user.execute(f"CREATE TABLE mine ({columns}, score float8)")
    values = ", ".join(["%s"] * len(model.columns))
    for i in range(3):
        user.execute(f"INSERT INTO mine VALUES ({values})", list(model.iloc[i]))
    assert user.execute("SELECT pgml_trigger.score('reg', 'mine', 'score')").fetchone() == (3,)
    expected = [float(trained.diabetes_ridge().predict(model.iloc[[i]])[0]) for i in range(3)]
    assert [row[0] for row in user.execute("SELECT score FROM mine").fetchall()] == pytest.approx(expected, rel=1e-12)
    batch = user.execute("SELECT pgml_trigger.predict_batch('reg', %s::float8[])",
                         [[list(model.iloc[i]) for i in range(3)]]).fetchone()[0]
    assert batch == pytest.approx(expected, rel=1e-12)


def test_writers_to_a_scored_table_need_the_user_role(conn, model, role):
    columns = ", ".join(f"{name} float8" for name in model.columns)
    conn.execute(f"CREATE TABLE t ({columns}, score float8)")
    conn.execute("SELECT pgml_trigger.attach('t', 'reg', 'score')")
    writer_name, writer_dsn = role("writer")
    conn.execute(sql.SQL("GRANT INSERT, SELECT ON t TO {}").format(sql.Identifier(writer_name)))
    writer = role.session(writer_dsn)
    values = ", ".join(["%s"] * len(model.columns))
    _denied(writer, f"INSERT INTO t VALUES ({values})", list(model.iloc[0]))
    conn.execute(sql.SQL("GRANT pgml_trigger_user TO {}").format(sql.Identifier(writer_name)))
    writer.execute(f"INSERT INTO t VALUES ({values})", list(model.iloc[0]))
    assert writer.execute("SELECT score FROM t").fetchone()[0] == pytest.approx(
        float(trained.diabetes_ridge().predict(model.iloc[[0]])[0]), rel=RTOL, abs=ATOL)  # the trigger's arithmetic


def test_admin_uploads_sets_aliases_deletes_and_attaches(conn, role):
    admin_name, admin_dsn = role("admin", "pgml_trigger_admin")
    assert upload(admin_dsn, "reg", trained.diabetes_ridge(), alias="production") == 1
    assert upload(admin_dsn, "reg", trained.diabetes_ridge()) == 2
    admin = role.session(admin_dsn)
    assert admin.execute("SELECT pgml_trigger.set_alias('reg', 'production', 2)").fetchone() == (2,)
    assert admin.execute("SELECT * FROM pgml_trigger.resolve_model('reg')").fetchone() == ("reg", 2)
    assert conn.execute("SELECT DISTINCT created_by FROM pgml_trigger.models").fetchall() == [(admin_name,)]
    assert conn.execute("SELECT updated_by FROM pgml_trigger.aliases").fetchall() == [(admin_name,)]
    admin.execute("UPDATE pgml_trigger.models SET description = 'refit' WHERE version = 2")
    admin.execute("SELECT pgml_trigger.set_alias('reg', 'production', 1)")
    admin.execute("DELETE FROM pgml_trigger.models WHERE version = 2")
    admin.execute("DELETE FROM pgml_trigger.aliases")
    admin.execute("SELECT octet_length(payload) FROM pgml_trigger.models")  # admins may read payloads
    assert conn.execute("SELECT version FROM pgml_trigger.models").fetchall() == [(1,)]

    X, _ = trained.diabetes()
    columns = ", ".join(f"{name} float8" for name in X.columns)
    conn.execute(f"CREATE TABLE granted ({columns}, score float8)")
    conn.execute(f"CREATE TABLE other ({columns}, score float8)")
    conn.execute(sql.SQL("GRANT TRIGGER ON granted TO {}").format(sql.Identifier(admin_name)))
    admin.execute("SELECT pgml_trigger.attach('granted', 'reg', 'score')")
    admin.execute("SELECT pgml_trigger.detach('granted', 'score')")
    _denied(admin, "SELECT pgml_trigger.attach('other', 'reg', 'score')")
    assert conn.execute("SELECT count(*) FROM pgml_trigger.attachments").fetchone() == (0,)


@pytest.fixture
def impostor_package():
    """A readable directory holding a pgml_trigger package whose version() says "impostor"."""
    root = Path(tempfile.mkdtemp(prefix="pgml_trigger_impostor_"))
    server = root / "pgml_trigger" / "server"
    server.mkdir(parents=True)
    (root / "pgml_trigger" / "__init__.py").write_text('__version__ = "impostor"\n')
    (server / "__init__.py").write_text("")
    (server / "entry.py").write_text('def version():\n    return "impostor"\n')
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755)
    yield str(root)
    shutil.rmtree(root)


def test_users_cannot_choose_the_code_the_server_imports(conn, model, role, impostor_package):
    user_name, user_dsn = role("user", "pgml_trigger_user")
    conn.execute(sql.SQL("GRANT CREATE ON DATABASE {} TO {}").format(
        sql.Identifier(conn.info.dbname), sql.Identifier(user_name)))
    features = list(model.iloc[0])
    expected = float(trained.diabetes_ridge().predict(model.iloc[[0]])[0])

    def scores_with_the_installed_package(session):
        assert session.execute("SELECT pgml_trigger.version()").fetchone() == (pgml_trigger.__version__,)
        assert session.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [features]).fetchone() == (
            expected,)

    # A session setting, before the backend first imports the package.
    user = role.session(user_dsn)
    user.execute(sql.SQL("SET pgml_trigger.python_path = {}").format(sql.Literal(impostor_package)))
    scores_with_the_installed_package(user)

    # Role settings: a user may not make them, and the server ignores those a superuser makes.
    refused = _denied(user, sql.SQL("ALTER ROLE {} SET pgml_trigger.python_path = {}").format(
        sql.Identifier(user_name), sql.Literal(impostor_package)))
    assert refused == 'permission denied to set parameter "pgml_trigger.python_path"'
    conn.execute(sql.SQL("ALTER ROLE {} SET pgml_trigger.python_path = {}").format(
        sql.Identifier(user_name), sql.Literal(impostor_package)))
    scores_with_the_installed_package(role.session(user_dsn))
    conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} SET pgml_trigger.python_path = {}").format(
        sql.Identifier(user_name), sql.Identifier(conn.info.dbname), sql.Literal(impostor_package)))
    fresh = role.session(user_dsn)
    assert fresh.execute("SHOW pgml_trigger.python_path").fetchone() == (impostor_package,)
    scores_with_the_installed_package(fresh)

    # A search_path that puts the user's own substr() ahead of pg_catalog's, where the path is computed.
    hostile = role.session(user_dsn)
    hostile.execute("CREATE SCHEMA hostile")
    hostile.execute(sql.SQL(
        "CREATE FUNCTION hostile.substr(text, integer) RETURNS text LANGUAGE sql AS {}").format(
        sql.Literal(f"SELECT {sql.Literal(impostor_package).as_string(hostile)}::text")))
    hostile.execute("SET search_path = hostile, pg_catalog, public")
    assert hostile.execute("SELECT substr('abc', 2)").fetchone() == (impostor_package,)
    scores_with_the_installed_package(hostile)

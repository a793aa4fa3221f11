"""The installer: what it sets up, and that running it again is safe."""

from __future__ import annotations

import psycopg
import pytest

from pgml_trigger import __version__
from pgml_trigger.admin.install import install
from pgml_trigger.errors import InstallError


def test_installed_database_answers_version_from_plpython(conn, installed):
    assert installed.smoke_version == __version__
    assert conn.execute("SELECT pgml_trigger.version()").fetchone()[0] == __version__
    language = conn.execute("SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang "
                            "WHERE p.oid = 'pgml_trigger.version()'::regprocedure").fetchone()[0]
    assert language == "plpython3u"


def test_the_database_runs_the_extension_at_the_package_version(conn):
    listed = conn.execute("SELECT extversion, extnamespace::regnamespace::text, extrelocatable FROM pg_extension "
                          "WHERE extname = 'pgml_trigger'").fetchone()
    assert listed == (__version__, "pgml_trigger", False)
    assert conn.execute("SELECT to_regclass('pgml_trigger.migrations')").fetchone()[0] is None


def test_server_imports_from_the_environment_the_installer_built(conn, installed):
    site = conn.execute("SELECT pgml_trigger._python_path()").fetchone()[0]
    assert site == installed.python_path
    conn.execute("SELECT pgml_trigger.version()")  # bootstraps this backend
    conn.execute("CREATE FUNCTION pg_temp.package_file() RETURNS text LANGUAGE plpython3u "
                 "AS $$ import pgml_trigger; return pgml_trigger.__file__ $$")
    assert conn.execute("SELECT pg_temp.package_file()").fetchone()[0].startswith(site)


def test_a_session_set_cannot_redirect_the_python_path(connect, installed):
    session = connect()
    session.execute("SET pgml_trigger.python_path = '/tmp/evil'")
    assert session.execute("SELECT pgml_trigger._python_path()").fetchone()[0] == installed.python_path
    assert session.execute("SELECT pgml_trigger.version()").fetchone()[0] == __version__


def test_running_the_installer_again_changes_nothing(server, installed, dsn, conn):
    conn.execute("CREATE TABLE keep (n int); INSERT INTO keep VALUES (42)")
    options = dict(server["install"]) or {"python_path": installed.python_path}
    again = install(dsn, log=lambda message: None, **options)
    assert again.action == f"pgml_trigger {__version__} already installed"
    assert conn.execute("SELECT n FROM keep").fetchone()[0] == 42


def test_install_into_a_fresh_database(server, installed, new_database):
    options = dict(server["install"]) or {"python_path": installed.python_path}
    report = install(new_database(installed_copy=False), log=lambda message: None, **options)
    assert report.action == f"created the extension pgml_trigger {__version__}"
    assert report.smoke_version == __version__


def test_non_superuser_is_told_to_connect_as_one(conn, dsn):
    conn.execute("CREATE ROLE app LOGIN")
    with pytest.raises(InstallError, match="must connect as a superuser"):
        install(psycopg.conninfo.make_conninfo(dsn, user="app"), log=lambda message: None)

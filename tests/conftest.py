"""One fixture chain to a real PostgreSQL with pgml_trigger installed.

Where the server comes from, first match wins:
1. ``PGML_TRIGGER_TEST_DSN``: an existing server (superuser DSN) on this host;
2. a Docker engine that answers: testcontainers runs tests/docker/Dockerfile
   (PostgreSQL + plpython3 + this package's environment baked in);
3. a throwaway local cluster from the PostgreSQL binaries on this machine
   (run as the ``postgres`` OS user when we are root).

The installer runs once per session into a template database; every test
gets its own database cloned from it.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import socket
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pgml_trigger.admin import extension
from pgml_trigger.admin.install import InstallReport, install

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = "pgml_trigger_template"
_counter = itertools.count()


def _docker_answers() -> bool:
    """A Docker engine answers a ping (checked without the docker library, which leaks sockets on failure)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        family, address = socket.AF_UNIX, host[len("unix://"):]
    elif host.startswith("tcp://"):
        name, _, port = host[len("tcp://"):].partition(":")
        family, address = socket.AF_INET, (name, int(port or 2375))
    else:
        return False
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(3)
            probe.connect(address)
            probe.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return b" 200 " in probe.recv(64)
    except OSError:
        return False


@pytest.fixture(scope="session")
def server():
    """(superuser DSN template with {db} placeholder, how the server was obtained, extra install options,
    and for a local cluster the LocalCluster itself)."""
    explicit = os.environ.get("PGML_TRIGGER_TEST_DSN")
    if explicit:
        info = psycopg.conninfo.conninfo_to_dict(explicit)
        yield {"dsn": lambda db: psycopg.conninfo.make_conninfo(explicit, dbname=db),
               "admin_db": info.get("dbname", "postgres"), "kind": "dsn", "install": {}}
        return
    if _docker_answers():
        from testcontainers.community.postgres import PostgresContainer
        from testcontainers.core.image import DockerImage

        with DockerImage(path=str(ROOT), dockerfile_path="tests/docker/Dockerfile", tag="pgml-trigger-test") as image:
            with PostgresContainer(str(image), username="postgres", password="postgres", dbname="postgres") as pg:
                base = (f"host={pg.get_container_host_ip()} port={pg.get_exposed_port(5432)} "
                        "user=postgres password=postgres")
                yield {"dsn": lambda db: f"{base} dbname={db}", "admin_db": "postgres", "kind": "testcontainers",
                       "install": {"python_path": "/opt/pgml_trigger/site-packages", "host_files": False}}
        return
    from pgml_trigger.localcluster import LocalCluster

    with LocalCluster() as cluster:
        yield {"dsn": cluster.dsn, "admin_db": "postgres", "kind": "local cluster", "install": {},
               "cluster": cluster}


def _server_venv_dir() -> Path:
    """Reused across runs, one per checkout: building the server environment is the slow part of installing,
    and two checkouts testing at once must not replace each other's package."""
    default = Path("/var/tmp/pgml_trigger-tests") / hashlib.sha1(str(ROOT).encode()).hexdigest()[:10] / "server-venv"
    return Path(os.environ.get("PGML_TRIGGER_TEST_VENV", default))


@pytest.fixture(scope="session")
def installed(server) -> InstallReport:
    with psycopg.connect(server["dsn"](server["admin_db"]), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(TEMPLATE)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    options = dict(server["install"])
    if "python_path" not in options:
        options["venv"] = _server_venv_dir()
    return install(server["dsn"](TEMPLATE), log=lambda message: None, **options)


@pytest.fixture
def new_database(server, installed):
    """Make more databases, each dropped after the test: a copy of the installed template, or empty."""
    made = []

    def _new_database(installed_copy: bool = True) -> str:
        name = f"pgml_test_{os.getpid()}_{next(_counter)}"
        with psycopg.connect(server["dsn"](server["admin_db"]), autocommit=True) as admin:
            if installed_copy:
                admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(TEMPLATE)))
                # Per-database settings are not copied from a template.
                admin.execute(sql.SQL("ALTER DATABASE {} SET pgml_trigger.python_path = {}").format(
                    sql.Identifier(name), sql.Literal(installed.python_path)))
            else:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                if installed.extension_dir:
                    # Other checkouts on this host share the extension directory: put this checkout's files
                    # back (a no-op when nobody changed them) just before the test creates the extension.
                    extension.write(Path(installed.extension_dir))
        made.append(name)
        return server["dsn"](name)

    yield _new_database
    with psycopg.connect(server["dsn"](server["admin_db"]), autocommit=True) as admin:
        for name in made:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def dsn(new_database) -> str:
    """A fresh database with pgml_trigger installed, dropped after the test."""
    return new_database()


@pytest.fixture
def conn(dsn):
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def connect(dsn):
    """Open more sessions on the test database; all closed at the end."""
    opened = []

    def _connect(**kwargs):
        connection = psycopg.connect(dsn, autocommit=kwargs.pop("autocommit", True), **kwargs)
        opened.append(connection)
        return connection

    yield _connect
    for connection in opened:
        connection.close()


_FIGURES = pytest.StashKey[list]()


@pytest.fixture
def figure(request, record_property):
    """figure(name, value): a measured figure, printed now and again in the terminal summary."""

    def _figure(name: str, value) -> None:
        print(f"{request.node.name}: {name} = {value}")
        record_property(name, value)
        request.config.stash.setdefault(_FIGURES, []).append((request.node.name, name, value))

    return _figure


def pytest_terminal_summary(terminalreporter, config):
    figures = config.stash.get(_FIGURES, [])
    if figures:
        terminalreporter.section("pgml_trigger figures")
        for test, name, value in figures:
            terminalreporter.write_line(f"{test}: {name} = {value}")

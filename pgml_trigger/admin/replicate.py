"""``pgml-trigger replicate``: scoring databases that receive their models from one registry database.

PostgreSQL's logical replication does the copying: the registry publishes the catalog tables (models,
aliases, alias history) as ``pgml_trigger_catalog``, and each scoring database subscribes to it. The
triggers that keep open sessions and SQL-arithmetic row triggers current on a subscriber are in
sql/replication.sql. Every statement is printed before it runs, so a DBA can also run them by hand.
"""

from __future__ import annotations

import re
import time

from ..errors import InstallError
from ..sqlfiles import query

PUBLICATION = "pgml_trigger_catalog"
SYNC_TIMEOUT_S = 300.0


def replicate(registry_dsn: str, target_dsns: list[str], *, dry_run: bool = False, out=print) -> list[str]:
    """Publish the registry's catalog and subscribe each target to it; return the subscription names.

    Safe to run again: an existing publication or subscription is left as it is. ``registry_dsn`` is
    also what the target servers connect with, so it must work from their hosts.
    """
    import psycopg

    with psycopg.connect(registry_dsn, autocommit=True) as registry:
        wal_level = registry.execute(query("replicate_wal_level")).fetchone()[0]
        if wal_level != "logical":
            raise InstallError(f"the registry server runs with wal_level = {wal_level}; publishing needs logical",
                               hint="ALTER SYSTEM SET wal_level = logical; then restart the registry server")
        registry_columns = _catalog_columns(registry, "the registry")
        if not registry.execute(query("replicate_publication_exists")).fetchone()[0]:
            _run(registry, query("replicate_create_publication"), "registry", dry_run, out)
        else:
            out(f"-- registry: publication {PUBLICATION} exists")
    return [_subscribe(target, registry_dsn, registry_columns, dry_run, out) for target in target_dsns]


def _subscribe(target_dsn: str, registry_dsn: str, registry_columns: set, dry_run: bool, out) -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(target_dsn, autocommit=True) as target:
        where = describe_dsn(target_dsn)
        missing = sorted(registry_columns - _catalog_columns(target, where))
        if missing:
            raise InstallError(f"{where} lacks catalog columns the registry sends: "
                               f"{', '.join(f'{table}.{column}' for table, column in missing)}",
                               hint=f"upgrade pgml_trigger there to the registry's release (pgml-trigger install "
                                    f"--dsn '{_masked(target_dsn)}')")
        name = target.execute(query("replicate_subscription_name")).fetchone()[0]
        if target.execute(query("replicate_subscription_exists"), {"name": name}).fetchone()[0]:
            out(f"-- {where}: subscription {name} exists")
            return name
        local = target.execute(query("replicate_local_versions")).fetchone()[0]
        if local:
            raise InstallError(f"{where} already holds {local} model version(s) of its own; a subscriber's "
                               "catalog is the registry's and must start empty",
                               hint="move them to the registry (pgml-trigger export / import), then delete them here")
        statement = sql.SQL(query("replicate_create_subscription")).format(
            name=sql.Identifier(name), conninfo=sql.Literal(registry_dsn))
        printed = sql.SQL(query("replicate_create_subscription")).format(
            name=sql.Identifier(name), conninfo=sql.Literal(_masked(registry_dsn)))
        _run(target, statement, where, dry_run, out, printed=printed)
        if not dry_run:
            _wait_for_initial_copy(target, name, where, out)
    return name


def _wait_for_initial_copy(conn, name: str, where: str, out) -> None:
    deadline = time.monotonic() + SYNC_TIMEOUT_S
    while conn.execute(query("replicate_sync_pending"), {"name": name}).fetchone()[0]:
        if time.monotonic() > deadline:
            raise InstallError(f"{where}: the initial copy of the catalog has not finished after "
                               f"{SYNC_TIMEOUT_S:.0f} s", hint="pgml-trigger status shows the subscription's state; "
                               "the server log says why a table sync worker fails")
        time.sleep(0.2)
    versions = conn.execute(query("replicate_local_versions")).fetchone()[0]
    out(f"-- {where}: catalog copied ({versions} model versions); changes now follow as they commit")


def _catalog_columns(conn, where: str) -> set:
    import psycopg

    try:
        return set(conn.execute(query("replicate_catalog_columns")).fetchall())
    except psycopg.errors.InvalidSchemaName:
        raise InstallError(f"pgml_trigger is not installed in {where}",
                           hint="install it there first: pgml-trigger install --dsn ...") from None


def _run(conn, statement, where: str, dry_run: bool, out, printed=None) -> None:
    text = (printed or statement)
    text = text if isinstance(text, str) else text.as_string(conn)
    out(f"-- {where}:\n{text};")
    if not dry_run:
        conn.execute(statement)


def describe_dsn(dsn: str) -> str:
    """A DSN as a DBA reads it in messages: database, host and port (never the password)."""
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    return f"database {info.get('dbname', '?')} at {info.get('host', 'localhost')}:{info.get('port', 5432)}"


def _masked(dsn: str) -> str:
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1********", dsn)

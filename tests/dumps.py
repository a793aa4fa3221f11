"""pg_dump and pg_restore against the test server, and a schema dump that shows the extension's members."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import psycopg

from pgml_trigger.localcluster import find_bindir

# The extension's members, as ALTER EXTENSION ... DROP names them.
_MEMBERS = """
SELECT upper(split_part(pg_describe_object(classid, objid, objsubid), ' ', 1))
       || CASE WHEN pg_describe_object(classid, objid, objsubid) LIKE 'event trigger %' THEN ' TRIGGER' ELSE '' END,
       CASE classid WHEN 'pg_proc'::regclass THEN objid::regprocedure::text
                    WHEN 'pg_class'::regclass THEN objid::regclass::text
                    WHEN 'pg_event_trigger'::regclass THEN (SELECT evtname FROM pg_event_trigger WHERE oid = objid)
       END
FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pgml_trigger')
"""


def tool(name: str) -> str:
    return str(find_bindir() / name)


def run(*argv: str, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(argv, input=stdin, capture_output=True)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed:\n{done.stderr.decode()[-4000:]}")
    return done.stdout


def dump(dsn: str, *options: str, path: Path | None = None) -> bytes:
    return run(tool("pg_dump"), *options, *(["-f", str(path)] if path else []), "-d", dsn)


def restore(dsn: str, path: Path, *options: str) -> None:
    run(tool("pg_restore"), "--exit-on-error", *options, "-d", dsn, str(path))


def psql(dsn: str, script: bytes) -> None:
    run(tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, stdin=script)


def member_schema(dsn: str) -> list[str]:
    """pg_dump --schema-only of the extension's objects, as a sorted list of statements.

    pg_dump writes only CREATE EXTENSION for an extension's members, so they leave the extension
    first (the database is a throwaway copy). Sorted: GRANTs come in the order they were made.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        for kind, name in conn.execute(_MEMBERS).fetchall():
            conn.execute(f"ALTER EXTENSION pgml_trigger DROP {kind} {name}")
    text = dump(dsn, "--schema-only", "--no-owner").decode()
    text = re.sub(r"^\\(un)?restrict .*$", "", text, flags=re.M)
    statements = [re.sub(r"^--.*$", "", s, flags=re.M).strip() for s in text.split(";\n")]
    return sorted(s for s in statements if s)

"""pg_dump, pg_restore and psql against the test server."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pgml_trigger.localcluster import find_bindir


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


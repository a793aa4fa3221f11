"""Payloads on the server's disk, each in a file named by its sha256: where a parallel query loads models from.

A process in a parallel query cannot read a payload through SPI (parallel.py), so every payload a backend fetches
through SPI (at its first load, or in the upload's server check) is also written here, for parallel queries to
read. Backends go on fetching through SPI, so that a stored payload that no longer matches its sha256 is found
at its first load, as before. The files live in the data directory (pg_stat_tmp/pgml_trigger/<database
oid>/models, beside the counters), which only the server's OS user may read; each is written whole under
another name and renamed, and is checked against its name before use: a file that does not match is removed,
and written again by the next backend that fetches the payload. A transaction that deletes a version removes
its files as it commits (sql/catalog.sql, _write_catalog_snapshot).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .. import formats
from ..errors import ModelCorrupted


class ModelFiles:
    def __init__(self, directory: Path):
        self.directory = directory

    def read(self, sha256: str) -> bytes | None:
        """The payload whose sha256 that is, or None when no file holds it. ModelCorrupted when the file does not
        match its name; it is removed first."""
        path = self.directory / sha256
        try:
            payload = path.read_bytes()
        except FileNotFoundError:
            return None
        if formats.sha256(payload) != sha256:
            path.unlink(missing_ok=True)
            raise ModelCorrupted(f"the server's file {path} does not match its sha256; it was removed")
        return payload

    def holds(self, sha256: str) -> bool:
        return (self.directory / sha256).exists()

    def write(self, sha256: str, payload: bytes) -> None:
        """Keep a payload already checked against its sha256. Best effort: a full disk only costs a parallel query
        the file, which then says so."""
        target = self.directory / sha256
        temporary = self.directory / f"{sha256}.{os.getpid()}.tmp"
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "wb") as file:
                file.write(payload)
            temporary.replace(target)
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink()

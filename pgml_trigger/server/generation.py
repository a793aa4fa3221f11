"""A cheap first answer to "may the catalog have changed?", so that most statements skip reading it.

Every writer of models, aliases and attachments bumps
``pgml_trigger.catalog_state.generation`` in its transaction (sql/0001), and,
before it commits, writes the new number into a file shared by the
database's backends, pg_stat_tmp/pgml_trigger/<database oid>/generation
(sql/0011). A reader maps that file once and, at the start of a statement,
compares the number in it with the generation it last read from the catalog
through SPI: only while the two are equal may it skip the SPI read (about
10 us of a one-row statement), because every committed change wrote a larger
number there before it committed. A number in the file that the catalog does
not show (yet: the writer has not committed; or ever: it rolled back) only
sends the reader to the catalog, which answers under the statement's
snapshot as before. The file is only ever written in place, so a mapping
never goes stale.

Never trusted in a backend that changed the catalog itself (its own change
may still roll back), nor on a standby (replayed changes run no triggers), nor
where the file cannot be mapped.
"""

from __future__ import annotations

import mmap
import os
import struct
from pathlib import Path

from .counters import DIRECTORY

_NUMBER = struct.Struct("<q")


def path(database_oid: int) -> Path:
    return DIRECTORY / str(database_oid) / "generation"


class GenerationSignal:
    """The number the last writer put in the database's file; None when it cannot be trusted here."""

    def __init__(self, database_oid: int, usable: bool):
        self._map = _mapped(path(database_oid)) if usable else None

    def current(self) -> int | None:
        return None if self._map is None else _NUMBER.unpack_from(self._map)[0]

    def distrust(self) -> None:
        """This backend changed the catalog: read the generation through SPI from now on."""
        self._map = None


def publish(database_oid: int, generation: int) -> None:
    """The writer's half: in place, before its transaction commits. Raises when it cannot (readers would go stale)."""
    target = path(database_oid)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(descriptor, _NUMBER.pack(generation), 0)
    finally:
        os.close(descriptor)


def _mapped(target: Path) -> mmap.mmap | None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(descriptor).st_size < _NUMBER.size:  # new: zeros, which no generation (from 1) equals
                os.ftruncate(descriptor, _NUMBER.size)
            return mmap.mmap(descriptor, _NUMBER.size, access=mmap.ACCESS_READ)
        finally:
            os.close(descriptor)
    except (OSError, ValueError):
        return None

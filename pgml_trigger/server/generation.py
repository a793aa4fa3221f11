"""A cheap first answer to "may the catalog have changed?", so that most statements skip reading it.

Every writer of models, aliases and attachments bumps
``pgml_trigger.catalog_state.generation`` in its transaction (sql/catalog.sql), and,
before it commits, writes the new number into a file shared by the
database's backends, pg_stat_tmp/pgml_trigger/<database oid>/generation, as
8 little-endian bytes (pgml_trigger._catalog_changed() in sql/catalog.sql). A
reader maps that file once and, at the start of a statement, compares the
number in it with the generation it last read from the catalog through SPI:
only while the two are equal may it skip the SPI read (about 10 us of a
one-row statement), because every committed change wrote a larger number
there before it committed. A number in the file that the catalog does not
show (yet: the writer has not committed; or ever: it rolled back) only sends
the reader to the catalog, which answers under the statement's snapshot as
before. The file is only ever written in place; when it is removed (say, with
the counters beside it), the next statement sees that the mapped file has no
name any more and maps the new one.

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
        self._path = path(database_oid)
        self._descriptor, self._map = _mapped(self._path) if usable else (None, None)

    def current(self) -> int | None:
        if self._map is None:
            return None
        if os.fstat(self._descriptor).st_nlink == 0:  # removed: a writer since wrote to a new file
            self._close()
            self._descriptor, self._map = _mapped(self._path)
            if self._map is None:
                return None
        return _NUMBER.unpack_from(self._map)[0]

    def distrust(self) -> None:
        """This backend changed the catalog: read the generation through SPI from now on."""
        self._close()

    def _close(self) -> None:
        if self._map is not None:
            self._map.close()
            os.close(self._descriptor)
        self._descriptor, self._map = None, None


def _mapped(target: Path) -> tuple[int | None, mmap.mmap | None]:
    """The file's descriptor (kept open, to notice when it is removed) and an 8-byte read-only mapping of it."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(target, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None, None
    try:
        if os.fstat(descriptor).st_size < _NUMBER.size:  # new: zeros, which no generation (from 1) equals
            os.ftruncate(descriptor, _NUMBER.size)
        return descriptor, mmap.mmap(descriptor, _NUMBER.size, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        os.close(descriptor)
        return None, None

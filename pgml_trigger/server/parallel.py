"""Whether this process runs inside a parallel query, where the catalog can only be read from files.

In a parallel query, the leader and each worker are in PostgreSQL's parallel mode, in which no subtransaction may
start; PL/Python wraps every ``plpy.execute`` in one, and the error it then raises (``cannot start
subtransactions during a parallel operation``) cannot be caught in Python: it ends the call. So a scoring
function must know, before it reads anything through SPI, that it may not, and PostgreSQL exposes that to no SQL
function. It is read here from the server's own ``IsInParallelMode()`` and ``MyDatabaseId``, found by name in
the running executable (exported for extensions, as every backend global is); both only read memory and cannot
raise an error, which through ctypes could not be turned into a Python exception.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
from pathlib import Path


@functools.cache
def _server():
    """The running postgres executable's symbols; None where they cannot be reached (then nothing is parallel)."""
    try:
        server = ctypes.CDLL(None)
        server.IsInParallelMode.restype = ctypes.c_bool
        server.IsInParallelMode.argtypes = []
        return server
    except (OSError, AttributeError):
        return None


def in_parallel_mode() -> bool:
    server = _server()
    return server is not None and server.IsInParallelMode()


def database_oid() -> int | None:
    """This backend's database, without SPI; None where the server's symbols cannot be reached."""
    server = _server()
    if server is None:
        return None
    try:
        return ctypes.c_uint32.in_dll(server, "MyDatabaseId").value
    except ValueError:
        return None



def prepare_workers(root: Path, database_oid: int) -> None:
    """Leave what a parallel query's processes bootstrap from: worker_bootstrap.py as root/bootstrap.py, and the
    site-packages this backend imported pgml_trigger from as root/<database oid>/python_path. Written where they
    differ, once per backend; best effort (a parallel query then says what is missing)."""
    site_packages = str(Path(__file__).parents[2])  # as imported: pgml_trigger/server/parallel.py
    source = (Path(__file__).parent / "worker_bootstrap.py").read_text()
    for target, text in ((root / "bootstrap.py", source), (root / str(database_oid) / "python_path", site_packages)):
        with contextlib.suppress(OSError):
            if not target.exists() or target.read_text() != text:
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                temporary = target.with_name(f"{target.name}.{os.getpid()}.tmp")
                temporary.write_text(text)
                temporary.replace(target)

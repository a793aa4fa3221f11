"""What a model holds in a backend: the private memory its load added to the process, as the kernel counts it.

A payload's size says little about it: a joblib payload is compressed, a scikit-learn forest copies its tree
arrays into buffers of its own, and onnxruntime expands a tree ensemble's graph into its own node structures
(the issue that brought this module measured a 300-tree forest's session at several times its 309 MB graph).
So the cache (pgml_trigger.model_cache_mb) counts what the kernel says the process added across the load:
resident memory that is neither backed by a file nor shared (PostgreSQL's shared buffers, which reading a
payload touches, are shared; a library's code is backed by its file). Memory the process freed earlier but
kept (a model evicted before, a big batch) would let a load grow the process by less than it holds, so the C
allocator first gives its free pages back (glibc's malloc_trim); Python's allocator gives back the arenas that
emptied. What a library's first import in the backend adds during a load (a model's classes, unpickled,
import their modules) is the backend's, not the model's, and is left out: the imports' own growth is measured
as they happen, and subtracted.
"""

from __future__ import annotations

import builtins
import ctypes
import functools
import os
import sys

_PAGE = os.sysconf("SC_PAGE_SIZE")


def private_bytes() -> int | None:
    """Resident memory of this process that is neither file-backed nor shared; None where /proc cannot say."""
    try:
        with open("/proc/self/statm") as statm:
            _, resident, shared = statm.read().split()[:3]
    except OSError:
        return None
    return (int(resident) - int(shared)) * _PAGE


@functools.cache
def _malloc_trim():
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc
    except (OSError, AttributeError):
        return None


def give_back() -> None:
    """Return the C allocator's free pages to the system, so that what a load then adds is what it holds."""
    trim = _malloc_trim()
    if trim is not None:
        trim(ctypes.c_size_t(0))


class Measured:
    """``with Measured() as added:`` ... ``added.bytes``: the private memory the block added (negative: it gave
    back more), without what the imports it started added; None where it cannot be measured."""

    def __init__(self):
        self.bytes: int | None = None
        self._imports = 0
        self._depth = 0

    def __enter__(self) -> Measured:
        self._original = builtins.__import__
        builtins.__import__ = self._import
        give_back()
        self._before = private_bytes()
        return self

    def __exit__(self, *exc) -> None:
        give_back()  # what the load allocated and freed again (the payload's bytes, buffers) is not held
        after = private_bytes()
        builtins.__import__ = self._original
        if self._before is not None and after is not None:
            self.bytes = after - self._before - self._imports

    def _import(self, name, *args, **kwargs):
        if name in sys.modules or self._depth:  # already imported, or within an import being measured
            return self._original(name, *args, **kwargs)
        self._depth += 1
        before = private_bytes() or 0
        try:
            return self._original(name, *args, **kwargs)
        finally:
            self._imports += (private_bytes() or 0) - before
            self._depth -= 1

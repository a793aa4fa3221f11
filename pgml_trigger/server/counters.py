"""Per-model counters: kept cheaply in each backend, published to a file so counters() can add up every backend.

A backend's working directory is the data directory; each backend writes
pg_stat_tmp/pgml_trigger/<database oid>/<pid>-<start>.json, at most once a
second, at the start of a statement that scores (ModelCache.sync). The files stay after a backend exits,
so the totals cover every backend since the directory was last cleared; a
backend's last second of work reaches its file with its next statement, and
the backend asking counters() publishes its own first.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import astuple, dataclass
from pathlib import Path

DIRECTORY = Path("pg_stat_tmp") / "pgml_trigger"
PUBLISH_EVERY_S = 1.0


@dataclass
class Usage:
    """One model's scoring in this backend. Slots: it is updated on every call, the hot path."""

    __slots__ = ("calls", "rows", "errors", "seconds")
    calls: int
    rows: int
    errors: int  # calls refused: by the feature checks or by the model
    seconds: float  # spent in the engines


class Counters:
    def __init__(self, database_oid: int):
        self.usage: dict[tuple[str, int], Usage] = {}
        self.loads: Counter[tuple[str, int]] = Counter()
        self.load_seconds: Counter[tuple[str, int]] = Counter()  # seconds spent loading into the cache
        self.directory = DIRECTORY / str(database_oid)
        self._file = self.directory / f"{os.getpid()}-{time.time_ns() // 1000}.json"
        self._published = 0.0

    def for_model(self, name: str, version: int) -> Usage:
        usage = self.usage.get((name, version))
        if usage is None:
            usage = self.usage[name, version] = Usage(calls=0, rows=0, errors=0, seconds=0.0)
        return usage

    def publish_if_due(self) -> None:
        if time.monotonic() - self._published >= PUBLISH_EVERY_S:
            self.publish()

    def publish(self) -> None:
        self._published = time.monotonic()
        keys = set(self.usage) | set(self.loads)
        if not keys:
            return
        unused = Usage(calls=0, rows=0, errors=0, seconds=0.0)  # loaded, never scored
        # A model's line: calls, rows, errors, seconds, loads, load_seconds (what totals() reads).
        snapshot = {f"{name}@{version}": [*astuple(self.usage.get((name, version), unused)),
                                          self.loads[name, version], self.load_seconds[name, version]]
                    for name, version in keys}
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self._file.with_suffix(".tmp")
            temporary.write_text(json.dumps(snapshot))
            temporary.replace(self._file)
        except OSError:
            pass  # counting is best effort: it must never make scoring fail


def totals(directory: Path) -> list[tuple]:
    """(name, version, backends, calls, rows, errors, loads, seconds, load_seconds) per model, over every
    backend's file."""
    summed: dict[str, list] = {}
    for path in directory.glob("*.json"):
        try:
            snapshot = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # a file being replaced, or gone
        for model, (calls, rows, errors, seconds, loads, *load_seconds) in snapshot.items():
            entry = summed.setdefault(model, [0, 0, 0, 0, 0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += calls
            entry[2] += rows
            entry[3] += errors
            entry[4] += loads
            entry[5] += seconds
            entry[6] += sum(load_seconds)  # absent from the files of backends older than this column
    result = []
    for model, (backends, calls, rows, errors, loads, seconds, load_seconds) in sorted(summed.items()):
        name, _, version = model.rpartition("@")
        result.append((name, int(version), backends, calls, rows, errors, loads, seconds, load_seconds))
    return result

"""The catalog as a parallel query reads it: the newest snapshot file, since it cannot read the catalog itself.

A snapshot (pg_stat_tmp/pgml_trigger/<database oid>/catalog/<generation>.json) holds every model version's
metadata, every alias and the database's pgml_trigger settings, as pgml_trigger._catalog_snapshot() writes them.
Every transaction that changes models or aliases writes one as it commits (a deferred trigger, after its last
change), so the newest file is the catalog the last commit left: a version, an alias move or a deletion reaches
the parallel queries that start after it. A writer that has not committed yet, or rolled back, wrote none. A
backend that reads the catalog through SPI also writes the generation it read when no newer file is there (a
database just created from a template, a standby, where no writer runs), and replaces a newer one whose writer
then failed to commit. The settings are as of the newest file, or as a backend that started since found them.

This module resolves references from a snapshot the way pgml_trigger.resolve_model() does in SQL, with the same
errors: a parallel worker cannot call that function.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import ModelLoadFailed, ModelNotFound, ModelReferenceInvalid
from .catalog import ModelMeta

_REFERENCE = re.compile(r"[^@]+(@[^@]+)?")
_VERSION = re.compile(r"[0-9]{1,9}")
# What a parallel query cannot do without a snapshot, and how a user gets one written.
_HINT = ("score the model once without parallel workers (SET max_parallel_workers_per_gather = 0), or call "
         "pgml_trigger.warm_up() for it: that writes what parallel workers read")


class Snapshots:
    """The snapshot files of one database; the newest, parsed once per process."""

    def __init__(self, directory: Path):
        self.directory = directory
        self._parsed: tuple[tuple[int, int], SnapshotCatalog] | None = None

    def newest_generation(self) -> int | None:
        try:
            generations = [int(name[:-5]) for name in os.listdir(self.directory) if name[:-5].isdigit()
                           and name.endswith(".json")]
        except FileNotFoundError:
            return None
        return max(generations, default=None)

    def newest(self, warn) -> SnapshotCatalog:
        generation = self.newest_generation()
        if generation is None:
            raise ModelLoadFailed("pgml_trigger cannot read the model catalog in a parallel query: this server has "
                                  "no snapshot of it yet", hint=_HINT)
        path = self.directory / f"{generation}.json"
        try:
            stamp = (generation, path.stat().st_mtime_ns)
            if self._parsed is None or self._parsed[0] != stamp:
                self._parsed = stamp, SnapshotCatalog(json.loads(path.read_bytes()), warn)
        except FileNotFoundError:  # replaced by a newer one since it was listed
            return self.newest(warn)
        return self._parsed[1]


class SnapshotCatalog:
    """What ModelCache reads of the catalog (catalog.Catalog's resolve, load_checks, setting, generation, warn),
    from a snapshot."""

    def __init__(self, snapshot: dict, warn):
        self._generation = snapshot["generation"]
        self._settings = snapshot["settings"]
        self._rows = {(row["name"], row["version"]): row for row in snapshot["models"]}
        self._versions: dict[str, list[int]] = {}
        for name, version in sorted(self._rows):
            self._versions.setdefault(name, []).append(version)
        self._aliases = {(row["name"], row["alias"]): row["version"] for row in snapshot["aliases"]}
        self.warn = warn

    def generation(self) -> int:
        return self._generation

    def setting(self, name: str) -> str | None:
        return self._settings.get(name)

    def resolve(self, model_ref: str) -> ModelMeta:
        return ModelMeta.from_row(self._rows[self._resolved(model_ref)])

    def load_checks(self, name: str, version: int) -> dict:
        """As server_load_checks.sql: the row's HMAC and library versions, and the database's load policy."""
        row = self._rows[name, version]
        return {"payload_hmac": row["payload_hmac"], "sklearn_version": row["sklearn_version"],
                "numpy_version": row["numpy_version"], "library_versions": row["library_versions"],
                **{key: self._settings.get(f"pgml_trigger.{key}")
                   for key in ("allowed_formats", "hmac_key_file", "strict_versions", "defer_graph_mb")}}

    def _resolved(self, model_ref: str) -> tuple[str, int]:
        """(name, version) as pgml_trigger.resolve_model() finds them (sql/resolution.sql), with its errors."""
        if not _REFERENCE.fullmatch(model_ref):
            raise ModelReferenceInvalid(f'invalid model reference "{model_ref}"',
                                        hint="write name, name@version or name@alias")
        name, _, selector = model_ref.partition("@")
        versions = self._versions.get(name)
        if versions is None:
            raise ModelNotFound(f'model "{name}" does not exist',
                                hint="upload it first with pgml_trigger.upload() or pgml-trigger upload")
        if not selector:
            return name, self._aliases.get((name, "production"), versions[-1])
        if _VERSION.fullmatch(selector):
            if int(selector) not in versions:
                raise ModelNotFound(f'model "{name}" has no version {selector}',
                                    hint=f"its versions are: {', '.join(map(str, versions))}")
            return name, int(selector)
        version = self._aliases.get((name, selector))
        if version is None:
            known = sorted(alias for alias_name, alias in self._aliases if alias_name == name)
            raise ModelNotFound(f'model "{name}" has no alias "{selector}"',
                                hint=f"its aliases are: {', '.join(known)}" if known
                                else "it has no aliases; see pgml_trigger.set_alias()")
        return name, version

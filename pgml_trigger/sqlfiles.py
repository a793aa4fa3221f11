"""Load the SQL that Python runs from .sql files, read once and cached.

Queries live in pgml_trigger/queries/<name>.sql; the ordered schema
migrations live in the top-level sql/ directory (inside the wheel they are
shipped as pgml_trigger/migrations/).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def query(name: str) -> str:
    return (_PACKAGE / "queries" / f"{name}.sql").read_text(encoding="utf-8")


def migrations_dir() -> Path:
    for candidate in (_PACKAGE.parent / "sql", _PACKAGE / "migrations"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("pgml_trigger migrations not found (expected sql/ beside the package)")


def migrations() -> list[tuple[str, str]]:
    """(version, sql text) for every migration, in the order they apply."""
    return [(path.stem, path.read_text(encoding="utf-8")) for path in sorted(migrations_dir().glob("*.sql"))]

"""Load the SQL that Python runs from .sql files, read once and cached.

Queries live in pgml_trigger/queries/<name>.sql; the extension's schema lives in the top-level sql/
directory (pgml_trigger/admin/extension.py builds the extension's files from it; inside the wheel it is
shipped as pgml_trigger/sql/).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def query(name: str) -> str:
    return (_PACKAGE / "queries" / f"{name}.sql").read_text(encoding="utf-8")


def sql_dir() -> Path:
    for candidate in (_PACKAGE.parent / "sql", _PACKAGE / "sql"):
        if (candidate / "runtime.sql").is_file():
            return candidate
    raise FileNotFoundError("pgml_trigger's sql/ directory not found (expected beside the package)")

"""Move a model version with its metadata between databases: ``pgml-trigger export`` / ``import``.

An export file is gzip-compressed JSON: the whole ``pgml_trigger.models`` row
(bytea in hex) plus a sha256 of that row, checked on import before anything
is sent; the server checks the payload against its own sha256 column again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from . import __version__
from .errors import ModelCorrupted, PgmlTriggerError
from .sqlfiles import query

FILE_FORMAT = "pgml_trigger-model-export/1"


def export_model(conn, model_ref: str, path: Path) -> tuple[str, int]:
    row = conn.execute(query("transfer_export"), {"ref": model_ref}).fetchone()[0]
    body = json.dumps(row, sort_keys=True)
    document = {"format": FILE_FORMAT, "exported_by": __version__, "row": body,
                "row_sha256": hashlib.sha256(body.encode()).hexdigest()}
    with gzip.open(path, "wt", encoding="utf-8") as out:
        json.dump(document, out)
    return row["name"], row["version"]


def import_model(conn, path: Path) -> tuple[str, int, int]:
    """Insert the exported version as the next version of its name; returns (name, old, new version)."""
    with gzip.open(path, "rt", encoding="utf-8") as source:
        document = json.load(source)
    if document.get("format") != FILE_FORMAT:
        raise PgmlTriggerError(f"{path} is not a pgml_trigger model export")
    body = document["row"]
    if hashlib.sha256(body.encode()).hexdigest() != document["row_sha256"]:
        raise ModelCorrupted(f"{path} is damaged: its contents do not match the checksum written with them")
    row = json.loads(body)
    known = dict(conn.execute(query("models_columns")).fetchall())  # name -> generated
    unknown = sorted(set(row) - set(known))
    if unknown:
        raise PgmlTriggerError(f"{path} was exported by pgml_trigger {document['exported_by']} with columns "
                               f"this database lacks ({', '.join(unknown)})", hint="upgrade with pgml-trigger install")
    from psycopg import sql

    stored = sql.SQL(", ").join(sql.Identifier(column) for column in row if not known[column])
    with conn.transaction():
        name, version = conn.execute(sql.SQL(query("transfer_import")).format(columns=stored),
                                     {"row": body}).fetchone()
    return name, row["version"], version

"""Move a model version with its metadata between databases: ``pgml-trigger export`` / ``import``.

An export file is gzip-compressed: one line of JSON (the ``pgml_trigger.models`` row without its
payloads, a sha256 of that row, and the size of each payload), then the payload's bytes and the
compiled payload's bytes. The payloads travel in binary, a chunk at a time: never as hex text, which
is twice their size and would pass PostgreSQL's 1 GB limit for one value at 512 MiB. Import checks
the row's and both payloads' checksums before anything is sent; the server checks the payloads
against its own sha256 columns again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

from .. import __version__
from ..errors import ModelCorrupted, PgmlTriggerError
from ..sqlfiles import query

FILE_FORMAT = "pgml_trigger-model-export/2"
PAYLOADS = {"payload": "sha256", "compiled_payload": "compiled_sha256"}  # column -> its checksum column
CHUNK_BYTES = 32 * 1024 * 1024
# Set by the server on insert: an import is a new version of its name, made by whoever imports it.
_STAMPED = ("created_at", "created_by")


def export_model(conn, model_ref: str, path: Path) -> tuple[str, int]:
    from psycopg import sql

    columns = [column for column, _ in conn.execute(query("models_columns")) if column not in PAYLOADS]
    export = sql.SQL(query("transfer_export")).format(
        columns=sql.SQL(", ").join(sql.Identifier("m", column) for column in columns))
    row, sizes = conn.execute(export, {"ref": model_ref}).fetchone()
    body = json.dumps(row, sort_keys=True)
    header = {"format": FILE_FORMAT, "exported_by": __version__, "row": body,
              "row_sha256": hashlib.sha256(body.encode()).hexdigest(), "payload_bytes": sizes}
    with gzip.open(path, "wb", compresslevel=1) as out:  # pickled arrays barely compress
        out.write(json.dumps(header).encode() + b"\n")
        for column in PAYLOADS:
            chunk = sql.SQL(query("transfer_export_chunk")).format(column=sql.Identifier(column))
            for offset in range(0, sizes[column] or 0, CHUNK_BYTES):
                params = {"name": row["name"], "version": row["version"], "offset": offset + 1,
                          "length": CHUNK_BYTES}
                out.write(conn.execute(chunk, params, binary=True).fetchone()[0])
    return row["name"], row["version"]


def import_model(conn, path: Path) -> tuple[str, int, int]:
    """Insert the exported version as the next version of its name; returns (name, old, new version)."""
    with gzip.open(path, "rb") as source:
        try:
            header = json.loads(source.readline())
        except ValueError:
            raise PgmlTriggerError(f"{path} is not a pgml_trigger model export") from None
        if header.get("format") != FILE_FORMAT:
            raise PgmlTriggerError(f"{path} is not a pgml_trigger model export")
        body = header["row"]
        if hashlib.sha256(body.encode()).hexdigest() != header["row_sha256"]:
            raise ModelCorrupted(f"{path} is damaged: its contents do not match the checksum written with them")
        row = json.loads(body)
        payloads = {column: _read(source, header["payload_bytes"][column], path) for column in PAYLOADS}
    for column, checksum in PAYLOADS.items():
        if payloads[column] is not None and hashlib.sha256(payloads[column]).hexdigest() != row[checksum]:
            raise ModelCorrupted(f"{path} is damaged: its {column.replace('_', ' ')} does not match its sha256")

    known = dict(conn.execute(query("models_columns")).fetchall())  # name -> generated
    unknown = sorted(set(row) - set(known))
    if unknown:
        raise PgmlTriggerError(f"{path} was exported by pgml_trigger {header['exported_by']} with columns "
                               f"this database lacks ({', '.join(unknown)})", hint="upgrade with pgml-trigger install")
    from psycopg import sql

    columns = [column for column in row if not known[column] and column not in _STAMPED]
    statement = sql.SQL(query("transfer_import")).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, [*columns, *PAYLOADS])),
        values=sql.SQL(", ").join(sql.Identifier("r", column) for column in columns))
    with conn.transaction():
        name, version = conn.execute(statement, {"row": json.dumps(dict(row, version=0)), **payloads}).fetchone()
    return name, row["version"], version


def _read(source, size: int | None, path: Path) -> bytearray | None:
    if size is None:
        return None
    data = bytearray()
    while len(data) < size:
        chunk = source.read(min(CHUNK_BYTES, size - len(data)))
        if not chunk:
            raise ModelCorrupted(f"{path} is damaged: it ends {size - len(data)} bytes into a payload")
        data += chunk
    return data

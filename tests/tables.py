"""Load pandas frames into real tables for the tests."""

from __future__ import annotations

import pandas as pd
from psycopg import sql


def create_table(conn, table: str, frame: pd.DataFrame, extra: dict[str, str] | None = None) -> None:
    """CREATE TABLE with a column per frame column (float8 or text) plus ``extra`` columns; no rows."""
    columns = [sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(_sql_type(frame[name])))
               for name in frame.columns]
    columns += [sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in (extra or {}).items()]
    conn.execute(sql.SQL("CREATE TABLE {} (id serial PRIMARY KEY, {})").format(
        sql.Identifier(table), sql.SQL(", ").join(columns)))


def copy_rows(conn, table: str, frame: pd.DataFrame) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, frame.columns)))
    with conn.cursor().copy(statement) as copy:
        for row in frame.itertuples(index=False):
            copy.write_row([value.item() if hasattr(value, "item") else value for value in row])


def load_table(conn, table: str, frame: pd.DataFrame, extra: dict[str, str] | None = None) -> None:
    create_table(conn, table, frame, extra)
    copy_rows(conn, table, frame)


def _sql_type(series: pd.Series) -> str:
    return "double precision" if series.dtype.kind in "biuf" else "text"

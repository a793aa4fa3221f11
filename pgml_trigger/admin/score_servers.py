"""``pgml-trigger score``: run score() on several databases at once, e.g. every shard of a table.

Each database scores its own rows with its own copy of the model (a shard that subscribes to the
registry, see replicate.py), in one thread and one connection per database. The progress bar counts
the rows of the databases that have finished: a database's score() is one statement, which reports
nothing until it ends.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass

from ..sqlfiles import query

BAR_WIDTH = 30


@dataclass
class Outcome:
    dsn: str
    total: int | None = None  # rows in the table when scoring started
    rows: int | None = None  # rows scored and written, once done
    error: str | None = None
    seconds: float = 0.0


def score_servers(dsns: list[str], model: str, table: str, column: str, *, features: list[str] | None = None,
                  batch_size: int = 10_000, out=None) -> list[Outcome]:
    """score(model, table, column) on every database in ``dsns`` concurrently; one Outcome each, in order."""
    out = out or sys.stderr
    outcomes = [Outcome(dsn) for dsn in dsns]
    threads = [threading.Thread(target=_score_one, args=(outcome, model, table, column, features, batch_size),
                                daemon=True) for outcome in outcomes]
    start = time.monotonic()
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        _draw(outcomes, time.monotonic() - start, out, final=False)
        time.sleep(0.2)
    _draw(outcomes, time.monotonic() - start, out, final=True)
    return outcomes


def _score_one(outcome: Outcome, model, table, column, features, batch_size) -> None:
    import psycopg
    from psycopg import sql

    start = time.monotonic()
    try:
        with psycopg.connect(outcome.dsn, autocommit=True) as conn:
            relation = conn.execute("SELECT %s::regclass::text", [table]).fetchone()[0]
            outcome.total = conn.execute(sql.SQL(query("score_count")).format(table=sql.SQL(relation))).fetchone()[0]
            outcome.rows = conn.execute(query("score_run"), {
                "model": model, "table": table, "column": column, "features": features,
                "batch_size": batch_size}).fetchone()[0]
    except psycopg.Error as exc:  # one database failing must not stop the others; the caller reports it
        outcome.error = exc.diag.message_primary or str(exc)
    finally:
        outcome.seconds = time.monotonic() - start


def _draw(outcomes: list[Outcome], elapsed: float, out, final: bool) -> None:
    """One progress line, redrawn in place on a terminal; on anything else only the final one."""
    terminal = hasattr(out, "isatty") and out.isatty()
    if not (terminal or final):
        return
    total = sum(outcome.total or 0 for outcome in outcomes)
    done = sum(outcome.rows or 0 for outcome in outcomes)
    finished = sum(outcome.rows is not None or outcome.error is not None for outcome in outcomes)
    filled = int(BAR_WIDTH * done / total) if total else (BAR_WIDTH if final else 0)
    line = (f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done:,}/{total:,} rows, "
            f"{finished}/{len(outcomes)} databases, {elapsed:.1f} s")
    out.write(("\r" if terminal else "") + line + ("\n" if final else ""))
    out.flush()

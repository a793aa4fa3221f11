"""``pgml-trigger status``: models, aliases, scoring triggers, counters and drift flags, as readable tables."""

from __future__ import annotations

from ..sqlfiles import query


def status(conn, out=print) -> None:
    import psycopg

    _table(conn.execute(query("status_models")), "models", out)
    attachments = conn.execute(query("status_attachments"))
    names = [column.name for column in attachments.description]
    rows = attachments.fetchall()
    _print_table(names, rows, "scoring triggers", out)
    _table(conn.execute(query("status_counters")), "counters (this server's backends)", out)
    for name, title in (("status_subscriptions", "models received from a registry (pgml-trigger replicate)"),
                        ("status_publication", "scoring databases subscribed to this registry")):
        cursor = conn.execute(query(name))
        found = cursor.fetchall()
        if found:
            _print_table([column.name for column in cursor.description], found, title, out)
    out("drift (features past their threshold, per scoring trigger):")
    for target, _, model_ref, *_ in rows:
        try:
            with conn.transaction():
                flagged = conn.execute(query("status_drift"), {"model": model_ref, "target": target}).fetchall()
        except psycopg.Error as exc:  # e.g. no training profile: report it, keep going
            out(f"  {target} ({model_ref}): not measured: {exc.diag.message_primary}")
            continue
        if not flagged:
            out(f"  {target} ({model_ref}): no drift")
        for feature, statistic, value, threshold, count in flagged:
            out(f"  {target} ({model_ref}): {feature} {statistic} {value} > {threshold} over {count} rows")


def _table(cursor, title: str, out) -> None:
    _print_table([column.name for column in cursor.description], cursor.fetchall(), title, out)


def _print_table(names: list[str], rows: list, title: str, out) -> None:
    cells = [[str(value) for value in row] for row in rows]
    out(f"{title}:")
    if not cells:
        out("  (none)")
    else:
        widths = [max(len(name), *(len(row[i]) for row in cells)) for i, name in enumerate(names)]
        out("  " + "  ".join(name.ljust(width) for name, width in zip(names, widths)).rstrip())
        for row in cells:
            out("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    out("")

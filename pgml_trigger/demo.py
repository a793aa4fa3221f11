"""The whole product on an embedded default: ``python -m pgml_trigger demo``.

Starts a throwaway PostgreSQL (unless given a DSN), installs pgml_trigger,
uploads a classifier trained on scikit-learn's breast-cancer data, attaches a
scoring trigger, inserts rows and shows them scored, then scores a query
with ``pgml_trigger.predict``.
"""

from __future__ import annotations

import time

from .admin.install import install
from .localcluster import LocalCluster
from .sqlfiles import query


def run(dsn: str | None = None) -> None:
    if dsn is not None:
        _demo(dsn)
        return
    print("starting a throwaway PostgreSQL cluster ...")
    with LocalCluster() as cluster:
        _demo(cluster.dsn())
    print("throwaway cluster stopped and removed")


def _demo(dsn: str) -> None:
    import numpy as np
    import psycopg
    from psycopg import sql
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from .uploader.upload import upload

    install(dsn, log=lambda message: print(f"  install: {message}"))

    data = load_breast_cancer(as_frame=True)
    X = data.data.rename(columns=lambda name: name.replace(" ", "_"))
    y = np.asarray(data.target_names)[data.target]  # 'malignant' / 'benign'
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)

    with psycopg.connect(dsn, autocommit=True) as conn:
        version = upload(conn, "tumor", model, alias="production",
                         description="LogisticRegression on the breast-cancer data set")
        print(f"\nuploaded model tumor@{version} (alias production)")

        columns = sql.SQL(", ").join(sql.SQL("{} double precision").format(sql.Identifier(name)) for name in X.columns)
        conn.execute(sql.SQL(query("demo_table")).format(columns=columns))
        trigger = conn.execute(query("demo_attach")).fetchone()[0]
        print(f"attached trigger {trigger}: INSERTs into tumors fill diagnosis")

        started = time.perf_counter()
        copy = sql.SQL("COPY tumors ({}) FROM STDIN").format(sql.SQL(", ").join(map(sql.Identifier, X.columns)))
        with conn.cursor().copy(copy) as rows:
            for row in X.itertuples(index=False):
                rows.write_row(row)
        elapsed = time.perf_counter() - started
        print(f"COPY of {len(X)} rows scored by the trigger in {elapsed:.2f} s")

        print("\nscored rows:")
        _print_rows(conn.execute(query("demo_scored_rows")))
        scored = [label for (label,) in conn.execute("SELECT diagnosis FROM tumors ORDER BY id")]
        agree = sum(a == b for a, b in zip(scored, model.predict(X)))
        print(f"\ntrigger labels equal the offline model's on {agree} of {len(X)} rows")

        print("\nSELECT pgml_trigger.predict_proba('tumor', t) ... (the row, by column name):")
        _print_rows(conn.execute(query("demo_predict")))


def _print_rows(cursor) -> None:
    names = [column.name for column in cursor.description]
    rows = [[_cell(value) for value in row] for row in cursor.fetchall()]
    widths = [max(len(name), *(len(row[i]) for row in rows)) for i, name in enumerate(names)]
    print("  " + "  ".join(name.ljust(width) for name, width in zip(names, widths)))
    for row in rows:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths)))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    return str(value)

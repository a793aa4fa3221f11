"""What a row trigger costs a row with text columns: by kind (a float8[] and a text[]) against jsonb_build_object.

    python -m bench.mixed_trigger [--rows 100000] [--runs 3] [--venv DIR]

Starts a throwaway PostgreSQL (LocalCluster), installs pgml_trigger, uploads a
mixed-type pipeline (OneHotEncoder on two text columns, StandardScaler on the
30 breast-cancer floats, LogisticRegression; scored as ONNX), and times one INSERT ... SELECT
of ``--rows`` rows into three tables with the same columns (in another order
than the model's, plus extra columns):

* plain: no trigger;
* by kind: the row trigger attach() writes now;
* by name: the same attachment with the body earlier versions wrote, which
  hands the row over as ``jsonb_build_object(...)`` (the jsonb overloads of
  ``_score_row`` are unchanged, so this is the old path as it ran).

Runs are interleaved and each figure is the best of ``--runs``; both trigger
tables must hold the same predictions as the model's own ``predict``. Prints
the figures and writes bench/results/mixed_trigger.json.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
NUMBERS = [f"x{i}" for i in range(30)]
TEXTS = ["region", "channel"]


def _train():
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    data, y = load_breast_cancer(return_X_y=True)
    frame = pd.DataFrame(data, columns=NUMBERS)
    rng = np.random.default_rng(0)
    frame["region"] = rng.choice(["north", "south", "east", "west"], len(frame))
    frame["channel"] = rng.choice(["web", "store", "phone"], len(frame))
    frame = frame[TEXTS[:1] + NUMBERS + TEXTS[1:]]  # text features first and last in model order
    encode = ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), TEXTS),
                                ("numbers", StandardScaler(), NUMBERS)])
    return make_pipeline(encode, LogisticRegression(max_iter=5000)).fit(frame, y), frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mixed_trigger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--venv", type=Path, default=Path("/var/tmp/pgml_trigger-bench/server-venv"),
                        help="where the installer builds the server's Python environment (reused across runs)")
    args = parser.parse_args(argv)

    import psycopg

    from pgml_trigger import upload
    from pgml_trigger.admin.install import install
    from pgml_trigger.localcluster import LocalCluster

    model, frame = _train()
    table_columns = list(reversed(frame.columns))  # not the model's order
    with LocalCluster() as cluster:
        dsn = cluster.dsn("postgres")
        print(f"installing into a throwaway cluster on port {cluster.port} ...", flush=True)
        install(dsn, venv=args.venv, log=lambda message: None)
        with psycopg.connect(dsn, autocommit=True) as conn:
            upload(conn, "mixed", model, sample=frame)  # compiled to ONNX, as a model in a hot path would be
            path = conn.execute("SELECT scoring_path FROM pgml_trigger.models WHERE name = 'mixed'").fetchone()[0]
            assert path == "onnx", path
            definition = ", ".join(f"{c} {'text' if c in TEXTS else 'double precision'}" for c in table_columns)
            conn.execute(f"CREATE TABLE source (id integer, {definition})")
            with conn.cursor().copy(f"COPY source (id, {', '.join(table_columns)}) FROM STDIN") as copy:
                for i, row in enumerate(frame[table_columns].itertuples(index=False)):
                    copy.write_row([i, *row])
            conn.execute(f"CREATE TABLE insert_source AS SELECT (r.n - 1) * {len(frame)} + s.id + 1 AS id, "
                         f"{', '.join(table_columns)} FROM generate_series(1, {args.rows // len(frame) + 1}) AS r(n), "
                         f"source AS s WHERE (r.n - 1) * {len(frame)} + s.id < {args.rows} ORDER BY 1")
            tables = ("plain", "by_kind", "by_name")
            for table in tables:
                conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, note text, {definition}, "
                             "prediction double precision, seen boolean)")
            for table in tables[1:]:
                conn.execute(f"SELECT pgml_trigger.attach('{table}', 'mixed', 'prediction')")
            _restore_jsonb_body(conn, "by_name", list(frame.columns))
            conn.execute("VACUUM ANALYZE")

            cols = ", ".join(table_columns)
            insert = f"INSERT INTO {{}} (id, {cols}) SELECT id, {cols} FROM insert_source"
            for table in tables[1:]:  # load the model in this session first
                conn.execute(insert.format(table) + " LIMIT 10")
            best = dict.fromkeys(tables, float("inf"))
            for _ in range(args.runs):
                for table in tables:
                    conn.execute(f"TRUNCATE {table}")
                    start = time.perf_counter()
                    conn.execute(insert.format(table))
                    best[table] = min(best[table], time.perf_counter() - start)

            by_kind, by_name = ([p for (p,) in conn.execute(f"SELECT prediction FROM {t} ORDER BY id")]
                                for t in tables[1:])
            assert by_kind == by_name, "the two trigger bodies scored the rows differently"
            offline = model.predict(frame).astype(float).tolist()
            assert by_kind[:len(frame)] == offline, "the trigger disagrees with the model's own predict"
            server = conn.execute("SHOW server_version").fetchone()[0]
            hand_over = _hand_over(conn, list(frame.columns), args.runs)

    n = args.rows
    results = {
        "rows": n, "runs": args.runs, "server_version": server, "features": {"numbers": 30, "texts": 2},
        "seconds": best,
        "rows_per_s": {table: n / seconds for table, seconds in best.items()},
        "trigger_us_per_row": {table: (best[table] - best["plain"]) / n * 1e6 for table in tables[1:]},
        "share_of_plain": {table: best["plain"] / best[table] for table in tables[1:]},
        "hand_over_us_per_row": hand_over,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "mixed_trigger.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"INSERT ... SELECT of {n} rows (30 float8 and 2 text features), best of {args.runs}:")
    for table in tables:
        extra = "" if table == "plain" else (f", trigger {results['trigger_us_per_row'][table]:.1f} us a row, "
                                             f"{results['share_of_plain'][table]:.1%} of the plain rate")
        print(f"  {table:8} {results['rows_per_s'][table]:9.0f} rows/s{extra}")
    print(f"by kind / by name, trigger cost a row: "
          f"{results['trigger_us_per_row']['by_kind'] / results['trigger_us_per_row']['by_name']:.2f}")
    print("the row's hand-over alone, in a scan (us a row over the scan):")
    for name, us in hand_over.items():
        print(f"  {name:40} {us:5.1f}")
    print(f"wrote {RESULTS / 'mixed_trigger.json'}")
    return 0


def _hand_over(conn, feature_names: list[str], runs: int) -> dict[str, float]:
    """Per row, over a plain scan of insert_source: building each form, and handing it to a PL/Python function
    that returns at once (what the trigger pays before our Python reads the row)."""
    by_name = "jsonb_build_object(" + ", ".join(f"'{name}', {name}" for name in feature_names) + ")"
    numbers = "ARRAY[" + ", ".join(name for name in feature_names if name not in TEXTS) + "]::double precision[]"
    texts = "ARRAY[" + ", ".join(TEXTS) + "]::text[]"
    conn.execute("CREATE FUNCTION pg_temp.by_name(features jsonb) RETURNS float8 LANGUAGE plpython3u AS 'return 1.0'")
    conn.execute("CREATE FUNCTION pg_temp.by_kind(numbers float8[], texts text[]) RETURNS float8 "
                 "LANGUAGE plpython3u AS 'return 1.0'")
    queries = {
        "scan": "SELECT count(*) FROM insert_source",
        "jsonb_build_object": f"SELECT count({by_name}) FROM insert_source",
        "float8[] and text[]": f"SELECT count({numbers}), count({texts}) FROM insert_source",
        "jsonb_build_object into PL/Python": f"SELECT sum(pg_temp.by_name({by_name})) FROM insert_source",
        "float8[] and text[] into PL/Python": f"SELECT sum(pg_temp.by_kind({numbers}, {texts})) FROM insert_source",
    }
    n = conn.execute("SELECT count(*) FROM insert_source").fetchone()[0]
    best = dict.fromkeys(queries, float("inf"))
    for _ in range(runs):
        for name, query in queries.items():
            start = time.perf_counter()
            conn.execute(query).fetchall()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name] - best["scan"]) / n * 1e6 for name in queries if name != "scan"}


def _restore_jsonb_body(conn, table: str, feature_names: list[str]) -> None:
    """Give the attachment on ``table`` the body earlier versions wrote: the row as jsonb_build_object()."""
    function, body = conn.execute(
        "SELECT a.function_name, p.prosrc FROM pgml_trigger.attachments AS a JOIN pg_proc AS p "
        "ON p.proname = a.function_name WHERE a.target = %s::regclass", [table]).fetchone()
    by_name = "jsonb_build_object(" + ", ".join(f"'{name}', NEW.{name}" for name in feature_names) + ")"
    old, count = re.subn(r"ARRAY\[[^\]]*\]::double precision\[\], ARRAY\[[^\]]*\]::text\[\]", by_name, body)
    assert count == 1, body
    conn.execute("SELECT pgml_trigger._write_trigger_function(%s, %s, NULL)", [function, old])


if __name__ == "__main__":
    raise SystemExit(main())

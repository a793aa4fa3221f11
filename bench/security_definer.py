"""What SECURITY DEFINER and SET search_path cost per call of a PL/Python function.

Decides which pgml_trigger functions may carry them (sql/access.sql): the
per-row scoring functions are called once per row, so they carry neither.

    python3 bench/security_definer.py [--calls 200000] [--dsn DSN] [--trigger-dsn DSN]

Without --dsn it starts a throwaway local cluster. Prints, per variant, the
time per call minus the time of the same query without the call. With
--trigger-dsn (a scratch database with pgml_trigger installed) it also times
a scored INSERT ... SELECT with pgml_trigger._score_row altered to each
variant in turn, and puts it back as installed (SECURITY INVOKER, no SET).
"""

from __future__ import annotations

import argparse
import time

import psycopg

VARIANTS = {
    "invoker": "",
    "SECURITY DEFINER": "SECURITY DEFINER",
    "SET search_path": "SET search_path = pg_catalog, pg_temp",
    "SECURITY DEFINER + SET search_path": "SECURITY DEFINER SET search_path = pg_catalog, pg_temp",
}


def measure(dsn: str, calls: int, repeats: int = 7) -> dict[str, float]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
        conn.execute("SET jit = off")
        for number, options in enumerate(VARIANTS.values()):
            conn.execute(f"CREATE OR REPLACE FUNCTION pg_temp.bench_{number}(x float8) RETURNS float8 "
                         f"LANGUAGE plpython3u STABLE {options} AS 'return x'")

        expressions = {"baseline": "g::float8", **{name: f"pg_temp.bench_{n}(g)" for n, name in enumerate(VARIANTS)}}
        best = dict.fromkeys(expressions, float("inf"))
        for _ in range(repeats):  # interleaved, so a busy moment on the machine hits every variant alike
            for name, expression in expressions.items():
                start = time.perf_counter()
                conn.execute(f"SELECT sum({expression}) FROM generate_series(1, {calls}) AS g")
                best[name] = min(best[name], time.perf_counter() - start)
        return {name: (best[name] - best["baseline"]) / calls * 1e6 for name in VARIANTS}


SCORE_ROW = "pgml_trigger._score_row(integer, double precision[], timestamptz)"


def measure_trigger(dsn: str, rows: int, repeats: int = 3) -> dict[str, float]:
    """Microseconds per row of an INSERT ... SELECT through a scoring trigger, per variant of _score_row."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    from pgml_trigger import upload

    X, y = load_diabetes(return_X_y=True, as_frame=True)
    names = ", ".join(X.columns)
    with psycopg.connect(dsn, autocommit=True) as conn:
        upload(conn, "bench_security_definer", Ridge().fit(X, y))
        conn.execute(f"CREATE TEMP TABLE scored ({', '.join(f'{n} float8' for n in X.columns)}, score float8)")
        conn.execute("SELECT pgml_trigger.attach('scored', 'bench_security_definer', 'score')")
        insert = (f"INSERT INTO scored ({names}) SELECT {', '.join(['g / 1e6'] * len(X.columns))} "
                  f"FROM generate_series(1, {rows}) AS g")
        best = dict.fromkeys(VARIANTS, float("inf"))
        try:
            for _ in range(repeats):
                for name, options in VARIANTS.items():
                    conn.execute(f"ALTER FUNCTION {SCORE_ROW} SECURITY INVOKER RESET ALL")
                    if options:
                        conn.execute(f"ALTER FUNCTION {SCORE_ROW} {options}")
                    conn.execute("TRUNCATE scored")
                    start = time.perf_counter()
                    conn.execute(insert)
                    best[name] = min(best[name], time.perf_counter() - start)
        finally:
            conn.execute(f"ALTER FUNCTION {SCORE_ROW} SECURITY INVOKER RESET ALL")
            conn.execute("SELECT pgml_trigger.detach('scored', 'score')")
            conn.execute("DELETE FROM pgml_trigger.models WHERE name = 'bench_security_definer'")
        return {name: seconds / rows * 1e6 for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--dsn")
    parser.add_argument("--trigger-dsn")
    parser.add_argument("--rows", type=int, default=50_000)
    args = parser.parse_args()
    if args.dsn:
        results = measure(args.dsn, args.calls)
    else:
        from pgml_trigger.localcluster import LocalCluster

        with LocalCluster() as cluster:
            results = measure(cluster.dsn(), args.calls)
    for name, microseconds in results.items():
        print(f"{name:36s} {microseconds:6.2f} us per call")
    if args.trigger_dsn:
        for name, microseconds in measure_trigger(args.trigger_dsn, args.rows).items():
            print(f"_score_row {name:25s} {microseconds:6.2f} us per scored row")


if __name__ == "__main__":
    main()

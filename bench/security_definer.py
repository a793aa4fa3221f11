"""What SECURITY DEFINER and SET search_path cost per call of a PL/Python function.

Decides which pgml_trigger functions may carry them (sql/0003_trust.sql): the
per-row scoring functions are called once per row, so they carry neither.

    python3 bench/security_definer.py [--calls 200000] [--dsn DSN]

Without --dsn it starts a throwaway local cluster. Prints, per variant, the
time per call minus the time of the same query without the call.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--dsn")
    args = parser.parse_args()
    if args.dsn:
        results = measure(args.dsn, args.calls)
    else:
        from pgml_trigger.localcluster import LocalCluster

        with LocalCluster() as cluster:
            results = measure(cluster.dsn(), args.calls)
    for name, microseconds in results.items():
        print(f"{name:36s} {microseconds:6.2f} us per call")


if __name__ == "__main__":
    main()

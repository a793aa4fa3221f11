"""Real-time scoring (issue 10): one prediction per statement, by position and by name, against SELECT 1.

* pgbench, prepared statements, one random row by primary key per transaction:
  ``SELECT 1``, fetching the row, a PL/Python function that takes the row's
  float8[] and returns 1.0, and ``predict`` by position (a float8[] column),
  by row (``predict('forest', r)``) and by jsonb (``to_jsonb(r)``); at 1, 4 and 16
  clients. Every query runs in each of ``rounds`` rounds (at least 3),
  interleaved, so that SELECT 1 and the predictions are measured side by side
  on the same (shared, noisy) machine; a figure is the median round's, with
  the lowest and highest beside it, and a query's share of SELECT 1's
  throughput is the median of the rounds' shares. Throughput and p50/p99
  come from pgbench's per-transaction log, counted once every client's
  backend has scored its first row (as behind a connection pool).
* the backend's own CPU time per statement for each query, one client per
  query sending prepared statements, from the kernel's count of the
  backend's time on a CPU (/proc/<pid>/schedstat, in nanoseconds), which the
  machine's other load does not move: rounds interleaved across the queries,
  the median round with the lowest and highest.
* inside a scan of ``SCAN_ROWS`` rows: the per-row cost of each form, and of
  ``predict_batch`` over the same rows as float8[][], as rows (``json_agg(r)``) and as jsonb[];
  each the best of three. Every form's predictions are checked against
  scikit-learn's ``predict`` on the same rows.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .pgbench import steady_state
from .proc import cpu_seconds

SCAN_ROWS = 5_000
CLIENTS = (1, 4, 16)
TARGET_SHARE_POSITIONAL = 0.40  # of SELECT 1's throughput, 1 client
TARGET_SHARE_BY_NAME = 0.33
TARGET_SCAN_BY_NAME = 1.5  # by-name per-row cost at most this many times the positional one
TARGET_BATCH_BY_NAME = 2.0  # predict_batch over rows/jsonb at most this many times float8[][]

# name -> (query run by pgbench with :id, clients it runs at)
QUERIES = {
    "SELECT 1": ("SELECT 1", CLIENTS),
    "fetch the row": ("SELECT f FROM bench.rt_array WHERE id = :id", (1,)),
    "PL/Python returning 1.0": ("SELECT bench.plpython_one(f) FROM bench.rt_array WHERE id = :id", (1,)),
    "predict float8[]": ("SELECT pgml_trigger.predict('{model}', f) FROM bench.rt_array WHERE id = :id", CLIENTS),
    "predict row": ("SELECT pgml_trigger.predict('{model}', r) FROM bench.rt AS r WHERE id = :id", CLIENTS),
    "predict jsonb": ("SELECT pgml_trigger.predict('{model}', to_jsonb(r)) FROM bench.rt AS r WHERE id = :id",
                      CLIENTS),
}


def prepare(conn, X: np.ndarray, features: list[str]) -> None:
    """bench.rt (id and one float8 column per feature) and bench.rt_array (id and the same values as float8[])."""
    columns = ", ".join(f"{name} double precision" for name in features)
    conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
    conn.execute(f"CREATE TABLE bench.rt (id integer PRIMARY KEY, {columns})")
    with conn.cursor().copy(f"COPY bench.rt (id, {', '.join(features)}) FROM STDIN") as copy:
        for i in range(SCAN_ROWS):
            copy.write_row([i + 1, *X[i % len(X)].tolist()])
    conn.execute(f"CREATE TABLE bench.rt_array AS SELECT id, ARRAY[{', '.join(features)}] AS f FROM bench.rt")
    conn.execute("ALTER TABLE bench.rt_array ADD PRIMARY KEY (id)")
    conn.execute("CREATE OR REPLACE FUNCTION bench.plpython_one(f double precision[]) RETURNS double precision "
                 "LANGUAGE plpython3u STABLE AS 'return 1.0'")
    conn.execute("VACUUM ANALYZE bench.rt, bench.rt_array")


def run(conn, dsn: str, bindir: Path, model_name: str, model, X: np.ndarray, features: list[str],
        seconds: int = 5, rounds: int = 3) -> dict:
    first = first_prediction(conn, dsn, model_name, model)
    scan = _scan(conn, model_name, model, X, features)
    cpu = backend_cpu_us(dsn, {label: query.format(model=model_name) for label, (query, _) in QUERIES.items()},
                         rounds=rounds)
    pgbench = _pgbench_all(dsn, bindir, model_name, seconds, rounds)
    return {"model": model_name, "seconds": seconds, "rounds": rounds, "pgbench": pgbench, **scan,
            "backend_cpu_us": cpu, "first_prediction": first,
            "targets": {"share_positional": TARGET_SHARE_POSITIONAL, "share_by_name": TARGET_SHARE_BY_NAME,
                        "scan_by_name": TARGET_SCAN_BY_NAME, "batch_by_name": TARGET_BATCH_BY_NAME}}


def _scan(conn, name: str, model, X: np.ndarray, features: list[str]) -> dict:
    array = "ARRAY[" + ", ".join(features) + "]"
    expected = model.predict(X[np.arange(SCAN_ROWS) % len(X)]).astype(float)
    per_row = {
        "float8[]": f"SELECT pgml_trigger.predict('{name}', f) FROM bench.rt_array ORDER BY id",
        "row": f"SELECT pgml_trigger.predict('{name}', r) FROM bench.rt AS r ORDER BY id",
        "jsonb": f"SELECT pgml_trigger.predict('{name}', to_jsonb(r)) FROM bench.rt AS r ORDER BY id",
    }
    batch = {
        "float8[][]": f"SELECT pgml_trigger.predict_batch('{name}', array_agg({array} ORDER BY id)) FROM bench.rt",
        "rows": f"SELECT pgml_trigger.predict_batch('{name}', json_agg(r ORDER BY id)) FROM bench.rt AS r",
        "jsonb[]": f"SELECT pgml_trigger.predict_batch('{name}', array_agg(to_jsonb(r) ORDER BY id)) "
                   "FROM bench.rt AS r",
    }
    conn.execute(f"SELECT pgml_trigger.predict('{name}', f) FROM bench.rt_array LIMIT 1")
    scan_us, batch_us = {}, {}
    for form, query in per_row.items():
        got = np.asarray([row[0] for row in conn.execute(query).fetchall()])
        _check(f"predict {form}", got, expected)
        scan_us[form] = best_us_per_row(conn, f"SELECT sum(p) FROM ({query}) AS s(p)")
    for form, query in batch.items():
        got = np.asarray(conn.execute(query).fetchone()[0])
        _check(f"predict_batch {form}", got, expected)
        batch_us[form] = best_us_per_row(conn, f"SELECT cardinality(({query}))")
    return {"scan_us_per_row": scan_us, "batch_us_per_row": batch_us,
            "scan_row_vs_positional": scan_us["row"] / scan_us["float8[]"],
            "scan_jsonb_vs_positional": scan_us["jsonb"] / scan_us["float8[]"],
            "batch_rows_vs_array": batch_us["rows"] / batch_us["float8[][]"],
            "batch_jsonb_vs_array": batch_us["jsonb[]"] / batch_us["float8[][]"]}


def _check(what: str, got: np.ndarray, expected: np.ndarray) -> None:
    if got.shape != expected.shape or not np.array_equal(got, expected):
        wrong = int(np.sum(got != expected)) if got.shape == expected.shape else "all"
        raise AssertionError(f"{what}: {wrong} of {len(expected)} predictions differ from scikit-learn's predict")


def best_us_per_row(conn, query: str, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        conn.execute(query).fetchall()
        best = min(best, time.perf_counter() - start)
    return best / SCAN_ROWS * 1e6


def _pgbench_all(dsn: str, bindir: Path, model: str, seconds: int, rounds: int) -> list[dict]:
    """One dict per (query, clients): the median round's throughput with the lowest and highest, the median p50
    and p99, and the median of the rounds' shares of SELECT 1's throughput at the same clients."""
    measured: dict[tuple[str, int], list[dict]] = {}
    for _ in range(rounds):
        for clients in CLIENTS:
            for label, (query, client_counts) in QUERIES.items():
                if clients in client_counts:
                    measured.setdefault((label, clients), []).append(
                        pgbench(dsn, bindir, query.format(model=model), clients, seconds))
    results = []
    for (label, clients), runs in measured.items():
        per_s = [run["per_s"] for run in runs]
        shares = [run["per_s"] / select_1["per_s"] for run, select_1 in zip(runs, measured["SELECT 1", clients])]
        results.append({"query": label, "clients": clients, "per_s": float(np.median(per_s)),
                        "per_s_min": min(per_s), "per_s_max": max(per_s),
                        "p50_ms": float(np.median([run["p50_ms"] for run in runs])),
                        "p99_ms": float(np.median([run["p99_ms"] for run in runs])),
                        "share_of_select_1": float(np.median(shares)), "share_min": min(shares),
                        "share_max": max(shares), "rounds": runs})
    return results


def first_prediction(conn, dsn: str, name: str, model, first_query: str | None = None, backends: int = 1) -> dict:
    """A new backend's first request, warm_up() in it (then ``first_query``, a prediction, timed too), the fastest
    of ``backends`` new backends, against loading the same model in this process."""
    import io

    import joblib
    import psycopg

    from pgml_trigger.server.engines import onnx_session

    tries = []
    for _ in range(backends):
        started = time.perf_counter()
        with psycopg.connect(dsn, autocommit=True) as fresh:
            connected = time.perf_counter()
            load_seconds = fresh.execute("SELECT load_seconds FROM pgml_trigger.warm_up(%s)", [name]).fetchone()[0]
            warmed = time.perf_counter()
            if first_query is not None:
                fresh.execute(first_query).fetchall()
            predicted = time.perf_counter()
            stages = fresh.execute("SELECT load_stages FROM pgml_trigger.cache_info() WHERE name = %s",
                                   [name]).fetchone()[0]
        tries.append({**({"first_predict_s": predicted - warmed} if first_query is not None else {}),
                      "connect_s": connected - started, "warm_up_s": warmed - connected, "load_s": load_seconds,
                      "import_s": warmed - connected - load_seconds, "load_stages": stages,
                      "total_s": predicted - connected})
    compiled = conn.execute("SELECT compiled_payload FROM pgml_trigger.models WHERE name = %s", [name]).fetchone()[0]
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    pickled = buffer.getvalue()  # once, outside the timing: a big forest's copy takes a tenth of a second
    session_s = best_seconds(lambda: onnx_session(compiled))
    joblib_s = best_seconds(lambda: joblib.load(io.BytesIO(pickled)))
    fastest = min(tries, key=lambda entry: entry["total_s"])
    return {**fastest, "backends_total_s": [entry["total_s"] for entry in tries],
            "client_onnx_session_s": session_s, "client_joblib_load_s": joblib_s, "client_joblib_bytes": len(pickled)}


def best_seconds(action, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def backend_cpu_us(dsn: str, queries: dict[str, str], rounds: int = 3, statements: int = 2000, warm_up: int = 200,
                   setup: dict[str, str] | None = None) -> dict[str, dict]:
    """Per query (label -> SQL, ``:id`` a random row id): the CPU time (user + system) its backend spends per
    statement, one client per query sending prepared statements; each backend first runs its ``setup`` SQL
    and ``warm_up`` statements.

    What the server spends, whatever else runs on the machine, from the kernel's nanosecond count of the
    backend's time on a CPU. The rounds go through the queries in turn, so that each query's rounds are spread
    over the run like the others'; per query the median round, the lowest and the highest (us).
    """
    import random

    import psycopg

    ids = [random.randint(1, SCAN_ROWS) for _ in range(statements)]
    clients = {label: psycopg.connect(dsn, autocommit=True) for label in queries}
    try:
        pids = {}
        for label, client in clients.items():
            pids[label] = client.execute("SELECT pg_backend_pid()").fetchone()[0]
            if setup and label in setup:
                client.execute(setup[label]).fetchall()
            _statements(client, queries[label], ids[:warm_up])
        spent: dict[str, list[float]] = {label: [] for label in queries}
        for _ in range(rounds):
            for label, client in clients.items():
                before = cpu_seconds(pids[label])
                _statements(client, queries[label], ids)
                spent[label].append((cpu_seconds(pids[label]) - before) / statements * 1e6)
    finally:
        for client in clients.values():
            client.close()
    return {label: {"median_us": float(np.median(values)), "min_us": min(values), "max_us": max(values),
                    "rounds_us": values, "statements": statements} for label, values in spent.items()}


def _statements(client, query: str, ids: list[int]) -> None:
    text = query.replace(":id", "%s")
    for key in ids:
        client.execute(text, [key] if "%s" in text else None, prepare=True).fetchall()


def pgbench(dsn: str, bindir: Path, query: str, clients: int, seconds: int) -> dict:
    """Steady-state throughput and p50/p99 latency (ms) of one query at ``clients`` clients, by random id."""
    # seconds for every new backend to load the model on 2 shared cores
    return steady_state(dsn, bindir, f"\\set id random(1, {SCAN_ROWS})\n{query};\n", clients, seconds,
                        warm_up=2 + clients)


def report(results: dict) -> list[str]:
    """Lines of the bench's report for this section."""
    targets = results["targets"]
    lines = [f"Real-time: one row by primary key under pgbench -M prepared (model {results['model']}, median of "
             f"{results['rounds']} rounds of {results['seconds']} s, steady state; [lowest - highest round])",
             f"  {'query':<26}{'clients':>8}{'tps':>10}{'[range]':>20}{'of SELECT 1':>13}{'[range]':>14}"
             f"{'p50 ms':>9}{'p99 ms':>9}"]
    for entry in results["pgbench"]:
        spread = f"[{entry['per_s_min']:,.0f} - {entry['per_s_max']:,.0f}]"
        share_spread = f"[{entry['share_min']:.0%} - {entry['share_max']:.0%}]"
        lines.append(f"  {entry['query']:<26}{entry['clients']:>8}{entry['per_s']:>10,.0f}{spread:>20}"
                     f"{entry['share_of_select_1']:>13.0%}{share_spread:>14}{entry['p50_ms']:>9.3f}"
                     f"{entry['p99_ms']:>9.3f}")
    cpu = results["backend_cpu_us"]
    lines.append("  backend CPU per statement, us (one client per query, prepared; median of "
                 f"{results['rounds']} interleaved rounds [lowest - highest]): " +
                 ", ".join(f"{label} {value['median_us']:.1f} [{value['min_us']:.1f} - {value['max_us']:.1f}]"
                           for label, value in cpu.items()))
    one_client = {entry["query"]: entry["share_of_select_1"] for entry in results["pgbench"] if entry["clients"] == 1}
    by_name = max(one_client["predict row"], one_client["predict jsonb"])
    positional = one_client["predict float8[]"]
    lines.append(f"  target: float8[] >= {targets['share_positional']:.0%} of SELECT 1 at 1 client: "
                 f"{positional:.0%} {verdict(positional >= targets['share_positional'])}; "
                 f"by name >= {targets['share_by_name']:.0%}: row {one_client['predict row']:.0%}, jsonb "
                 f"{one_client['predict jsonb']:.0%} {verdict(by_name >= targets['share_by_name'])}")
    scan, batch = results["scan_us_per_row"], results["batch_us_per_row"]
    lines.append(f"  inside a scan of {SCAN_ROWS:,} rows, us/row (best of 3): " +
                 ", ".join(f"{form} {value:.1f}" for form, value in scan.items()) +
                 f"; row {results['scan_row_vs_positional']:.2f}x, jsonb {results['scan_jsonb_vs_positional']:.2f}x "
                 f"positional (target <= {targets['scan_by_name']}x) "
                 f"{verdict(results['scan_row_vs_positional'] <= targets['scan_by_name'])}")
    worst_batch = max(results["batch_rows_vs_array"], results["batch_jsonb_vs_array"])
    lines.append("  predict_batch over the same rows, us/row: " +
                 ", ".join(f"{form} {value:.1f}" for form, value in batch.items()) +
                 f"; rows {results['batch_rows_vs_array']:.2f}x, jsonb[] {results['batch_jsonb_vs_array']:.2f}x "
                 f"float8[][] (target <= {targets['batch_by_name']}x) "
                 f"{verdict(worst_batch <= targets['batch_by_name'])}")
    lines.append("  every form's predictions equal scikit-learn's predict on the same rows")
    first = results["first_prediction"]
    lines.append(f"  a new backend's first request (warm_up): {first['warm_up_s']:.2f} s = importing the package "
                 f"{first['import_s']:.2f} s + loading the model {first['load_s']:.3f} s (" +
                 ", ".join(f"{stage} {seconds:.3f}" for stage, seconds in first["load_stages"].items()) +
                 f"); in this process: onnxruntime session {first['client_onnx_session_s']:.3f} s, joblib.load "
                 f"{first['client_joblib_load_s']:.3f} s")
    return lines


def verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"

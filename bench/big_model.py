"""Big models (issue 10, point 4): a 300-tree forest's upload, first load and per-statement cost.

The forest: ``RandomForestRegressor(n_estimators=300)`` fitted on sklearn's
``make_regression`` (20,000 rows, 20 features, random_state=0), trained
here (nothing stored in the repo, nothing downloaded): about 546 MB of
joblib, stored compressed (pgml_trigger/formats.py COMPRESS_ABOVE), and a
309 MB ONNX graph. Measured in one run:

* its upload, per stage (``upload(progress=...)``), and the stored sizes;
* ``joblib.load`` of its plain joblib payload (and, in this process, of the
  stored compressed one) and onnxruntime session creation with default
  options and with pgml_trigger's (server/engines.py ``onnx_session``): the
  best of three in this process, and the best of three first times, each in
  a new Python process;
* the deferred graph under load: a new backend gets a steady stream of
  one-row ``predict`` requests by random id (one client sending each request
  as soon as the last is answered). The forest's graph is big enough to wait
  (server/load_plan.py ``defers_graph``): its own payload loads and scores first,
  and the graph is built inside the request that finds the model has scored
  for as long as building it should take. Per request its latency and the
  scoring path after it, until ``AFTER_SWITCH`` requests have been scored by
  the graph: the first request, the worst one, the time from the first
  request to the switch, and the medians before and after it; against the
  same stream in a new backend that called ``warm_up`` first (graph built at
  once, as a pool's connect hook would), and the backend's memory (RSS) at
  each stage;
* a pool's path: a new backend's ``warm_up`` (graph built at once) then one
  ``predict``, with the load's stages from ``cache_info()`` (the faster of
  two backends);
* backend CPU per statement of a one-row ``predict`` by primary key, and per
  row inside a scan of ``realtime.SCAN_ROWS`` rows (as backend CPU, and as
  wall time), for it and for the real-time section's 100-tree breast-cancer
  forest (``small``: uploaded and its tables made by ``realtime.prepare``
  before this runs); CPU as in the real-time section, the median of
  interleaved rounds.

Targets: the first request's prediction within ``TARGET_FIRST`` times the faster of
``joblib.load`` and session creation (ours) done first in a new process, as
a backend does them (their repeats in this process are reported too: they
reuse memory that a process's first load has to fault in); per statement,
the work beyond evaluating the model (statement CPU less the model's per-row
cost in a scan) at most ``TARGET_STATEMENT`` times the small forest's.
"""

from __future__ import annotations

import io
import time

import numpy as np

from . import realtime

TREES = 300
ROWS = 20_000
FEATURES = [f"x{i}" for i in range(20)]
TARGET_FIRST = 2.0
TARGET_STATEMENT = 1.2
AFTER_SWITCH = 200  # requests of the stream scored by the graph, after the switch
STREAM_LIMIT_S = 300.0  # a stream whose backend has not switched by then stops and says so
TABLE = "bench.big_array"  # id 1..realtime.SCAN_ROWS and the row's 20 features as float8[]
STATEMENT = "SELECT pgml_trigger.predict('{model}', f) FROM {table} WHERE id = :id"
SCAN = "SELECT sum(p) FROM (SELECT pgml_trigger.predict('{model}', f) FROM {table} ORDER BY id) AS s(p)"


def train():
    """The forest and its training rows."""
    from sklearn.datasets import make_regression
    from sklearn.ensemble import RandomForestRegressor

    X, y = make_regression(n_samples=ROWS, n_features=len(FEATURES), random_state=0)
    forest = RandomForestRegressor(n_estimators=TREES, random_state=0, n_jobs=-1).fit(X, y)
    return forest.set_params(n_jobs=None), X  # a backend scoring with it must not start worker threads


def run(conn, dsn: str, name: str, forest, X: np.ndarray, small: str) -> dict:
    from pgml_trigger import formats, upload
    from pgml_trigger.uploader.compile import RTOL

    stages = {}
    started = time.perf_counter()
    upload(conn, name, forest, feature_names=FEATURES, sample=X,
           progress=lambda stage, seconds, nbytes: stages.update({stage: {"seconds": seconds, "bytes": nbytes}}))
    upload_s = time.perf_counter() - started
    stored, compiled, agreement = conn.execute("SELECT payload, compiled_payload, agreement FROM pgml_trigger.models "
                                               "WHERE name = %s", [name]).fetchone()
    if compiled is None:
        raise AssertionError(f"{name} was not compiled to ONNX: {agreement}")
    _prepare(conn, X)
    print("[big] a steady stream of one-row requests on a new backend, and on one that called warm_up first ...",
          flush=True)
    stream = {"deferred": _stream(dsn, name), "warm_up_first": _stream(dsn, name, warm_up_first=True)}
    conn.execute("SELECT pgml_trigger.warm_up(%s)", [name])  # the check below is of the compiled path
    rows = X[np.arange(realtime.SCAN_ROWS) % len(X)]
    got = np.asarray([row[0] for row in conn.execute(f"SELECT pgml_trigger.predict('{name}', f) FROM {TABLE} "
                                                     "ORDER BY id").fetchall()])
    expected = forest.predict(rows)
    atol = agreement["atol"]  # what compile.py held the graph to: within RTOL of the value or of the largest
    if not np.allclose(got, expected, rtol=RTOL, atol=atol):
        raise AssertionError(f"{int(np.sum(~np.isclose(got, expected, rtol=RTOL, atol=atol)))} predictions of "
                             f"{name} differ from scikit-learn's beyond the compiled path's tolerance")
    first = realtime.first_prediction(conn, dsn, name, forest, first_query=f"SELECT pgml_trigger.predict('{name}', "
                                      f"f) FROM {TABLE} WHERE id = 1", backends=2)
    first["client_onnx_session_default_s"] = realtime.best_seconds(lambda: _default_session(compiled))
    first["client_joblib_load_stored_s"] = realtime.best_seconds(lambda: _joblib_load(stored))
    first["new_process"] = _in_new_processes(forest, compiled)
    # On the compiled path (warm_up first: without it, the big forest's first seconds go to its own payload).
    tables = {name: TABLE, small: "bench.rt_array"}
    setup = {model: f"SELECT pgml_trigger.warm_up('{model}')" for model in tables}
    statement_cpu = realtime.backend_cpu_us(dsn, {model: STATEMENT.format(model=model, table=table)
                                                  for model, table in tables.items()}, setup=setup)
    # Per row in a scan as backend CPU too, like the statements: wall time moves with the machine's other load.
    scan_cpu = realtime.backend_cpu_us(dsn, {model: SCAN.format(model=model, table=table)
                                             for model, table in tables.items()}, statements=4, warm_up=1, setup=setup)
    statement_us = {model: figure["median_us"] for model, figure in statement_cpu.items()}
    scan_us = {model: figure["median_us"] / realtime.SCAN_ROWS for model, figure in scan_cpu.items()}
    scan_wall_us = {model: realtime.best_us_per_row(conn, SCAN.format(model=model, table=table))
                    for model, table in tables.items()}
    beyond = {model: statement_us[model] - scan_us[model] for model in statement_us}
    return {"model": name, "small": small, "trees": TREES, "training_rows": ROWS, "features": len(FEATURES),
            "upload_s": upload_s, "upload_stages": stages,
            "stored_bytes": len(stored), "stored_compression": formats.compression(stored, "joblib"),
            "compiled_bytes": len(compiled), "agreement": agreement, "stream": stream,
            "first_prediction": first, "statement_cpu": statement_cpu, "scan_cpu": scan_cpu,
            "statement_cpu_us": statement_us, "scan_cpu_us_per_row": scan_us,
            "scan_wall_us_per_row": scan_wall_us, "beyond_model_us": beyond,
            "targets": {"first": TARGET_FIRST, "statement": TARGET_STATEMENT}}


def _stream(dsn: str, name: str, warm_up_first: bool = False) -> dict:
    """A new backend's steady stream of one-row predicts by random id, one client sending each request as soon as
    the last is answered, until AFTER_SWITCH requests have been scored by the graph (or STREAM_LIMIT_S). Each
    request also reads the scoring path after its prediction (loaded_scoring_path only looks: it builds
    nothing). ``warm_up_first``: the backend calls warm_up() before the stream, which builds the graph at once."""
    import random

    import psycopg

    from .proc import rss_mib

    query = (f"SELECT pgml_trigger.predict('{name}', f), pgml_trigger.loaded_scoring_path('{name}') "
             f"FROM {TABLE} WHERE id = %s")
    latencies, paths, rss, switched_at = [], [], {}, None
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as fresh:
        pid = fresh.execute("SELECT pg_backend_pid()").fetchone()[0]
        rss["connected"] = rss_mib(pid)
        warm_up_s = None
        if warm_up_first:
            started = time.perf_counter()
            fresh.execute("SELECT pgml_trigger.warm_up(%s)", [name]).fetchall()
            warm_up_s = time.perf_counter() - started
            rss["warmed up"] = rss_mib(pid)
        begun = time.perf_counter()
        after_switch = 0
        while after_switch < AFTER_SWITCH and time.perf_counter() - begun < STREAM_LIMIT_S:
            started = time.perf_counter()
            path = fresh.execute(query, [random.randint(1, realtime.SCAN_ROWS)]).fetchone()[1]
            latencies.append(time.perf_counter() - started)
            paths.append(path)
            if len(paths) == 1:
                rss["first request"] = rss_mib(pid)
            if path == "onnx":
                if after_switch == 0:
                    switched_at = time.perf_counter() - begun
                    rss["switched"] = rss_mib(pid)
                after_switch += 1
        rss["end"] = rss_mib(pid)
        stages = fresh.execute("SELECT load_stages FROM pgml_trigger.cache_info() WHERE name = %s",
                               [name]).fetchone()[0]
    switch = paths.index("onnx") if "onnx" in paths else None
    worst = int(np.argmax(latencies))
    before, after = latencies[1:switch], latencies[switch + 1:] if switch is not None else []
    return {"warm_up_s": warm_up_s, "requests": len(latencies), "first_s": latencies[0], "first_path": paths[0],
            "worst_s": latencies[worst], "worst_index": worst, "worst_path": paths[worst],
            "switch_index": switch, "switch_s": switched_at,
            "median_before_switch_s": float(np.median(before)) if before else None,
            "median_after_switch_s": float(np.median(after)) if after else None,
            "p99_s": float(np.percentile(latencies, 99)), "load_stages": stages, "rss_mib": rss,
            "latencies_ms": [round(seconds * 1e3, 3) for seconds in latencies]}


def _prepare(conn, X: np.ndarray) -> None:
    conn.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, f double precision[])")
    with conn.cursor().copy(f"COPY {TABLE} (id, f) FROM STDIN") as copy:
        for i in range(realtime.SCAN_ROWS):
            copy.write_row([i + 1, X[i % len(X)].tolist()])
    conn.execute(f"VACUUM ANALYZE {TABLE}")


# What a new backend does once, done once in a new Python process: a process's first session or unpickling
# costs more than a repeat in the same process (whose freed memory is reused instead of faulted in anew).
_NEW_PROCESS = """
import importlib, io, sys, time
from pathlib import Path
kind, path, module = sys.argv[1], sys.argv[2], sys.argv[3]
payload = Path(path).read_bytes()
if kind == "joblib.load":
    import joblib
    importlib.import_module(module)  # the model's own module: unpickling would import it first
    action = lambda: joblib.load(io.BytesIO(payload))
else:
    from bench.big_model import _default_session
    from pgml_trigger.server.engines import onnx_session
    make = onnx_session if kind == "session" else _default_session
    action = lambda: make(payload)
started = time.perf_counter()
action()
print(time.perf_counter() - started)
"""


def _in_new_processes(forest, compiled: bytes, runs: int = 3) -> dict:
    """Seconds of joblib.load of the plain pickle and of session creation (ours, default options), each the
    fastest of ``runs`` new processes (imports and reading the file not counted)."""
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    import joblib

    with tempfile.TemporaryDirectory(prefix="pgml_trigger-big-", dir="/var/tmp") as scratch:
        pickle_path, graph_path = Path(scratch) / "forest.joblib", Path(scratch) / "forest.onnx"
        joblib.dump(forest, pickle_path)
        graph_path.write_bytes(compiled)
        seconds = {}
        for kind, path in (("joblib.load", pickle_path), ("session", graph_path), ("default session", graph_path)):
            command = [sys.executable, "-c", _NEW_PROCESS, kind, str(path), type(forest).__module__]
            seconds[kind] = min(float(subprocess.run(command, check=True, text=True, capture_output=True,
                                                     cwd=Path(__file__).resolve().parent.parent).stdout)
                                for _ in range(runs))
    return seconds


def _default_session(payload: bytes):
    """An onnxruntime session with default options but for the one thread a backend uses."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def _joblib_load(payload: bytes):
    import joblib

    return joblib.load(io.BytesIO(payload))


def verdicts(results: dict) -> dict:
    """The target on the first prediction is held against the same loads in a new process, which is what a new
    backend is; against repeats in this process (the lower floor) it is reported too."""
    first = results["first_prediction"]
    fresh = first["new_process"]
    floor = min(fresh["joblib.load"], fresh["session"])
    repeat_floor = min(first["client_joblib_load_s"], first["client_onnx_session_s"])
    first_s = results["stream"]["deferred"]["first_s"]
    big, small = results["model"], results["small"]
    raw = results["statement_cpu_us"][big] / results["statement_cpu_us"][small]
    beyond = results["beyond_model_us"][big] / results["beyond_model_us"][small]
    return {"first_s": first_s, "first_vs_floor": first_s / floor, "first_met": first_s <= TARGET_FIRST * floor,
            "first_vs_repeat_floor": first_s / repeat_floor, "statement_raw_ratio": raw,
            "statement_beyond_model_ratio": beyond, "statement_met": beyond <= TARGET_STATEMENT}


def report(results: dict) -> list[str]:
    """Lines of the bench's report for this section."""
    first, found = results["first_prediction"], verdicts(results)
    deferred, warmed = results["stream"]["deferred"], results["stream"]["warm_up_first"]
    fresh = first["new_process"]
    big, small = results["model"], results["small"]
    mb = 1e6
    lines = [f"Big model: a {results['trees']}-tree RandomForestRegressor ({results['training_rows']:,} rows, "
             f"{results['features']} features): {first['client_joblib_bytes'] / mb:,.0f} MB of joblib stored as "
             f"{results['stored_bytes'] / mb:,.0f} MB ({results['stored_compression'] or 'uncompressed'}), "
             f"{results['compiled_bytes'] / mb:,.0f} MB of ONNX",
             f"  upload {results['upload_s']:.1f} s: " +
             ", ".join(f"{stage} {entry['seconds']:.1f} s" for stage, entry in results["upload_stages"].items()),
             f"  in this process (best of 3): joblib.load {first['client_joblib_load_s']:.2f} s (stored, "
             f"compressed: {first['client_joblib_load_stored_s']:.2f} s), onnxruntime session "
             f"{first['client_onnx_session_default_s']:.2f} s with default options, "
             f"{first['client_onnx_session_s']:.2f} s with pgml_trigger's",
             f"  first in a new process (best of 3): joblib.load {fresh['joblib.load']:.2f} s, onnxruntime session "
             f"{fresh['default session']:.2f} s with default options, {fresh['session']:.2f} s with pgml_trigger's",
             f"  a new backend's steady stream of one-row predicts (the next sent as the last is answered): "
             f"first {deferred['first_s']:.2f} s, scored by {deferred['first_path']} (" +
             ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in deferred["load_stages"].items()) + ")",
             "    " + _switch(deferred),
             f"    against warm_up first: warm_up {warmed['warm_up_s']:.2f} s, then first {_ms(warmed['first_s'])}, "
             f"worst {_ms(warmed['worst_s'])}, median {_ms(warmed['median_after_switch_s'])} "
             f"({warmed['requests']} requests)",
             "    backend RSS, MiB: " + "; ".join(
                 f"{label}: " + ", ".join(f"{stage} {mib:.0f}" for stage, mib in stream["rss_mib"].items())
                 for label, stream in (("stream", deferred), ("warm_up first", warmed))),
             f"    {found['first_vs_floor']:.2f}x the faster of joblib.load and session creation in a new process "
             f"(target <= {TARGET_FIRST}x) {realtime.verdict(found['first_met'])}; "
             f"{found['first_vs_repeat_floor']:.2f}x their repeats in this process",
             f"  a pool's new connection: warm_up {first['warm_up_s']:.2f} s "
             f"(importing {first['import_s']:.2f} s, loading {first['load_s']:.2f} s: " +
             ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in first["load_stages"].items()) +
             f") + predict {first['first_predict_s'] * 1e3:.1f} ms (fastest of " +
             ", ".join(f"{total:.2f}" for total in first["backends_total_s"]) + " s)",
             f"  backend CPU per one-row statement (median of 3 interleaved rounds): {big} "
             f"{results['statement_cpu_us'][big]:.0f} us, {small} "
             f"{results['statement_cpu_us'][small]:.0f} us ({found['statement_raw_ratio']:.2f}x); per row in a "
             f"scan {results['scan_cpu_us_per_row'][big]:.1f} and {results['scan_cpu_us_per_row'][small]:.1f} us "
             f"(wall {results['scan_wall_us_per_row'][big]:.1f} and {results['scan_wall_us_per_row'][small]:.1f}); "
             "beyond "
             f"the model: {results['beyond_model_us'][big]:.0f} and {results['beyond_model_us'][small]:.0f} us "
             f"({found['statement_beyond_model_ratio']:.2f}x, target <= {TARGET_STATEMENT}x) "
             f"{realtime.verdict(found['statement_met'])}"]
    return lines


def _switch(stream: dict) -> str:
    """The stream's switch to the graph in words."""
    worst = (f"worst {stream['worst_s']:.2f} s (request {stream['worst_index'] + 1}, scored by "
             f"{stream['worst_path']} after it)")
    if stream["switch_index"] is None:
        return (f"no switch to the graph within {STREAM_LIMIT_S:.0f} s ({stream['requests']} requests, median "
                f"{_ms(stream['median_before_switch_s'])}); {worst}")
    return (f"switched to the graph at request {stream['switch_index'] + 1}, {stream['switch_s']:.1f} s after the "
            f"first was sent; {worst}; median {_ms(stream['median_before_switch_s'])} before the switch, "
            f"{_ms(stream['median_after_switch_s'])} after ({AFTER_SWITCH} requests)")


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.1f} ms"

"""SQL predict under concurrency against the same model behind a Python HTTP service, and backend memory.

* SQL: pgbench runs bench/pgbench_predict.sql (one random row by id scored
  with ``pgml_trigger.predict``), prepared statements, for each client count;
  throughput and latencies come from pgbench's per-transaction log, counted
  once every connection's backend is warm (as behind a connection pool).
* HTTP: gunicorn serves bench/http_service.py (Flask; sync workers, 2 per
  core + 1 as gunicorn recommends), each worker fetching the row's features
  by id and scoring them; wrk drives it with random ids and reports the
  latency distribution. Two services, both measured at each client count:
  one scoring with scikit-learn (the model's own ``predict``), one with the
  engine SQL ``predict`` uses (pgml_trigger's OnnxEngine: onnxruntime on the
  compiled graph), so that the comparison separates where the model runs
  from how it is evaluated.

Both load generators are C programs on the same 2-core machine as the server,
so each figure includes the load generator's share of the CPU.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .pgbench import steady_state
from .proc import rss_mib as rss

HERE = Path(__file__).resolve().parent
CLIENTS = (1, 4, 16)
WARM_UP_S = 20  # added to each pgbench run: 16 new backends import the package and load the model first


def compare(dsn: str, bindir: Path, model: str, model_file: Path, table: str, columns: list[str], rows: int,
            seconds: int = 10) -> list[dict]:
    """One dict per client count: throughput and p50/p99 latency (ms) of SQL ``predict`` (``sql``) and of the
    HTTP service scoring with scikit-learn (``http_sklearn``) and with onnxruntime (``http_onnx``).

    ``table`` (optionally schema-qualified) has an indexed ``id`` running 1..rows and the feature columns;
    ``model`` is the uploaded name of the model in ``model_file``.
    """
    _require_wrk()
    results = []
    with _http_service(dsn, "sklearn", model, model_file, table, columns) as sklearn_url, \
            _http_service(dsn, "onnx", model, model_file, table, columns) as onnx_url:
        services = {"http_sklearn": sklearn_url, "http_onnx": onnx_url}
        for url in services.values():
            _wrk(url, rows, max(CLIENTS), 3, warm_up=True)  # every gunicorn worker loads the model first
        for clients in CLIENTS:
            entry = {"clients": clients, "sql": _pgbench(dsn, bindir, model, table, columns, rows, clients, seconds)}
            for key, url in services.items():
                entry[key] = _wrk(url, rows, clients, seconds)
            results.append(entry)
    return results


def backend_rss(dsn: str, model_refs: list[str], features: list[float]) -> dict:
    """Resident memory (MiB) of one backend: bootstrapped, then with the first model, then with all cached."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        conn.execute("SELECT pgml_trigger.version()")
        bootstrapped = rss(pid)
        conn.execute("SELECT pgml_trigger.predict(%s, %s::float8[])", [model_refs[0], features])
        one = rss(pid)
        for ref in model_refs[1:]:
            conn.execute("SELECT pgml_trigger.predict(%s, %s::float8[])", [ref, features])
        cached = conn.execute("SELECT count(*), sum(payload_bytes) FROM pgml_trigger.cache_info()").fetchone()
        return {"bootstrapped_mib": bootstrapped, "one_model_mib": one, "all_models_mib": rss(pid),
                "models_cached": cached[0], "payload_mib": float(cached[1]) / 2**20}


def _pgbench(dsn, bindir, model, table, columns, rows, clients, seconds) -> dict:
    from psycopg.sql import Identifier

    script_text = (HERE / "pgbench_predict.sql").read_text().format(
        model=model, table=Identifier(*table.split(".")).as_string(None),
        columns=", ".join(Identifier(c).as_string(None) for c in columns))
    # Each new connection is a new backend that imports the package and loads the model once (~1-2 s).
    return steady_state(dsn, bindir, script_text, clients, seconds, warm_up=WARM_UP_S, defines={"rows": rows})


def _wrk(url, rows, clients, seconds, warm_up=False) -> dict:
    command = ["wrk", "-t", str(min(clients, 2)), "-c", str(clients), "-d", f"{seconds}s", "--latency",
               "-s", str(HERE / "wrk_random_id.lua"), url, "--", str(rows)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed: {done.stderr}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", done.stdout)
    if errors and not warm_up:
        raise RuntimeError(f"the HTTP service answered with errors:\n{done.stdout}")
    return {"per_s": float(re.search(r"Requests/sec:\s+([0-9.]+)", done.stdout).group(1)),
            "p50_ms": _wrk_ms(done.stdout, "50%"), "p99_ms": _wrk_ms(done.stdout, "99%")}


def _wrk_ms(output: str, percentile: str) -> float:
    value, unit = re.search(rf"^\s+{percentile}\s+([0-9.]+)(us|ms|s)\s*$", output, re.M).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


class _http_service:
    """gunicorn serving bench/http_service.py with one engine on a free local port, for the duration of a
    with-block."""

    def __init__(self, dsn, engine, model, model_file, table, columns):
        self.env = dict(os.environ, PGML_BENCH_DSN=dsn, PGML_BENCH_ENGINE=engine, PGML_BENCH_MODEL=str(model_file),
                        PGML_BENCH_MODEL_NAME=model, PGML_BENCH_TABLE=table, PGML_BENCH_COLUMNS=",".join(columns),
                        OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", PYTHONPATH=str(HERE.parent))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.workers = 2 * (os.cpu_count() or 1) + 1

    def __enter__(self) -> str:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(self.workers), "--bind", f"127.0.0.1:{self.port}",
             "--log-level", "warning", "bench.http_service:app"], env=self.env)
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as check:
                    check.sendall(b"GET /predict/1 HTTP/1.0\r\n\r\n")
                    if b" 200 " in check.recv(64):
                        return url
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError("the HTTP service did not start")

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def _require_wrk() -> None:
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True, capture_output=True)
        return
    raise RuntimeError("the service comparison needs wrk (apt-get install wrk)")

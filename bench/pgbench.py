"""One pgbench run, measured in its steady state: what the service and real-time sections share."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np


def steady_state(dsn: str, bindir: Path, script_text: str, clients: int, seconds: int, warm_up: int,
                 defines: dict | None = None) -> dict:
    """Throughput and p50/p99 latency (ms) of ``script_text`` at ``clients`` clients, prepared statements.

    The run lasts ``seconds + warm_up``; only what completes after every client's first transaction
    counts: a new backend imports the package and loads the model first, which a pooled connection does
    once. Figures come from pgbench's per-transaction log.
    """
    from psycopg.conninfo import conninfo_to_dict

    info = conninfo_to_dict(dsn)
    with tempfile.TemporaryDirectory(prefix="pgml_bench_") as work:
        script = Path(work) / "script.sql"
        script.write_text(script_text)
        command = [str(bindir / "pgbench"), "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
                   "-T", str(seconds + warm_up), "-f", str(script), "--log", "--log-prefix", str(Path(work) / "log"),
                   *(f"-D{name}={value}" for name, value in (defines or {}).items()),
                   "-h", info.get("host", "127.0.0.1"), "-p", str(info.get("port", 5432)),
                   "-U", info.get("user", "postgres"), info.get("dbname", "postgres")]
        done = subprocess.run(command, capture_output=True, text=True, cwd=work)
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed on {script_text!r}: {done.stderr}")
        log = np.concatenate([np.loadtxt(path, usecols=(0, 2, 4, 5), ndmin=2) for path in Path(work).glob("log*")])
    client, latency_us, done_s = log[:, 0], log[:, 1], log[:, 2] + log[:, 3] / 1e6
    warm_from = max(done_s[client == c].min() for c in np.unique(client))
    steady = done_s > warm_from
    window = done_s.max() - warm_from
    if steady.sum() < 10 or window < seconds / 2:
        raise RuntimeError(f"pgbench's backends were warm for only {window:.1f} s of {seconds + warm_up} s")
    return {"per_s": float(steady.sum() / window), "p50_ms": float(np.percentile(latency_us[steady], 50)) / 1000,
            "p99_ms": float(np.percentile(latency_us[steady], 99)) / 1000}

"""Benchmark across servers: how fast a registry's changes reach a subscriber, and scored inserts into shards.

    python -m bench.distributed [--venv DIR] [--rounds 20] [--rows 100000]

Three throwaway clusters on this machine: a registry (wal_level = logical) that is also the coordinator
of a hash-partitioned table, and two scoring clusters that subscribe to its catalog
(pgml-trigger replicate) and hold the partitions as postgres_fdw foreign tables.

* propagation: ``--rounds`` times, upload a new version with the production alias on the registry and
  time from its commit until an open session on a subscriber predicts with it (median and worst);
* inserts: ``INSERT ... SELECT`` of ``--rows`` rows into the table with a row trigger over a 100-tree
  forest, through the coordinator into the two shards, against the same insert into one server's local
  table with the same trigger (best of three each). The three clusters share this machine's cores, so
  this measures the overhead of the distribution, not a speed-up.

Prints a table and writes bench/results/distributed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from .run import FEATURES, RESULTS, _timed_statement

HERE = Path(__file__).resolve().parent
POLL_S = 0.002


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.distributed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/var/tmp/pgml_trigger-bench/server-venv"))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)

    import psycopg

    from pgml_trigger.admin.install import install
    from pgml_trigger.admin.replicate import replicate
    from pgml_trigger.localcluster import LocalCluster

    registry, *shards = clusters = [LocalCluster(settings={"wal_level": "logical"}).start(),
                                    LocalCluster().start(), LocalCluster().start()]
    try:
        print("installing into three throwaway clusters ...", flush=True)
        report = install(registry.dsn(), venv=args.venv, log=lambda message: None)
        for shard in shards:
            install(shard.dsn(), python_path=report.python_path, log=lambda message: None)
        replicate(registry.dsn(), [shard.dsn() for shard in shards], out=lambda text: None)
        with psycopg.connect(registry.dsn(), autocommit=True) as coordinator:
            results = {"rounds": args.rounds, "rows": args.rows,
                       "propagation": _propagation(coordinator, shards[0].dsn(), args.rounds)}
            results["inserts"] = _inserts(coordinator, [shard.dsn() for shard in shards], args.rows)
    finally:
        for cluster in clusters:
            cluster.stop()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "distributed.json").write_text(json.dumps(results, indent=2) + "\n")
    print(_report(results))
    return 0


def _propagation(registry, subscriber_dsn: str, rounds: int) -> dict:
    """Seconds from an upload's commit on the registry to the first prediction with it on a subscriber."""
    import psycopg
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    from pgml_trigger import upload

    X, y = load_diabetes(return_X_y=True)
    row = X[0].tolist()
    delays = []
    with psycopg.connect(subscriber_dsn, autocommit=True) as subscriber:
        # The session's first prediction imports the package; measure what a running application sees.
        _wait_for(subscriber, upload(registry, "reg", Ridge().fit(X, y), alias="production"))
        subscriber.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [row])
        for alpha in (0.1 * (i + 1) for i in range(rounds)):
            model = Ridge(alpha=alpha).fit(X, y)
            expected = float(model.predict(X[:1])[0])
            version = upload(registry, "reg", model, alias="production")  # returns once committed
            committed = time.perf_counter()
            _wait_for(subscriber, version)
            got = subscriber.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [row]).fetchone()[0]
            delays.append(time.perf_counter() - committed)
            assert got == expected, f"the subscriber predicted {got}, the model {expected}"
    return {"median_s": statistics.median(delays), "worst_s": max(delays), "all_s": delays}


def _wait_for(subscriber, version: int) -> None:
    """Until the subscriber's production alias points at ``version``."""
    while subscriber.execute("SELECT version FROM pgml_trigger.aliases WHERE name = 'reg' AND "
                             "alias = 'production'").fetchone() != (version,):
        time.sleep(POLL_S)


def _inserts(coordinator, shard_dsns: list[str], rows: int) -> dict:
    import numpy as np
    import psycopg
    from psycopg import sql
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    from pgml_trigger import upload

    X, y = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    upload(coordinator, "forest", forest, feature_names=FEATURES, sample=X, alias="production")
    columns = ", ".join(f"{name} double precision" for name in FEATURES)
    cols = ", ".join(FEATURES)
    coordinator.execute("CREATE EXTENSION postgres_fdw")
    coordinator.execute(f"CREATE TABLE source (id bigint, {columns})")
    with coordinator.cursor().copy(f"COPY source (id, {cols}) FROM STDIN") as copy:
        for i in range(rows):
            copy.write_row([i, *X[i % len(X)].tolist()])
    coordinator.execute(f"CREATE TABLE local_scored (id bigint PRIMARY KEY, {columns}, prediction double precision)")
    coordinator.execute("SELECT pgml_trigger.attach('local_scored', 'forest', 'prediction')")
    coordinator.execute(f"CREATE TABLE sharded (id bigint NOT NULL, {columns}, prediction double precision) "
                        "PARTITION BY HASH (id)")
    for remainder, dsn in enumerate(shard_dsns):
        with psycopg.connect(dsn, autocommit=True) as shard:
            shard.execute(f"CREATE TABLE sharded (id bigint PRIMARY KEY, {columns}, prediction double precision)")
            shard.execute("SELECT pgml_trigger.attach('sharded', 'forest', 'prediction')")
        info = psycopg.conninfo.conninfo_to_dict(dsn)
        server = sql.Identifier(f"shard{remainder}")
        # batch_size: postgres_fdw sends the routed rows in multi-row INSERTs, not one round trip each.
        coordinator.execute(sql.SQL("CREATE SERVER {} FOREIGN DATA WRAPPER postgres_fdw OPTIONS "
                                    "(host {}, port {}, dbname {}, batch_size '1000')").format(
            server, sql.Literal(info["host"]), sql.Literal(str(info["port"])), sql.Literal(info["dbname"])))
        coordinator.execute(sql.SQL("CREATE USER MAPPING FOR CURRENT_USER SERVER {} OPTIONS (user {})").format(
            server, sql.Literal(info["user"])))
        coordinator.execute(sql.SQL("CREATE FOREIGN TABLE {} PARTITION OF sharded FOR VALUES WITH "
                                    "(MODULUS 2, REMAINDER {}) SERVER {} OPTIONS (table_name 'sharded')").format(
            sql.Identifier(f"sharded_{remainder}"), sql.Literal(remainder), server))
    coordinator.execute("VACUUM ANALYZE source")

    timings = {}
    for table in ("local_scored", "sharded"):
        runs = []
        for _ in range(3):
            _truncate(coordinator, table, shard_dsns)
            runs.append(_timed_statement(coordinator,
                                         f"INSERT INTO {table} (id, {cols}) SELECT id, {cols} FROM source"))
        timings[table] = min(runs)
    predictions = np.array([value for (value,) in coordinator.execute(
        "SELECT prediction FROM sharded ORDER BY id").fetchall()], dtype=np.float64)
    expected = forest.predict(X[np.arange(rows) % len(X)])
    assert len(predictions) == rows and np.array_equal(predictions, expected), "the shards' predictions disagree"
    return {"local_rows_per_s": rows / timings["local_scored"], "sharded_rows_per_s": rows / timings["sharded"],
            "sharded_share_of_local": timings["local_scored"] / timings["sharded"]}


def _truncate(coordinator, table: str, shard_dsns: list[str]) -> None:
    import psycopg

    if table == "local_scored":
        coordinator.execute("TRUNCATE local_scored")
        return
    for dsn in shard_dsns:  # TRUNCATE of a foreign table works too, but one statement per shard is plainer
        with psycopg.connect(dsn, autocommit=True) as shard:
            shard.execute("TRUNCATE sharded")


def _report(results: dict) -> str:
    propagation, inserts = results["propagation"], results["inserts"]
    return "\n".join([
        f"propagation, upload commit on the registry -> first prediction on a subscriber ({results['rounds']} "
        f"rounds): median {propagation['median_s'] * 1000:.1f} ms, worst {propagation['worst_s'] * 1000:.1f} ms",
        f"row-trigger INSERT ... SELECT of {results['rows']:,} rows (100-tree forest), best of three:",
        f"  one server, local table:        {inserts['local_rows_per_s']:>10,.0f} rows/s",
        f"  coordinator -> two fdw shards:  {inserts['sharded_rows_per_s']:>10,.0f} rows/s "
        f"({inserts['sharded_share_of_local']:.0%} of one server; all three clusters share 2 cores)",
    ])


if __name__ == "__main__":
    raise SystemExit(main())

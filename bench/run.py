"""Benchmark: compiled per-row scoring, batch scoring and scoring triggers against the plain alternatives.

    python -m bench [--venv DIR] [--rows-per-row 20000] [--rows-batch 1000000] [--rows-trigger 100000]
    python -m bench --only realtime
    python -m bench --only big
    python -m bench --only scan [--scan-rows 20000]
    python -m bench --only explain

A quick run of every section, its figures kept out of bench/results/ (small and noisy):

    python -m bench --rows-per-row 2000 --rows-batch 20000 --rows-trigger 5000 --scan-rows 20000 \
        --scan-runs 1 --service-seconds 2 --realtime-seconds 1 --results /tmp/bench-quick

Starts a throwaway PostgreSQL (LocalCluster), installs pgml_trigger into it,
uploads three breast-cancer classifiers (StandardScaler+LogisticRegression,
a 100-tree RandomForest, a HistGradientBoosting) fitted on numpy arrays, and
measures, one model at a time (the per-row and trigger figures also for a
100-tree XGBoost and a 100-tree LightGBM classifier, pgml_trigger/uploader/frameworks/):

* per row: ``SELECT predict(...)`` over a table against a plain PL/Python
  function that unpickles the same joblib payload into GD and calls
  ``model.predict`` on one row (bench/baseline.sql);
* batch: ``score()`` over a table (read, predict, write back) against a
  client that fetches the rows with psycopg, calls ``model.predict``, COPYs
  the results into a temp table and runs UPDATE ... FROM; and
  ``predict_batch`` over the same table (read and predict, no write) against
  a client fetching the rows and scoring them: this process reading the rows
  into numpy (the faster of binary COPY and server-built float8[][] chunks)
  and calling ``model.predict`` on the matrix. Both clients are limited to
  one thread, as a backend is. And predict_batch's floor, measured inside the
  backend: the engine it scores with (the same onnxruntime session, from
  pgml_trigger's cache) timed on the same chunks' matrices, parsed before the
  clock starts (bench.engine_seconds in bench/baseline.sql);
* triggers: INSERT ... SELECT into a table with the scoring trigger against
  the same insert into a table without it (each the best of three), and
  one-row INSERTs;
* service: SQL predict under pgbench against the same model behind a Flask
  service under gunicorn, driven by wrk, at 1/4/16 clients (bench/service.py);
* real-time: one-row predict by primary key under pgbench against SELECT 1,
  by position and by name, and by-name forms inside a scan and in
  predict_batch (bench/realtime.py; alone: ``python -m bench --only realtime``);
* big model: a 300-tree forest's upload, first load and per-statement cost
  against the real-time section's forest (bench/big_model.py; alone:
  ``python -m bench --only big``);
* scan: four classifiers over a 200,000-row table of generated rows, by orbital's
  SQL and by pgml_trigger's predict and predict_batch forms, with and without
  parallel workers (bench/scan.py; alone: ``python -m bench --only scan``);
* explain: explain() per row against predict() per row and against shap in a client, for the linear model,
  the forest, XGBoost and a 300-tree forest (bench/explain.py; alone: ``python -m bench --only explain``);
* memory: one backend's RSS with one and with ten models cached.

Prints a table of figures and ratios against the targets of issue 3, and
writes bench/results/bench.png and bench/results/results.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import numpy as np

from . import big_model, explain, realtime, scan

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODELS = ("linear", "forest", "hgb")
BOOSTERS = ("xgboost", "lightgbm")  # per row and triggers only: the batch figures are about the batch paths
# Targets from issue 3: (what, model or None for every model, how many times better at least)
PER_ROW_TARGETS = {"linear": 20.0, "forest": 100.0, "hgb": 5.0}
BATCH_VS_CLIENT_TARGET = 3.0
BATCH_VS_FETCH_AND_SCORE_TARGET = 2.5  # predict_batch at most this many times slower than a client fetching and scoring
TRIGGER_TARGETS = {"linear": 0.20, "forest": 0.10}  # share of the no-trigger insert throughput
SERVICE_THROUGHPUT_TARGET = 10.0  # SQL predict vs the HTTP service at 4 clients; and lower p99 at every count
MEMORY_MODELS = 10
SINGLE_ROW_INSERTS = 2_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=Path("/var/tmp/pgml_trigger-bench/server-venv"),
                        help="where the installer builds the server's Python environment (reused across runs)")
    parser.add_argument("--rows-per-row", type=int, default=20_000)
    parser.add_argument("--baseline-rows", type=int, default=2_000,
                        help="rows for the scikit-learn-per-row baseline (it is slow; compared per row)")
    parser.add_argument("--rows-batch", type=int, default=1_000_000)
    parser.add_argument("--rows-trigger", type=int, default=100_000)
    parser.add_argument("--service-seconds", type=int, default=10,
                        help="measured seconds per client count in the SQL vs HTTP service comparison")
    parser.add_argument("--realtime-seconds", type=int, default=5,
                        help="measured seconds per pgbench run in the real-time section")
    parser.add_argument("--realtime-rounds", type=int, default=3,
                        help="interleaved rounds of the real-time section's pgbench runs and backend CPU counts "
                             "(each figure the median round's, with the spread)")
    parser.add_argument("--scan-rows", type=int, default=200_000, help="rows of the scan section's table")
    parser.add_argument("--scan-runs", type=int, default=3, help="rounds of the scan section (each figure the best)")
    parser.add_argument("--explain-rows", type=int, default=500, help="rows explained per model in the explain section")
    parser.add_argument("--explain-repeats", type=int, default=2, help="each explain timing is the best of this many")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where the JSON files and the chart go (a quick run can leave bench/results/ alone)")
    parser.add_argument("--only", choices=["realtime", "big", "scan", "explain"],
                        help="run one section alone (its figures go to bench/results/<section>.json)")
    args = parser.parse_args(argv)
    if args.only == "realtime":
        return _realtime_only(args)
    if args.only == "big":
        return _big_only(args)
    if args.only == "scan":
        return _scan_only(args)
    if args.only == "explain":
        return _explain_only(args)

    import psycopg

    models, X = _train()
    print(f"[scan] training on {args.scan_rows:,} generated rows ...", flush=True)
    scan_models, scan_X = scan.train(args.scan_rows)
    with _installed_cluster(args.venv) as (cluster, dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            _prepare(conn, models, X, args)
            results = {"rows": vars(args) | {"venv": str(args.venv)}, "per_row": {}, "batch": {}, "trigger": {},
                       "agreement": {}}
            for name in MODELS + BOOSTERS:
                results["agreement"][name] = conn.execute(
                    "SELECT scoring_path, agreement FROM pgml_trigger.models WHERE name = %s", [name]).fetchone()
            for name in MODELS + BOOSTERS:
                print(f"[{name}] per row ...", flush=True)
                results["per_row"][name] = _per_row(dsn, name, args)
            results["array_transfer"] = _array_transfer(dsn)
            for name in MODELS:
                print(f"[{name}] batch ...", flush=True)
                results["batch"][name] = _batch(conn, dsn, name, models[name])
            for name in MODELS + BOOSTERS:
                print(f"[{name}] trigger ...", flush=True)
                results["trigger"][name] = _trigger(conn, name)
            print("[linear] SQL predict under pgbench vs an HTTP service under wrk ...", flush=True)
            results["service"] = _service(dsn, cluster.bindir, models["linear"], args)
            print("[forest] real-time: one row per statement, by position and by name ...", flush=True)
            realtime.prepare(conn, X, FEATURES)
            results["realtime"] = realtime.run(conn, dsn, cluster.bindir, "forest", models["forest"], X, FEATURES,
                                               seconds=args.realtime_seconds, rounds=args.realtime_rounds)
            results["explain"] = explain.run(conn, dsn, X, {**explain.train(), **{
                name: models[name] for name in ("linear", "forest", "xgboost")}}, FEATURES, rows=args.explain_rows,
                repeats=args.explain_repeats)
            print(f"[big] a {big_model.TREES}-tree forest: upload, first load, per statement ...", flush=True)
            results["big_model"] = big_model.run(conn, dsn, "big", *big_model.train(), small="forest")
            print(f"[scan] {args.scan_rows:,} rows: orbital's SQL, predict and predict_batch ...", flush=True)
            scan.prepare(conn, scan_models, scan_X)
            results["scan"] = scan.run(dsn, scan_models, scan_X, runs=args.scan_runs)
            print(f"[forest] backend memory with 1 and {MEMORY_MODELS} models cached ...", flush=True)
            results["memory"] = _memory(conn, dsn, models["forest"], X)
    for section in ("realtime", "big_model", "scan", "explain"):
        _write(args.results, section, results[section])
    _write(args.results, "results", results)
    print(_report(results))
    _plot(results, args.results / "bench.png")
    print(f"wrote {args.results / 'bench.png'}")
    return 0


@contextlib.contextmanager
def _installed_cluster(venv: Path):
    """A throwaway cluster with pgml_trigger installed (its server environment built in, or reused from,
    ``venv``): the cluster and its superuser DSN."""
    from pgml_trigger.admin.install import install
    from pgml_trigger.localcluster import LocalCluster

    with LocalCluster() as cluster:
        dsn = cluster.dsn("postgres")
        print(f"installing into a throwaway cluster on port {cluster.port} ...", flush=True)
        install(dsn, venv=venv, log=lambda message: None)
        yield cluster, dsn


def _write(directory: Path, section: str, results: dict) -> None:
    """A section's figures to <directory>/<section>.json (bench/results/ unless --results says otherwise)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{section}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {path}")


def _realtime_only(args) -> int:
    def measure(conn, dsn, bindir, forest, X):
        print("[forest] real-time: one row per statement, by position and by name ...", flush=True)
        return realtime.run(conn, dsn, bindir, "forest", forest, X, FEATURES, seconds=args.realtime_seconds,
                            rounds=args.realtime_rounds)

    return _section_only(args, "realtime", measure, realtime.report)


def _big_only(args) -> int:
    print(f"[big] training a {big_model.TREES}-tree forest ...", flush=True)
    big, big_X = big_model.train()

    def measure(conn, dsn, bindir, forest, X):
        print("[big] upload, first load, per statement ...", flush=True)
        return big_model.run(conn, dsn, "big", big, big_X, small="forest")

    return _section_only(args, "big_model", measure, big_model.report)


def _explain_only(args) -> int:
    models = explain.train()

    def measure(conn, dsn, bindir, forest, X):
        return explain.run(conn, dsn, X, {"linear": models["linear"], "forest": forest, "xgboost": models["xgboost"],
                                          "forest300": models["forest300"]}, FEATURES, rows=args.explain_rows,
                           repeats=args.explain_repeats)

    return _section_only(args, "explain", measure, explain.report)


def _section_only(args, section: str, measure, report) -> int:
    """One section on a throwaway cluster holding the 100-tree breast-cancer forest and the real-time tables;
    its figures go to bench/results/<section>.json."""
    import psycopg
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    from pgml_trigger import upload

    X, y = load_breast_cancer(return_X_y=True)
    forest = RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y)
    with _installed_cluster(args.venv) as (cluster, dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            upload(conn, "forest", forest, feature_names=FEATURES, sample=X)
            realtime.prepare(conn, X, FEATURES)
            results = measure(conn, dsn, cluster.bindir, forest, X)
    print("\n".join(["", *report(results)]))
    _write(args.results, section, results)
    return 0


def _scan_only(args) -> int:
    """The scan section alone on a throwaway cluster: bench/results/scan.json."""
    import psycopg

    print(f"[scan] training on {args.scan_rows:,} generated rows ...", flush=True)
    models, X = scan.train(args.scan_rows)
    with _installed_cluster(args.venv) as (cluster, dsn):
        with psycopg.connect(dsn, autocommit=True) as conn:
            scan.prepare(conn, models, X)
        results = scan.run(dsn, models, X, runs=args.scan_runs)
    print("\n".join(["", *scan.report(results)]))
    _write(args.results, "scan", results)
    return 0


def _train():
    from lightgbm import LGBMClassifier
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    X, y = load_breast_cancer(return_X_y=True)
    models = {
        "linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y),
        "forest": RandomForestClassifier(n_estimators=100, random_state=0).fit(X, y),
        "hgb": HistGradientBoostingClassifier(random_state=0).fit(X, y),
        "xgboost": XGBClassifier(n_estimators=100, random_state=0).fit(X, y),
        "lightgbm": LGBMClassifier(n_estimators=100, random_state=0, verbose=-1).fit(X, y),
    }
    return models, X


FEATURES = [f"x{i}" for i in range(30)]
ARRAY = "ARRAY[" + ", ".join(FEATURES) + "]"


def _prepare(conn, models, X, args) -> None:
    from pgml_trigger import upload

    conn.execute((HERE / "baseline.sql").read_text())
    for name, model in models.items():
        upload(conn, name, model, feature_names=FEATURES, sample=X)
    columns = ", ".join(f"{name} double precision" for name in FEATURES)
    conn.execute(f"CREATE TABLE bench.source (id integer, {columns})")
    with conn.cursor().copy(f"COPY bench.source (id, {', '.join(FEATURES)}) FROM STDIN") as copy:
        for i, row in enumerate(X):
            copy.write_row([i, *row.tolist()])
    largest = max(args.rows_per_row, args.rows_batch, args.rows_trigger)
    # bench.rows: the 569 rows repeated, numbered 1.. in order
    conn.execute(f"CREATE TABLE bench.rows AS SELECT (r.n - 1) * 569 + s.id + 1 AS id, {', '.join(FEATURES)} "
                 f"FROM generate_series(1, {largest // 569 + 1}) AS r(n), bench.source AS s "
                 f"WHERE (r.n - 1) * 569 + s.id < {largest}")
    for table, rows in (("per_row", args.rows_per_row), ("baseline", args.baseline_rows),
                        ("big", args.rows_batch), ("insert_source", args.rows_trigger)):
        conn.execute(f"CREATE TABLE bench.{table} AS SELECT * FROM bench.rows WHERE id <= {rows} ORDER BY id")
    conn.execute("ALTER TABLE bench.big ADD PRIMARY KEY (id), ADD COLUMN prediction double precision")
    conn.execute("ALTER TABLE bench.rows ADD PRIMARY KEY (id)")  # the services look rows up by id
    conn.execute("VACUUM ANALYZE")


def _timed(conn, query: str, params=None) -> float:
    start = time.perf_counter()
    conn.execute(query, params).fetchall()
    return time.perf_counter() - start


def _per_row(dsn, name: str, args) -> dict:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:  # a fresh session: both paths load once, then time
        conn.execute(f"SELECT pgml_trigger.predict(%s, {ARRAY}), bench.sklearn_predict(%s, {ARRAY}) "
                     "FROM bench.per_row LIMIT 1", [name, name])
        # Both sides score the same rows alike, or the speeds compare nothing.
        disagree = conn.execute(f"SELECT count(*) FROM bench.baseline WHERE pgml_trigger.predict(%s, {ARRAY}) "
                                f"IS DISTINCT FROM bench.sklearn_predict(%s, {ARRAY})", [name, name]).fetchone()[0]
        if disagree:
            raise AssertionError(f"[{name}] predict() and scikit-learn disagree on {disagree} of "
                                 f"{args.baseline_rows} rows")
        # Each side the best of three: the machine may be shared.
        compiled = min(_timed(conn, f"SELECT sum(pgml_trigger.predict(%s, {ARRAY})) FROM bench.per_row", [name])
                       for _ in range(3))
        baseline = min(_timed(conn, f"SELECT sum(bench.sklearn_predict(%s, {ARRAY})) FROM bench.baseline", [name])
                       for _ in range(3))
        path = conn.execute("SELECT pgml_trigger.loaded_scoring_path(%s)", [name]).fetchone()[0]
    compiled_us = compiled / args.rows_per_row * 1e6
    baseline_us = baseline / args.baseline_rows * 1e6
    return {"path": path, "compiled_us_per_row": compiled_us, "sklearn_us_per_row": baseline_us,
            "speedup": baseline_us / compiled_us, "target": PER_ROW_TARGETS.get(name),
            "rows": args.rows_per_row, "baseline_rows": args.baseline_rows, "predictions_agree": True}


def _array_transfer(dsn) -> dict:
    """How long it takes to get a 10,000 x 30 float8[][] into numpy: PL/Python lists vs array_send()."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TEMP TABLE chunks AS SELECT array_agg({ARRAY} ORDER BY id) AS f "
                     "FROM bench.rows WHERE id <= 200000 GROUP BY (id - 1) / 10000")
        conn.execute("SELECT bench.rows_via_list(f), bench.rows_via_send(array_send(f)) FROM chunks LIMIT 1")
        n = conn.execute("SELECT sum(cardinality(f) / 30) FROM chunks").fetchone()[0]
        via_list = _timed(conn, "SELECT sum(bench.rows_via_list(f)) FROM chunks")
        via_send = _timed(conn, "SELECT sum(bench.rows_via_send(array_send(f))) FROM chunks")
        batch = {}
        for name in MODELS:
            conn.execute("SELECT pgml_trigger.predict_batch(%s, f) FROM chunks LIMIT 1", [name])
            batch[name] = min(_timed(conn, "SELECT sum(cardinality(pgml_trigger.predict_batch(%s, f))) FROM chunks",
                                     [name]) for _ in range(3)) / int(n) * 1e6
    return {"rows": int(n), "list_us_per_row": via_list / int(n) * 1e6, "send_us_per_row": via_send / int(n) * 1e6,
            "predict_batch_us_per_row": batch}


def _batch(conn, dsn, name: str, model) -> dict:
    import psycopg
    from threadpoolctl import threadpool_limits

    n = conn.execute("SELECT count(*) FROM bench.big").fetchone()[0]
    conn.execute("VACUUM bench.big")
    conn.execute("SELECT pgml_trigger.predict(%s, ARRAY_FILL(1.0::float8, ARRAY[30]))", [name])
    start = time.perf_counter()
    scored = conn.execute("SELECT pgml_trigger.score(%s, 'bench.big', 'prediction')", [name]).fetchone()[0]
    server = time.perf_counter() - start
    assert scored == n, (scored, n)
    expected = conn.execute("SELECT prediction FROM bench.big ORDER BY id LIMIT 1000").fetchall()

    conn.execute("VACUUM bench.big")
    with threadpool_limits(1), psycopg.connect(dsn) as client:
        client_start = start = time.perf_counter()
        rows = client.cursor(binary=True).execute(f"SELECT id, {', '.join(FEATURES)} FROM bench.big").fetchall()
        table = np.asarray(rows, dtype=np.float64)
        fetched = time.perf_counter()
        predictions = model.predict(table[:, 1:])
        predicted = time.perf_counter()
        client.execute("CREATE TEMP TABLE predictions (id integer, prediction double precision) ON COMMIT DROP")
        with client.cursor().copy("COPY predictions (id, prediction) FROM STDIN") as copy:
            for key, value in zip(table[:, 0].astype(int).tolist(), predictions.astype(float).tolist()):
                copy.write_row((key, value))
        client.execute("UPDATE bench.big AS b SET prediction = p.prediction FROM predictions AS p WHERE b.id = p.id")
        client.commit()
        client_total = time.perf_counter() - start
    assert conn.execute("SELECT prediction FROM bench.big ORDER BY id LIMIT 1000").fetchall() == expected

    # A client fetching the rows and scoring them: this process reads the rows into numpy, by the faster of two
    # ways, and calls the model's own predict.
    conn.execute("VACUUM bench.big")  # both writes above left a dead version of every row
    reads = {}
    with threadpool_limits(1), psycopg.connect(dsn, autocommit=True) as reader:
        for way, read_rows in (("binary COPY", _read_by_copy), ("array_send chunks", _read_by_arrays)):
            start = time.perf_counter()
            matrix = read_rows(reader, n)
            reads[way] = time.perf_counter() - start
        start = time.perf_counter()
        model.predict(matrix)
        client_predict = time.perf_counter() - start
    read_way = min(reads, key=reads.get)
    fetch_and_score = reads[read_way] + client_predict
    # The same reading and predicting in the server, without writing back: predict_batch over the table, per
    # 10,000-row chunk; and its floor in the backend, the engine alone on the chunks' matrices, parsed first.
    chunks = f"SELECT array_agg({ARRAY}) AS features FROM bench.big GROUP BY (id - 1) / 10000"
    conn.execute(f"SELECT pgml_trigger.predict_batch(%s, array_agg({ARRAY})) FROM bench.big WHERE id <= 10", [name])
    predict_batch = min(_timed(conn, f"SELECT sum(cardinality(pgml_trigger.predict_batch(%s, chunk.features))) "
                                     f"FROM ({chunks}) AS chunk", [name]) for _ in range(3))
    engine = conn.execute(f"SELECT sum(bench.engine_seconds(%s, array_send(chunk.features), 3)) FROM ({chunks}) "
                          "AS chunk", [name]).fetchone()[0]
    return {"rows": n, "score_s": server, "client_s": client_total, "client_fetch_s": fetched - client_start,
            "client_predict_s": predicted - fetched, "client_write_s": client_start + client_total - predicted,
            "predict_batch_s": predict_batch, "engine_s": engine, "engine_us_per_row": engine / n * 1e6,
            "predict_batch_vs_engine": predict_batch / engine,
            "fetch_and_score_s": fetch_and_score, "fetch_and_score_read_s": reads[read_way],
            "fetch_and_score_read_way": read_way, "fetch_and_score_reads_s": reads,
            "fetch_and_score_predict_s": client_predict, "fetch_and_score_us_per_row": fetch_and_score / n * 1e6,
            "vs_client": client_total / server, "vs_fetch_and_score": predict_batch / fetch_and_score,
            "score_vs_fetch_and_score": server / fetch_and_score,
            "target_vs_client": BATCH_VS_CLIENT_TARGET, "target_vs_fetch_and_score": BATCH_VS_FETCH_AND_SCORE_TARGET}


def _read_by_copy(conn, n: int) -> np.ndarray:
    """bench.big's features as a float64 matrix, by binary COPY: 19 header bytes, then per row a 2-byte
    field count and, per field, a 4-byte length and the 8-byte big-endian float8."""
    fields = [("count", ">i2")] + [(f"{part}{i}", kind) for i in range(len(FEATURES))
                                   for part, kind in (("length", ">i4"), ("value", ">f8"))]
    with conn.cursor().copy(f"COPY (SELECT {', '.join(FEATURES)} FROM bench.big) "
                            "TO STDOUT (FORMAT BINARY)") as copy:
        blocks = []
        while block := copy.read():  # read() is about twice as fast as iterating over copy
            blocks.append(block)
    rows = np.frombuffer(b"".join(blocks), dtype=np.dtype(fields), offset=19, count=n)
    return np.column_stack([rows[f"value{i}"] for i in range(len(FEATURES))]).astype(np.float64)


def _read_by_arrays(conn, n: int) -> np.ndarray:
    """The same matrix from 10,000-row float8[][] the server builds and sends in binary (array_send): a
    28-byte header (dimensions at bytes 12 and 20), then per element a 4-byte length and the float8."""
    matrices = []
    for (data,) in conn.execute(f"SELECT array_send(array_agg({ARRAY})) FROM bench.big GROUP BY (id - 1) / 10000"):
        rows, width = int.from_bytes(data[12:16], "big"), int.from_bytes(data[20:24], "big")
        cells = np.frombuffer(data, dtype=np.dtype([("length", ">i4"), ("value", ">f8")]), offset=28,
                              count=rows * width)
        matrices.append(cells["value"].reshape(rows, width))
    matrix = np.vstack(matrices).astype(np.float64)
    assert matrix.shape == (n, len(FEATURES))
    return matrix


def _trigger(conn, name: str) -> dict:
    """Bulk INSERT ... SELECT and single-row INSERTs: no trigger vs row mode vs statement mode."""
    columns = ", ".join(f"{column} double precision" for column in FEATURES)
    for table in ("plain", "scored", "appended"):
        conn.execute(f"DROP TABLE IF EXISTS bench.{table}")
        conn.execute(f"CREATE TABLE bench.{table} (id integer PRIMARY KEY, {columns}, prediction double precision)")
    conn.execute("SELECT pgml_trigger.attach('bench.scored', %s, 'prediction')", [name])
    conn.execute("SELECT pgml_trigger.attach('bench.appended', %s, 'prediction', mode => 'statement')", [name])
    insert = "INSERT INTO bench.{} (id, {cols}) SELECT id, {cols} FROM bench.insert_source"
    cols = ", ".join(FEATURES)
    for table in ("scored", "appended"):  # load the model in this session first
        conn.execute(insert.format(table, cols=cols) + " LIMIT 10")
        conn.execute(f"TRUNCATE bench.{table}")
    conn.execute("TRUNCATE pgml_trigger.prediction_log")
    n = conn.execute("SELECT count(*) FROM bench.insert_source").fetchone()[0]
    bulk = {table: _best_bulk_insert(conn, table, insert.format(table, cols=cols))
            for table in ("plain", "scored", "appended")}
    assert conn.execute("SELECT count(*) FROM bench.scored WHERE prediction IS NULL").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pgml_trigger.prediction_log").fetchone()[0] == n
    single = {table: _single_row_inserts(conn, table, SINGLE_ROW_INSERTS) for table in ("plain", "scored", "appended")}
    return {"rows": n, "plain_rows_per_s": n / bulk["plain"], "trigger_rows_per_s": n / bulk["scored"],
            "share": bulk["plain"] / bulk["scored"], "statement_rows_per_s": n / bulk["appended"],
            "statement_share": bulk["plain"] / bulk["appended"], "single_rows": SINGLE_ROW_INSERTS,
            "single_plain_rows_per_s": SINGLE_ROW_INSERTS / single["plain"],
            "single_trigger_rows_per_s": SINGLE_ROW_INSERTS / single["scored"],
            "single_statement_rows_per_s": SINGLE_ROW_INSERTS / single["appended"],
            "target": TRIGGER_TARGETS.get(name)}


def _best_bulk_insert(conn, table: str, statement: str, runs: int = 3) -> float:
    """Seconds for the fastest of ``runs`` bulk inserts into an emptied table (the machine may be shared)."""
    timings = []
    for _ in range(runs):
        conn.execute(f"TRUNCATE bench.{table}, pgml_trigger.prediction_log")
        timings.append(_timed_statement(conn, statement))
    return min(timings)


def _single_row_inserts(conn, table: str, count: int) -> float:
    """Seconds for ``count`` one-row INSERT statements (prepared, autocommit), as an application sends them."""
    rows = conn.execute(f"SELECT id, {', '.join(FEATURES)} FROM bench.insert_source "
                        f"ORDER BY id LIMIT {count}").fetchall()
    conn.execute(f"DELETE FROM bench.{table} WHERE id <= {count}")
    statement = (f"INSERT INTO bench.{table} (id, {', '.join(FEATURES)}) "
                 f"VALUES ({', '.join(['%s'] * (len(FEATURES) + 1))})")
    start = time.perf_counter()
    for row in rows:
        conn.execute(statement, row, prepare=True)
    return time.perf_counter() - start


def _service(dsn, bindir, model, args) -> list[dict]:
    import tempfile

    import joblib

    from . import service

    with tempfile.TemporaryDirectory(prefix="pgml_bench_") as work:
        model_file = Path(work) / "linear.joblib"
        joblib.dump(model, model_file)
        rows = max(args.rows_per_row, args.rows_batch, args.rows_trigger)
        return service.compare(dsn, bindir, "linear", model_file, "bench.rows", FEATURES, rows,
                               seconds=args.service_seconds)


def _memory(conn, dsn, model, X) -> dict:
    from pgml_trigger import upload

    from . import service

    for _ in range(MEMORY_MODELS - 1):
        upload(conn, "forest", model, feature_names=FEATURES, sample=X)
    refs = [f"forest@{version}" for version in range(1, MEMORY_MODELS + 1)]
    return service.backend_rss(dsn, refs, X[0].tolist())


def _timed_statement(conn, query: str) -> float:
    start = time.perf_counter()
    conn.execute(query)
    return time.perf_counter() - start


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "MISSED")


def _report(results: dict) -> str:
    lines = ["", "per row: SELECT predict(...) per row, compiled path vs the model's library per row in PL/Python"]
    lines.append(f"  {'model':8} {'path':8} {'compiled us/row':>16} {'sklearn us/row':>15} {'speedup':>8} "
                 f"{'target':>7}")
    for name, r in results["per_row"].items():
        target = r["target"]
        lines.append(f"  {name:8} {r['path']:8} {r['compiled_us_per_row']:16.1f} {r['sklearn_us_per_row']:15.1f} "
                     f"{r['speedup']:7.1f}x {'' if target is None else f'{target:.0f}x':>7}  "
                     f"{_verdict(None if target is None else r['speedup'] >= target)}")
    transfer = results["array_transfer"]
    transfer_lines = [
        "", f"float8[][] into numpy ({transfer['rows']} rows in 10,000-row arrays): PL/Python lists "
            f"{transfer['list_us_per_row']:.2f} us/row, array_send + numpy {transfer['send_us_per_row']:.2f} us/row",
        "  predict_batch over those arrays, no table scan or write (us/row, and x the engine alone in the backend): "
        + ", ".join(f"{name} {value:.2f} ({value / results['batch'][name]['engine_us_per_row']:.1f}x)"
                    for name, value in transfer["predict_batch_us_per_row"].items())]
    lines += ["", "batch, read + predict + write back: score() vs a client-side batch (fetch, predict, COPY, UPDATE)"]
    lines.append(f"  {'model':8} {'rows':>8} {'client s':>9} {'score() s':>10} {'ratio':>7}")
    for name, r in results["batch"].items():
        lines.append(f"  {name:8} {r['rows']:8d} {r['client_s']:9.2f} {r['score_s']:10.2f} {r['vs_client']:6.2f}x  "
                     f">={r['target_vs_client']:.0f}x: {_verdict(r['vs_client'] >= r['target_vs_client'])}   "
                     f"(client: fetch {r['client_fetch_s']:.2f}, predict {r['client_predict_s']:.2f}, "
                     f"write {r['client_write_s']:.2f})")
    lines += ["", "batch, read + predict: predict_batch over the table vs a client fetching the rows and scoring "
                  "them (this process: the rows into numpy, model.predict), and vs its floor in the backend (the "
                  "engine alone on the same matrices)"]
    lines.append(f"  {'model':8} {'rows':>8} {'client s':>9} {'predict_batch s':>16} {'ratio':>7}"
                 f"{'':22}{'engine s':>9} {'ratio':>7}")
    for name, r in results["batch"].items():
        target = r["target_vs_fetch_and_score"]
        lines.append(f"  {name:8} {r['rows']:8d} {r['fetch_and_score_s']:9.2f} {r['predict_batch_s']:16.2f} "
                     f"{r['vs_fetch_and_score']:6.2f}x  <={target}x: "
                     f"{_verdict(r['vs_fetch_and_score'] <= target):6}   {r['engine_s']:9.3f} "
                     f"{r['predict_batch_vs_engine']:6.2f}x"
                     f"   (client: read {r['fetch_and_score_read_s']:.2f} by {r['fetch_and_score_read_way']}, "
                     f"predict {r['fetch_and_score_predict_s']:.2f}; "
                     f"score() is {r['score_vs_fetch_and_score']:.1f}x the client)")
    lines += transfer_lines
    lines += ["", "trigger: INSERT ... SELECT (bulk) and one-row INSERTs, no trigger vs row mode vs statement mode"]
    lines.append(f"  {'model':8} {'rows':>8} {'plain rows/s':>13} {'row mode':>9} {'share':>6} {'target':>7} "
                 f"{'statement':>10} {'share':>6}   one-row INSERTs/s: plain, row, statement")
    for name, r in results["trigger"].items():
        target = r["target"]
        lines.append(f"  {name:8} {r['rows']:8d} {r['plain_rows_per_s']:13.0f} {r['trigger_rows_per_s']:9.0f} "
                     f"{r['share']:6.1%} {'' if target is None else f'{target:.0%}':>7} "
                     f"{r['statement_rows_per_s']:10.0f} {r['statement_share']:6.1%}   "
                     f"{r['single_plain_rows_per_s']:.0f}, {r['single_trigger_rows_per_s']:.0f}, "
                     f"{r['single_statement_rows_per_s']:.0f}  "
                     f"row mode: {_verdict(None if target is None else r['share'] >= target)}")
    lines += ["", "service: SQL predict (pgbench, prepared) vs Flask+gunicorn fetching the row and scoring it with "
                  "scikit-learn's predict or with onnxruntime on the compiled graph (wrk); random ids",
              f"  {'clients':>7}  {'':24}{'per s':>8} {'p50 ms':>8} {'p99 ms':>8} {'SQL x':>6}"]
    for r in results["service"]:
        sql = r["sql"]
        lines.append(f"  {r['clients']:7d}  {'SQL predict':24}{sql['per_s']:8.0f} {sql['p50_ms']:8.2f} "
                     f"{sql['p99_ms']:8.2f}")
        for key, label in (("http_sklearn", "HTTP, scikit-learn"), ("http_onnx", "HTTP, onnxruntime")):
            http = r[key]
            ratio = sql["per_s"] / http["per_s"]
            verdicts = ""
            if key == "http_sklearn":  # issue 3's targets are against the service as teams write it
                verdicts = f"p99 lower: {_verdict(sql['p99_ms'] < http['p99_ms'])}"
                if r["clients"] == 4:
                    verdicts = (f"{SERVICE_THROUGHPUT_TARGET:.0f}x: "
                                f"{_verdict(ratio >= SERVICE_THROUGHPUT_TARGET)}, " + verdicts)
            lines.append(f"  {'':7}  {label:24}{http['per_s']:8.0f} {http['p50_ms']:8.2f} {http['p99_ms']:8.2f} "
                         f"{ratio:5.1f}x  {verdicts}")
    lines += ["", *realtime.report(results["realtime"])]
    lines += ["", *big_model.report(results["big_model"])]
    lines += ["", *scan.report(results["scan"])]
    lines += ["", *explain.report(results["explain"])]
    memory = results["memory"]
    lines += ["", f"memory: one backend's RSS {memory['bootstrapped_mib']:.0f} MiB bootstrapped, "
                  f"{memory['one_model_mib']:.0f} MiB with one model, {memory['all_models_mib']:.0f} MiB with "
                  f"{memory['models_cached']} cached ({memory['payload_mib']:.1f} MiB of payload)"]
    return "\n".join(lines)


def _plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["per_row"])
    x = np.arange(len(names))
    figure, (per_row, batch, trigger, service) = plt.subplots(1, 4, figsize=(21, 5))
    per_row.bar(x - 0.2, [results["per_row"][n]["sklearn_us_per_row"] for n in names], 0.4, label="sklearn per row")
    per_row.bar(x + 0.2, [results["per_row"][n]["compiled_us_per_row"] for n in names], 0.4, label="pgml_trigger")
    per_row.set_yscale("log")
    per_row.set_title("SELECT predict() per row (us/row, log)")
    for i, n in enumerate(names):
        target = PER_ROW_TARGETS.get(n)
        per_row.annotate(f"{results['per_row'][n]['speedup']:.0f}x" + (f" (target {target:.0f}x)" if target else ""),
                         (i, results["per_row"][n]["compiled_us_per_row"]), ha="center", va="bottom", fontsize=8)
    width = 0.27
    width5 = 0.16
    for offset, (key, label) in zip(np.arange(-2, 3) * width5,
                                    (("client_s", "client batch"), ("score_s", "score()"),
                                     ("fetch_and_score_s", "client: fetch + predict"),
                                     ("predict_batch_s", "predict_batch"), ("engine_s", "engine in the backend"))):
        batch.bar(np.arange(len(MODELS)) + offset, [results["batch"][n][key] for n in MODELS], width5, label=label)
    batch.set_title(f"scoring {results['batch'][MODELS[0]]['rows']:,} rows (s)")
    batch.set_xticks(np.arange(len(MODELS)), MODELS)
    for offset, (key, label) in zip((-width, 0, width), (("plain_rows_per_s", "no trigger"),
                                                         ("trigger_rows_per_s", "row mode"),
                                                         ("statement_rows_per_s", "statement mode"))):
        trigger.bar(x + offset, [results["trigger"][n][key] for n in names], width, label=label)
    trigger.set_yscale("log")
    trigger.set_title("INSERT ... SELECT (rows/s, log)")
    for axis in (per_row, trigger):
        axis.set_xticks(x, names)
    for axis in (per_row, batch, trigger):
        axis.legend(fontsize=8)
    clients = [r["clients"] for r in results["service"]]
    at = np.arange(len(clients))
    for offset, (key, label) in zip((-width, 0, width), (("http_sklearn", "HTTP service, scikit-learn"),
                                                         ("http_onnx", "HTTP service, onnxruntime"),
                                                         ("sql", "SQL predict (pgbench)"))):
        service.bar(at + offset, [r[key]["per_s"] for r in results["service"]], width, label=label)
    for i, r in enumerate(results["service"]):
        service.annotate(f"p99 {r['sql']['p99_ms']:.1f} vs {r['http_sklearn']['p99_ms']:.1f}, "
                         f"{r['http_onnx']['p99_ms']:.1f} ms", (i + width, r["sql"]["per_s"]),
                         ha="center", va="bottom", fontsize=7)
    service.set_xticks(at, [f"{c} clients" for c in clients])
    service.set_title("linear model by row id (requests/s)")
    service.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    raise SystemExit(main())

"""Scoring a whole table: pgml_trigger's SQL forms against orbital's SQL, serial and with parallel workers.

    python -m bench --only scan [--scan-rows 200000] [--scan-runs 3]

The table ``bench.scan``: an id and 30 float8 columns x0..x29 holding the rows of scikit-learn's
``make_classification(n_samples=rows, n_features=30, n_informative=10, random_state=0)``: generated rows,
none repeated. Four classifiers fitted on its first ``TRAIN_ROWS`` rows: StandardScaler+LogisticRegression,
GradientBoostingClassifier (100 trees of depth 3), DecisionTreeClassifier (depth 10) and
RandomForestClassifier (50 trees of depth 10: with unbounded depth, orbital's SQL for the 50 trees is
8.7 MB and takes four minutes to write). orbital's SQL for the forest computes each of its ~17,000 splits
as a column of one subquery, and PostgreSQL refuses it (at most 1,664 columns): it is recorded as refused.

Each model scores every row of the table, the predicted labels summed in the same statement, by:

* orbital: the SQL ``orbital.export_sql`` writes for PostgreSQL, unoptimized (``orbital_sql``; orbital compiles
  the pipeline to ONNX with skl2onnx, then the graph to SQL expressions; its ``output_label``);
* ``predict(name, t)``: the table row, matched by column name;
* ``predict(name, ARRAY[x0, ..., x29])``: the row by position;
* ``predict_batch(name, array_agg(ARRAY[...]))``: one call per ``CHUNK`` rows.

Every form runs with ``max_parallel_workers_per_gather = 2`` and ``= 0`` in each of ``runs`` rounds (forms and
settings interleaved, so that the machine's other load falls on all alike; ``min_parallel_table_scan_size = 0``,
so that a quick run's small table may get workers as the full one does); a figure is the best round's
seconds, timed at the client. The plan's workers (EXPLAIN) are recorded with it: PostgreSQL runs a
function in parallel workers only when it is marked PARALLEL SAFE. Every form's sum must equal the sum of
scikit-learn's ``predict`` on the same rows. Figures go to bench/results/scan.json.
"""

from __future__ import annotations

import time

import numpy as np

TRAIN_ROWS = 20_000
CHUNK = 10_000
FEATURES = [f"x{i}" for i in range(30)]
ARRAY = "ARRAY[" + ", ".join(FEATURES) + "]"
WORKERS = (2, 0)  # max_parallel_workers_per_gather
FORMS = {
    "orbital": 'SELECT sum("output_label") FROM ({orbital}) AS scored',
    "predict(name, t)": "SELECT sum(pgml_trigger.predict('{model}', t)) FROM scan AS t",
    "predict(name, ARRAY[...])": f"SELECT sum(pgml_trigger.predict('{{model}}', {ARRAY})) FROM scan",
    "predict_batch(name, array_agg(...))": (
        f"SELECT sum(p) FROM (SELECT pgml_trigger.predict_batch('{{model}}', array_agg({ARRAY})) AS scores "
        f"FROM scan GROUP BY (id - 1) / {CHUNK}) AS chunk, unnest(chunk.scores) AS p"),
}


def train(rows: int) -> tuple[dict, np.ndarray]:
    """The four classifiers (fitted on the first TRAIN_ROWS rows) and the table's rows."""
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    X, y = make_classification(n_samples=rows, n_features=len(FEATURES), n_informative=10, random_state=0)
    fit_X, fit_y = X[:TRAIN_ROWS], y[:TRAIN_ROWS]
    models = {
        "scan_linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "scan_gbt": make_pipeline(GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=0)),
        "scan_tree": make_pipeline(DecisionTreeClassifier(max_depth=10, random_state=0)),
        "scan_forest": make_pipeline(RandomForestClassifier(n_estimators=50, max_depth=10, random_state=0)),
    }
    for model in models.values():
        model.fit(fit_X, fit_y)
    return models, X


def orbital_sql(model) -> tuple[str, float]:
    """orbital's SQL for the model over the table ``scan`` (found through search_path: orbital quotes the name
    it is given as one identifier), and the seconds orbital took to write it. Without sqlglot's optimizer
    (``optimize=False``): with it, the forest's SQL computes every split's comparison as a column of one
    subquery, beyond PostgreSQL's 1,664 columns, and the other models' SQL is not faster."""
    import orbital
    import orbital.types

    started = time.perf_counter()
    parsed = orbital.parse_pipeline(model, features={name: orbital.types.DoubleColumnType() for name in FEATURES})
    text = orbital.export_sql("scan", parsed, dialect="postgres", optimize=False)
    return text, time.perf_counter() - started


def prepare(conn, models: dict, X: np.ndarray) -> None:
    from pgml_trigger import upload

    conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
    conn.execute(f"CREATE TABLE bench.scan (id integer PRIMARY KEY, "
                 f"{', '.join(f'{name} double precision' for name in FEATURES)})")
    with conn.cursor().copy(f"COPY bench.scan (id, {', '.join(FEATURES)}) FROM STDIN") as copy:
        for i, row in enumerate(X):
            copy.write_row([i + 1, *row.tolist()])
    conn.execute("VACUUM ANALYZE bench.scan")
    for name, model in models.items():
        upload(conn, name, model, feature_names=FEATURES, sample=X[:TRAIN_ROWS])


def run(dsn: str, models: dict, X: np.ndarray, runs: int = 3) -> dict:
    """Per model: each form's best seconds at each worker setting, its plan's workers, and the checks. A form
    PostgreSQL refuses to plan is recorded with its error instead (orbital's SQL for the forest)."""
    import psycopg

    results = {"rows": len(X), "train_rows": min(TRAIN_ROWS, len(X)), "chunk": CHUNK, "runs": runs,
               "workers": list(WORKERS), "models": {}}
    for name, model in models.items():
        print(f"[scan] {name}: orbital writes its SQL ...", flush=True)
        orbital, orbital_s = orbital_sql(model)
        expected = int(model.predict(X).sum())
        queries = {form: query.format(model=name, orbital=orbital) for form, query in FORMS.items()}
        refused, plans = {}, {}
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET search_path = bench, public")
            # PostgreSQL's own choice of workers, but at any table size: by default a table under 8 MB
            # (about 30,000 of these rows) gets none, so a quick run would measure the serial plan twice.
            conn.execute("SET min_parallel_table_scan_size = 0")
            path = conn.execute("SELECT scoring_path FROM pgml_trigger.warm_up(%s)", [name]).fetchone()[0]
            for form, query in list(queries.items()):
                try:
                    plans.update({(form, workers): _workers_planned(conn, query, workers) for workers in WORKERS})
                except psycopg.OperationalError as exc:
                    if not (exc.sqlstate or "").startswith("54"):  # beyond one of PostgreSQL's limits
                        raise
                    refused[form] = f"{type(exc).__name__}: {exc}"
                    del queries[form]
            seconds: dict[tuple[str, int], list[float]] = {key: [] for key in plans}
            sums = {}
            print(f"[scan] {name}: {len(queries)} forms x {len(WORKERS)} settings x {runs} rounds ...", flush=True)
            for _ in range(runs):
                for workers in WORKERS:
                    conn.execute(f"SET max_parallel_workers_per_gather = {workers}")
                    for form, query in queries.items():
                        started = time.perf_counter()
                        total = conn.execute(query).fetchone()[0]
                        seconds[form, workers].append(time.perf_counter() - started)
                        sums[form, workers] = total
        wrong = {f"{form} at {workers} workers": total for (form, workers), total in sums.items()
                 if total is None or int(round(float(total))) != expected}
        if wrong:
            raise AssertionError(f"[scan] {name}: sums of predicted labels differ from scikit-learn's {expected}: "
                                 f"{wrong}")
        forms = {form: {"refused": error} for form, error in refused.items()}
        for form in queries:
            forms[form] = {}
            for workers in WORKERS:
                best = min(seconds[form, workers])
                orbital_best = min(seconds["orbital", workers]) if "orbital" in queries else None
                forms[form][str(workers)] = {"seconds": best, "rows_per_s": len(X) / best,
                                             "vs_orbital": None if orbital_best is None else best / orbital_best,
                                             "workers_planned": plans[form, workers],
                                             "rounds_s": seconds[form, workers]}
            forms[form]["serial_vs_parallel"] = min(seconds[form, 0]) / min(seconds[form, WORKERS[0]])
        results["models"][name] = {"model": _describe(model), "scoring_path": path, "sum": expected,
                                   "orbital_sql_chars": len(orbital), "orbital_export_s": orbital_s, "forms": forms}
    return results


def _workers_planned(conn, query: str, workers: int) -> int:
    conn.execute(f"SET max_parallel_workers_per_gather = {workers}")
    plan = conn.execute(f"EXPLAIN (FORMAT JSON) {query}").fetchone()[0][0]["Plan"]
    found, stack = 0, [plan]
    while stack:
        node = stack.pop()
        found = max(found, node.get("Workers Planned", 0))
        stack.extend(node.get("Plans", []))
    return found


def _describe(model) -> str:
    return " + ".join(type(step).__name__ for _, step in model.steps)


def report(results: dict) -> list[str]:
    """Lines of the bench's report for this section."""
    lines = [f"Scan: {results['rows']:,} rows x {len(FEATURES)} float8 (make_classification; models fitted on the "
             f"first {results['train_rows']:,}), sum of predicted labels, best of {results['runs']} rounds; "
             "s / rows per s / x orbital's time at the same setting, at max_parallel_workers_per_gather "
             + " and ".join(map(str, results["workers"])) + " (workers planned)"]
    for name, entry in results["models"].items():
        lines.append(f"  {name} ({entry['model']}, scored by {entry['scoring_path']}; orbital's SQL "
                     f"{entry['orbital_sql_chars'] / 1e3:,.0f} kB, written in {entry['orbital_export_s']:.1f} s)")
        for form, by_workers in entry["forms"].items():
            if "refused" in by_workers:
                lines.append(f"    {form:<38}PostgreSQL refuses it: {by_workers['refused']}")
                continue
            cells = []
            for workers in results["workers"]:
                figure = by_workers[str(workers)]
                ratio = "" if figure["vs_orbital"] is None else f"{figure['vs_orbital']:5.2f}x "
                cells.append(f"{figure['seconds']:7.2f} s {figure['rows_per_s']:>9,.0f}/s {ratio}"
                             f"({figure['workers_planned']})")
            lines.append(f"    {form:<38}" + "   ".join(cells) +
                         f"   serial/parallel {by_workers['serial_vs_parallel']:.2f}x")
    lines.append("  every form that ran summed the labels scikit-learn's predict gives")
    return lines

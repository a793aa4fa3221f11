"""explain() (issue 19): what a row's reasons cost against its prediction, and against shap in a client.

    python -m bench --only explain [--explain-rows 500] [--explain-repeats 2]

On breast-cancer classifiers fitted on numpy arrays (the bench's): StandardScaler + LogisticRegression, the
100-tree RandomForest, a 100-tree XGBoost, and a 300-tree RandomForest (``forest300``). Per model:

* per row in SQL, over a table of ``rows`` rows (each the best of ``repeats`` scans): ``explain(model, f, 3)``
  against ``predict(model, f)``; and ``explain_batch`` over the same rows in one call;
* the first explain() in a new session, its model already loaded: fetching and checking the explainer and,
  for trees, building the tables of small leaves (server/treeshap.py);
* shap in this process, limited to one thread as a backend is, on the same rows: one row per call (what a
  client explaining each request pays, the pipeline's transform included for the linear model) and all rows
  in one call; and the largest difference between its values and explain()'s.

Writes bench/results/explain.json.
"""

from __future__ import annotations

import time

import numpy as np

TOP_K = 3
TABLE = "bench.explain_rows"  # id and f, the row's 30 features as float8[]


def train() -> dict:
    """The models besides the bench's 100-tree forest: its linear and XGBoost models (the full run has those
    already) and the 300-tree forest."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    X, y = load_breast_cancer(return_X_y=True)
    return {"linear": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(X, y),
            "xgboost": XGBClassifier(n_estimators=100, random_state=0).fit(X, y),
            "forest300": RandomForestClassifier(n_estimators=300, random_state=0).fit(X, y)}


def run(conn, dsn: str, X: np.ndarray, models: dict, features: list[str], rows: int = 500, repeats: int = 2) -> dict:
    """``models``: name -> fitted model; those not uploaded yet are uploaded (sample=X)."""
    from pgml_trigger import upload

    for name, model in models.items():
        if conn.execute("SELECT count(*) FROM pgml_trigger.models WHERE name = %s", [name]).fetchone()[0] == 0:
            print(f"[explain] uploading {name} ...", flush=True)
            upload(conn, name, model, feature_names=features, sample=X)
    conn.execute("CREATE SCHEMA IF NOT EXISTS bench")
    conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    conn.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, f double precision[])")
    chosen = X[np.arange(rows) % len(X)]
    with conn.cursor().copy(f"COPY {TABLE} (id, f) FROM STDIN") as copy:
        for i, row in enumerate(chosen):
            copy.write_row([i + 1, row.tolist()])
    conn.execute(f"VACUUM ANALYZE {TABLE}")
    results = {"rows": rows, "repeats": repeats, "top_k": TOP_K, "models": {}}
    for name, model in models.items():
        print(f"[explain] {name}: explain vs predict per row, explain_batch, shap in a client ...", flush=True)
        results["models"][name] = _measure(dsn, name, model, chosen, X, repeats)
    return results


def _measure(dsn: str, name: str, model, X: np.ndarray, background: np.ndarray, repeats: int) -> dict:
    import psycopg

    n = len(X)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SELECT pgml_trigger.predict(%s, f) FROM {TABLE} WHERE id = 1", [name])
        first = _seconds(conn, f"SELECT pgml_trigger.explain(%s, f, {TOP_K}) FROM {TABLE} WHERE id = 1", [name])
        info, explainer_bytes = conn.execute("SELECT explainer_info, octet_length(explainer) FROM pgml_trigger.models "
                                             "WHERE name = %s", [name]).fetchone()
        predict = min(_seconds(conn, f"SELECT sum(pgml_trigger.predict(%s, f)) FROM {TABLE}", [name])
                      for _ in range(repeats))
        explain = min(_seconds(conn, f"SELECT sum(length(pgml_trigger.explain(%s, f, {TOP_K})::text)) FROM {TABLE}",
                               [name]) for _ in range(repeats))
        batch = min(_seconds(conn, f"SELECT cardinality(pgml_trigger.explain_batch(%s, array_agg(f ORDER BY id), "
                                   f"{TOP_K})) FROM {TABLE}", [name]) for _ in range(repeats))
        explained = [e for (e,) in conn.execute(f"SELECT pgml_trigger.explain(%s, f) FROM {TABLE} WHERE id <= 20 "
                                                "ORDER BY id", [name])]
    client = _shap_client(model, X, background, repeats)
    ours = np.array([[{item["feature"]: item["contribution"] for item in e["contributions"]}[f"x{j}"]
                      for j in range(X.shape[1])] for e in explained])
    theirs = client.pop("values")[:len(ours)]
    signs = np.array([1.0 if e["class"] == 1 else -1.0 for e in explained])[:, None]
    theirs = theirs if theirs.ndim == 2 else np.stack([theirs[r, :, e["class"]] for r, e in enumerate(explained)])
    if info["output"] == "log_odds":
        theirs = theirs * signs
    return {"method": info["method"], "output": info["output"], "explainer_bytes": explainer_bytes,
            "predict_us_per_row": predict / n * 1e6, "explain_us_per_row": explain / n * 1e6,
            "explain_vs_predict": explain / predict, "explain_batch_us_per_row": batch / n * 1e6,
            "first_explain_s": first, **client,
            "shap_vs_explain_per_row": client["shap_us_per_row"] / (explain / n * 1e6),
            "max_abs_diff_vs_shap": float(np.max(np.abs(ours - theirs)))}


def _shap_client(model, X: np.ndarray, background: np.ndarray, repeats: int) -> dict:
    """shap in this process on one thread: per row (one call each) and all rows at once; its values of the rows.
    A linear model's background: the upload's sample, as explain()'s."""
    import shap
    from threadpoolctl import threadpool_limits

    if hasattr(model, "steps"):  # the linear pipeline: shap explains its last step, over its transform
        transform, final = model[:-1].transform, model[-1]
        explainer = shap.LinearExplainer(final, shap.maskers.Independent(transform(background),
                                                                         max_samples=len(background)))
    else:
        transform, final = (lambda rows: rows), model
        explainer = shap.TreeExplainer(final, feature_perturbation="tree_path_dependent")
    with threadpool_limits(1):
        explainer.shap_values(transform(X[:1]))
        per_row = min(_wall(lambda: [explainer.shap_values(transform(X[i:i + 1])) for i in range(len(X))])
                      for _ in range(repeats))
        whole = min(_wall(lambda: explainer.shap_values(transform(X))) for _ in range(repeats))
        values = np.asarray(explainer.shap_values(transform(X[:20])))
    return {"shap_us_per_row": per_row / len(X) * 1e6, "shap_batch_us_per_row": whole / len(X) * 1e6,
            "values": values}


def _seconds(conn, query: str, params=None) -> float:
    return _wall(lambda: conn.execute(query, params).fetchall())


def _wall(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def report(results: dict) -> list[str]:
    lines = [f"explain(model, f, {results['top_k']}) per row over {results['rows']} rows (best of "
             f"{results['repeats']}), against predict() per row and shap in a client (one thread)",
             f"  {'model':10} {'method':10} {'predict us':>10} {'explain us':>10} {'x predict':>9} {'batch us':>9} "
             f"{'shap/row us':>11} {'shap batch us':>13} {'first s':>8} {'bytes':>9} {'diff':>8}"]
    for name, r in results["models"].items():
        lines.append(f"  {name:10} {r['method']:10} {r['predict_us_per_row']:10.1f} {r['explain_us_per_row']:10.1f} "
                     f"{r['explain_vs_predict']:8.1f}x {r['explain_batch_us_per_row']:9.1f} "
                     f"{r['shap_us_per_row']:11.1f} {r['shap_batch_us_per_row']:13.1f} {r['first_explain_s']:8.2f} "
                     f"{r['explainer_bytes']:9d} {r['max_abs_diff_vs_shap']:8.1e}")
    return lines

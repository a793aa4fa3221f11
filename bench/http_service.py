"""The alternative pgml_trigger replaces: a Python web service that scores rows by id.

A Flask app served by gunicorn: each worker loads the model once, keeps one
database connection, and answers ``GET /predict/<id>`` by fetching that row's
features from PostgreSQL, scoring them and returning JSON. It scores with one
of two engines (PGML_BENCH_ENGINE):

* ``sklearn``: the joblib model's own ``predict`` (PGML_BENCH_MODEL, a file);
* ``onnx``: the engine SQL ``predict`` uses, pgml_trigger's OnnxEngine (one
  onnxruntime thread) on the model's compiled graph, read with its feature
  schema from ``pgml_trigger.models`` (PGML_BENCH_MODEL_NAME, latest version).

Configured through the environment (set by bench/service.py):
PGML_BENCH_DSN, PGML_BENCH_ENGINE, PGML_BENCH_MODEL, PGML_BENCH_MODEL_NAME,
PGML_BENCH_TABLE, PGML_BENCH_COLUMNS.
"""

from __future__ import annotations

import os

import joblib
import numpy as np
import psycopg
from flask import Flask, jsonify
from psycopg import sql

app = Flask(__name__)
_state: dict = {}


def _worker_state() -> dict:
    """Per gunicorn worker process: the scoring function and a connection, made on first use (after the fork)."""
    if not _state:
        columns = os.environ["PGML_BENCH_COLUMNS"].split(",")
        _state["conn"] = psycopg.connect(os.environ["PGML_BENCH_DSN"], autocommit=True)
        if os.environ["PGML_BENCH_ENGINE"] == "onnx":
            _state["score"] = _onnx_engine(_state["conn"], os.environ["PGML_BENCH_MODEL_NAME"]).predict_row
        else:
            model = joblib.load(os.environ["PGML_BENCH_MODEL"])
            _state["score"] = lambda row: model.predict(np.array([row], dtype=np.float64))[0]
        table = sql.Identifier(*os.environ["PGML_BENCH_TABLE"].split("."))
        _state["query"] = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), table)
    return _state


def _onnx_engine(conn, name: str):
    from pgml_trigger.schema import FeatureInput, FeatureSchema
    from pgml_trigger.server.engines import OnnxEngine

    graph, names, types, inputs, input_kind, classes = conn.execute(
        "SELECT compiled_payload, feature_names, feature_types, feature_inputs, input_kind, classes "
        "FROM pgml_trigger.models WHERE name = %s ORDER BY version DESC LIMIT 1", [name]).fetchone()
    if graph is None:
        raise RuntimeError(f"model {name} has no compiled graph")
    schema = FeatureSchema(names=tuple(names), types=tuple(types), inputs=tuple(map(FeatureInput.from_json, inputs)),
                           input_kind=input_kind)
    return OnnxEngine(graph, schema, classes)


@app.get("/predict/<int:row_id>")
def predict(row_id: int):
    state = _worker_state()
    row = state["conn"].execute(state["query"], [row_id], prepare=True).fetchone()
    if row is None:
        return jsonify(error=f"no row {row_id}"), 404
    return jsonify(id=row_id, prediction=float(state["score"](row)))

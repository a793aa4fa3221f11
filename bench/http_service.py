"""The alternative pgml_trigger replaces: a Python web service that scores rows by id.

A Flask app served by gunicorn: each worker loads the same joblib model once,
keeps one database connection, and answers ``GET /predict/<id>`` by fetching
that row's features from PostgreSQL, calling ``model.predict`` and returning
JSON. Configured through the environment (set by bench/service.py):
PGML_BENCH_DSN, PGML_BENCH_MODEL, PGML_BENCH_TABLE, PGML_BENCH_COLUMNS.
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
    """Per gunicorn worker process: the model and a connection, made on first use (after the fork)."""
    if not _state:
        columns = os.environ["PGML_BENCH_COLUMNS"].split(",")
        _state["model"] = joblib.load(os.environ["PGML_BENCH_MODEL"])
        _state["conn"] = psycopg.connect(os.environ["PGML_BENCH_DSN"], autocommit=True)
        table = sql.Identifier(*os.environ["PGML_BENCH_TABLE"].split("."))
        _state["query"] = sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
            sql.SQL(", ").join(map(sql.Identifier, columns)), table)
    return _state


@app.get("/predict/<int:row_id>")
def predict(row_id: int):
    state = _worker_state()
    row = state["conn"].execute(state["query"], [row_id], prepare=True).fetchone()
    if row is None:
        return jsonify(error=f"no row {row_id}"), 404
    prediction = state["model"].predict(np.array([row], dtype=np.float64))[0]
    return jsonify(id=row_id, prediction=float(prediction))

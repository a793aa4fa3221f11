"""The real-time path: what a one-row statement may skip, and loading models before the first request."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pytest
import trained
from psycopg import sql
from sklearn.linear_model import LinearRegression

from pgml_trigger import upload
from pgml_trigger.server import generation, load_plan


def _versioned(version: int) -> LinearRegression:
    """A model whose every prediction says which version made it (1000 * version, plus a little)."""
    rng = np.random.default_rng(version)
    X = pd.DataFrame(rng.normal(size=(40, 2)), columns=["x", "y"])
    return LinearRegression().fit(X, 1000 * version + X["x"] - 3 * X["y"])


def _version_scoring(session) -> int:
    return round(session.execute("SELECT pgml_trigger.predict('m', ARRAY[0.0, 0.0])").fetchone()[0] / 1000)


def test_changes_rolled_back_elsewhere_and_then_committed(conn, connect):
    """A reader skips the catalog while the writers' shared generation matches what it read; a change that
    wrote the file and rolled back must not make it stale for the next committed change."""
    upload(conn, "m", _versioned(1), alias="production")
    reader = connect()
    assert _version_scoring(reader) == 1
    writer = connect(autocommit=False)
    writer.execute("SELECT 1")  # open a transaction: upload() then joins it instead of committing
    upload(writer, "m", _versioned(2), alias="production")  # uncommitted: invisible to the reader
    assert _version_scoring(reader) == 1
    writer.rollback()
    assert _version_scoring(reader) == 1
    upload(conn, "m", _versioned(3), alias="production")
    assert _version_scoring(reader) == 3
    assert _version_scoring(reader) == 3


def test_a_session_sees_its_own_change_and_its_rollback(conn, connect):
    upload(conn, "m", _versioned(1), alias="production")
    session = connect(autocommit=False)
    assert _version_scoring(session) == 1
    session.commit()
    session.execute("SELECT 1")
    upload(session, "m", _versioned(2), alias="production")  # joins the open transaction
    assert _version_scoring(session) == 2
    session.rollback()
    assert _version_scoring(session) == 1
    upload(conn, "m", _versioned(3), alias="production")
    session.commit()
    assert _version_scoring(session) == 3


def test_warm_up_loads_models_before_the_first_request(conn, connect):
    upload(conn, "m", _versioned(1), alias="production")
    upload(conn, "other", _versioned(5))
    pooled = connect()
    warmed = pooled.execute("SELECT model, name, version, scoring_path, load_seconds "
                            "FROM pgml_trigger.warm_up('m', 'other@1')").fetchall()
    assert [row[:4] for row in warmed] == [("m", "m", 1, "sklearn"), ("other@1", "other", 1, "sklearn")]
    assert all(row[4] > 0 for row in warmed)
    again = pooled.execute("SELECT load_seconds FROM pgml_trigger.warm_up('m')").fetchone()[0]
    assert again < min(row[4] for row in warmed)  # already loaded: only resolving it
    cached = pooled.execute("SELECT name, loads, scoring_path, load_seconds > 0, load_stages "
                            "FROM pgml_trigger.cache_info() ORDER BY name").fetchall()
    assert [row[:4] for row in cached] == [("m", 1, "sklearn", True), ("other", 1, "sklearn", True)]
    for *_, stages in cached:
        assert set(stages) == {"fetch", "sha256", "deserialize"} and all(s >= 0 for s in stages.values())
    assert _version_scoring(pooled) == 1


def _publish(directory, database_oid: int, number: int) -> None:
    """What a writer does (pgml_trigger._catalog_changed() in sql/catalog.sql): 8 bytes, in place."""
    target = directory / str(database_oid) / "generation"
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "r+b" if target.exists() else "wb") as file:
        file.write(number.to_bytes(8, "little", signed=True))


def test_a_big_graph_waits_until_the_model_has_scored_as_long_as_building_it_takes(conn, connect):
    """pgml_trigger.defer_graph_mb = 0 treats every compiled graph as big: a new backend's first predictions come
    from the model's own payload, the graph is built once they have taken about as long as that should, and
    every prediction on either engine is the model's own."""
    X, _ = trained.breast_cancer()
    model = trained.forest_breast_cancer()
    upload(conn, "rf", model, sample=X)
    conn.execute(sql.SQL("ALTER DATABASE {} SET pgml_trigger.defer_graph_mb = 0").format(
        sql.Identifier(conn.info.dbname)))
    graph_bytes = conn.execute("SELECT octet_length(compiled_payload) FROM pgml_trigger.models").fetchone()[0]
    budget = graph_bytes / 2**20 * load_plan.GRAPH_SECONDS_PER_MB
    session = connect()
    paths, predictions, spent = [], [], []  # spent: seconds the backend has scored the model with
    for i in range(len(X)):
        predictions.append(session.execute("SELECT pgml_trigger.predict('rf', %s::float8[])",
                                           [X.iloc[i].tolist()]).fetchone()[0])
        paths.append(session.execute("SELECT pgml_trigger.loaded_scoring_path('rf')").fetchone()[0])
        spent.append(session.execute("SELECT seconds FROM pgml_trigger.counters()").fetchone()[0])
        if paths[-1] == "onnx":
            break
    assert paths[0] == "sklearn" and paths[-1] == "onnx", paths
    # built by the first predict after the model had scored for as long as building should take
    built_by = len(paths) - 1
    assert spent[built_by - 1] >= budget and (built_by < 2 or spent[built_by - 2] < budget), (spent, budget)
    assert predictions == model.predict(X.iloc[:len(predictions)]).astype(float).tolist()
    stages = session.execute("SELECT load_stages FROM pgml_trigger.cache_info()").fetchone()[0]
    assert {"deserialize", "graph onnxruntime session"} <= set(stages)
    # warm_up() builds the graph at once, without loading the model's own payload first; -1 never defers
    pooled = connect()
    assert pooled.execute("SELECT scoring_path FROM pgml_trigger.warm_up('rf')").fetchone()[0] == "onnx"
    stages = pooled.execute("SELECT load_stages FROM pgml_trigger.cache_info()").fetchone()[0]
    assert "onnxruntime session" in stages and "deserialize" not in stages
    conn.execute(sql.SQL("ALTER DATABASE {} SET pgml_trigger.defer_graph_mb = -1").format(
        sql.Identifier(conn.info.dbname)))
    fresh = connect()
    fresh.execute("SELECT pgml_trigger.predict('rf', %s::float8[])", [X.iloc[0].tolist()])
    assert fresh.execute("SELECT pgml_trigger.loaded_scoring_path('rf')").fetchone()[0] == "onnx"
    conn.execute(sql.SQL("ALTER DATABASE {} SET pgml_trigger.defer_graph_mb = 'big'").format(
        sql.Identifier(conn.info.dbname)))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="defer_graph_mb must be a number"):
        connect().execute("SELECT pgml_trigger.predict('rf', %s::float8[])", [X.iloc[0].tolist()])


def test_generation_file_read_in_place_and_found_again_after_removal(tmp_path, monkeypatch):
    monkeypatch.setattr(generation, "DIRECTORY", tmp_path)
    reader = generation.GenerationSignal(7, usable=True)
    assert reader.current() == 0  # no writer yet: equals no generation, so readers ask the catalog
    _publish(tmp_path, 7, 41)
    assert reader.current() == 41
    (tmp_path / "7" / "generation").unlink()  # e.g. the directory cleared with the counters
    _publish(tmp_path, 7, 42)
    assert reader.current() == 42
    reader.distrust()
    assert reader.current() is None
    assert generation.GenerationSignal(7, usable=False).current() is None

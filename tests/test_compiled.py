"""The compiled (ONNX) path: used when it agrees with scikit-learn, and scikit-learn otherwise."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest
import trained
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from tables import load_table

from pgml_trigger import upload
from pgml_trigger.uploader.compile import ATOL, RTOL


def _path(conn, name: str) -> tuple[str, dict]:
    return conn.execute("SELECT scoring_path, agreement FROM pgml_trigger.models WHERE name = %s", [name]).fetchone()


@pytest.mark.parametrize("make_model", [trained.linear_breast_cancer, trained.forest_breast_cancer,
                                        trained.hgb_breast_cancer])
def test_compiled_classifier_scores_every_row_like_sklearn(conn, make_model):
    model = make_model()
    X, _ = trained.breast_cancer()
    upload(conn, "bc", model, sample=X)
    path, agreement = _path(conn, "bc")
    assert path == "onnx"
    assert agreement["compiled"] is True and agreement["label_mismatches"] == 0
    assert agreement["rows"] == len(X) and agreement["rows_from"] == "sample"
    assert conn.execute("SELECT pgml_trigger.loaded_scoring_path('bc')").fetchone()[0] == "onnx"
    load_table(conn, "tumours", X)
    columns = ", ".join(X.columns)
    got = conn.execute(f"SELECT pgml_trigger.predict('bc', ARRAY[{columns}]), pgml_trigger.predict_label('bc', "
                       f"to_jsonb(t)), pgml_trigger.predict_proba('bc', ARRAY[{columns}]) "
                       "FROM tumours AS t ORDER BY id").fetchall()
    assert [value for value, _, _ in got] == model.predict(X).astype(float).tolist()
    assert [label for _, label, _ in got] == [str(label) for label in model.predict(X)]
    assert np.allclose([proba for _, _, proba in got], model.predict_proba(X), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("make_model", [trained.forest_breast_cancer, trained.hgb_breast_cancer])
def test_rows_with_missing_values_score_like_sklearn(conn, make_model):
    """RandomForest's graph sends a missing value elsewhere than scikit-learn: those rows go to scikit-learn."""
    model = make_model()
    X, _ = trained.breast_cancer()
    upload(conn, "bc", model, sample=X)
    agreement = _path(conn, "bc")[1]
    assert agreement["missing_values"]["scored_by"] == ("sklearn" if make_model is trained.forest_breast_cancer
                                                        else "onnx")
    holes = X.iloc[::7].copy().reset_index(drop=True)
    rng = np.random.default_rng(1)
    holes = holes.mask(rng.random(holes.shape) < 0.3)
    rows = [[None if np.isnan(v) else float(v) for v in row] for row in holes.to_numpy()]
    got = [conn.execute("SELECT pgml_trigger.predict('bc', %s::float8[])", [row]).fetchone()[0] for row in rows]
    assert got == model.predict(holes).astype(float).tolist()
    probas = [conn.execute("SELECT pgml_trigger.predict_proba('bc', %s::float8[])", [row]).fetchone()[0]
              for row in rows]
    assert np.allclose(probas, model.predict_proba(holes), rtol=RTOL, atol=ATOL)


def test_a_model_onnx_cannot_express_stays_on_sklearn_and_scores_exactly(conn):
    X, y = trained.diabetes()
    model = make_pipeline(FunctionTransformer(np.tanh), Ridge()).fit(X, y)
    upload(conn, "squashed", model, sample=X)
    path, agreement = _path(conn, "squashed")
    assert path == "sklearn"
    assert agreement["compiled"] is False and "FunctionTransformer" in agreement["reason"]
    assert conn.execute("SELECT pgml_trigger.loaded_scoring_path('squashed')").fetchone()[0] == "sklearn"
    load_table(conn, "patients", X)
    got = conn.execute("SELECT pgml_trigger.predict('squashed', to_jsonb(p)) FROM patients AS p ORDER BY id").fetchall()
    assert [value for (value,) in got] == [float(model.predict(X.iloc[[i]])[0]) for i in range(len(X))]


def test_without_sample_rows_a_bare_linear_model_is_not_compiled(conn):
    model = trained.diabetes_ridge()
    X, _ = trained.diabetes()
    upload(conn, "plain", model)
    upload(conn, "checked", model, sample=X)
    upload(conn, "declined", model, sample=X, compile=False)
    paths = dict(conn.execute("SELECT name, scoring_path FROM pgml_trigger.models").fetchall())
    assert paths == {"plain": "sklearn", "checked": "onnx", "declined": "sklearn"}
    assert "sample=" in _path(conn, "plain")[1]["reason"]
    row = X.iloc[3].tolist()
    plain, checked = conn.execute("SELECT pgml_trigger.predict('plain', %(r)s::float8[]), "
                                  "pgml_trigger.predict('checked', %(r)s::float8[])", {"r": row}).fetchone()
    assert plain == model.predict(X.iloc[[3]])[0]
    assert checked == pytest.approx(plain, rel=RTOL, abs=ATOL)


def test_text_features_compile_to_string_inputs(conn):
    model = trained.mixed_pipeline()
    X, _ = trained.diabetes_mixed()
    upload(conn, "mixed", model, sample=X)
    assert _path(conn, "mixed")[0] == "onnx"
    load_table(conn, "visits", X)
    got = conn.execute("SELECT pgml_trigger.predict('mixed', to_jsonb(v)) FROM visits AS v ORDER BY id").fetchall()
    assert np.allclose([value for (value,) in got], model.predict(X), rtol=RTOL, atol=ATOL)
    unseen = dict(json.loads(X.iloc[0].to_json()), sex="unknown")  # handle_unknown="ignore" on both paths
    expected = model.predict(X.iloc[[0]].assign(sex="unknown"))[0]
    assert conn.execute("SELECT pgml_trigger.predict('mixed', %s::jsonb)",
                        [json.dumps(unseen)]).fetchone()[0] == pytest.approx(expected, rel=RTOL, abs=ATOL)


def test_the_compiled_payload_cannot_be_changed(conn):
    X, _ = trained.breast_cancer()
    upload(conn, "bc", trained.linear_breast_cancer(), sample=X)
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("UPDATE pgml_trigger.models SET compiled_payload = compiled_payload || '\\x00'::bytea")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState):
        conn.execute("UPDATE pgml_trigger.models SET agreement = '{}'")

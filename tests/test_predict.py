"""SQL scoring: predict, predict_proba and predict_label equal the model's offline output."""

from __future__ import annotations

import json

import pytest
import trained
from tables import load_table

from pgml_trigger import upload
from pgml_trigger.uploader.compile import ATOL, RTOL


def _as_json(row) -> str:
    return json.dumps({key: (value.item() if hasattr(value, "item") else value) for key, value in row.items()})


@pytest.mark.parametrize("make_model", [trained.linear_breast_cancer, trained.forest_breast_cancer,
                                        trained.hgb_breast_cancer])
def test_predict_by_position_and_by_name_equals_offline(conn, make_model):
    """These models are compiled to ONNX: labels exactly, probabilities within the stated tolerance."""
    model = make_model()
    X, _ = trained.breast_cancer()
    upload(conn, "bc", model)
    assert conn.execute("SELECT scoring_path FROM pgml_trigger.models WHERE name = 'bc'").fetchone()[0] == "onnx"
    sample = X.iloc[::40]
    for _, row in sample.iterrows():
        offline = model.predict(row.to_frame().T)[0]
        offline_proba = list(model.predict_proba(row.to_frame().T)[0])
        by_position, by_name, proba, label = conn.execute(
            "SELECT pgml_trigger.predict('bc', %(a)s::float8[]), pgml_trigger.predict('bc', %(j)s::jsonb), "
            "pgml_trigger.predict_proba('bc', %(a)s::float8[]), pgml_trigger.predict_label('bc', %(j)s::jsonb)",
            {"a": list(row), "j": _as_json(row)}).fetchone()
        assert by_position == by_name == float(offline)
        assert proba == pytest.approx(offline_proba, rel=RTOL, abs=ATOL)
        assert label == str(offline)


def test_predict_over_a_table_with_to_jsonb(conn):
    model = trained.diabetes_ridge()
    X, _ = trained.diabetes()
    upload(conn, "diabetes", model)
    load_table(conn, "patients", X)
    got = conn.execute("SELECT pgml_trigger.predict('diabetes', to_jsonb(p)) FROM patients AS p ORDER BY id").fetchall()
    assert [value for (value,) in got] == [float(model.predict(X.iloc[[i]])[0]) for i in range(len(X))]


def test_extra_json_keys_are_ignored(conn):
    model = trained.diabetes_ridge()
    X, _ = trained.diabetes()
    upload(conn, "diabetes", model)
    row = dict(json.loads(_as_json(X.iloc[0])), comment="not a feature", id=7)
    got = conn.execute("SELECT pgml_trigger.predict('diabetes', %s::jsonb)", [json.dumps(row)]).fetchone()[0]
    assert got == float(model.predict(X.iloc[[0]])[0])


def test_string_class_labels(conn):
    model, data = trained.iris_text_labels()
    upload(conn, "iris", model, feature_names=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    for row in data[::25]:
        label, proba = conn.execute("SELECT pgml_trigger.predict_label('iris', %(a)s::float8[]), "
                                    "pgml_trigger.predict_proba('iris', %(a)s::float8[])", {"a": list(row)}).fetchone()
        assert label == model.predict([row])[0]
        assert proba == list(model.predict_proba([row])[0])
    named = dict(zip(["sepal_length", "sepal_width", "petal_length", "petal_width"], data[0].tolist()))
    assert conn.execute("SELECT pgml_trigger.predict_label('iris', %s::jsonb)",
                        [json.dumps(named)]).fetchone()[0] == model.predict([data[0]])[0]


def test_classes_are_recorded_in_predict_proba_order(conn):
    model, _ = trained.iris_text_labels()
    upload(conn, "iris", model)
    classes = conn.execute("SELECT classes FROM pgml_trigger.models WHERE name = 'iris'").fetchone()[0]
    assert classes == list(model.classes_)


def test_mixed_type_pipeline_scores_from_jsonb(conn):
    model = trained.mixed_pipeline()
    X, _ = trained.diabetes_mixed()
    upload(conn, "mixed", model)
    types = conn.execute("SELECT feature_names, feature_types, input_kind FROM pgml_trigger.models").fetchone()
    assert dict(zip(types[0], types[1])) == {"age": "number", "bmi": "number", "bp": "number", "s1": "number",
                                             "s5": "number", "sex": "string", "bmi_band": "string"}
    assert types[2] == "frame"
    load_table(conn, "visits", X)
    got = conn.execute("SELECT pgml_trigger.predict('mixed', to_jsonb(v)) FROM visits AS v ORDER BY id").fetchall()
    assert [value for (value,) in got] == [float(model.predict(X.iloc[[i]])[0]) for i in range(len(X))]


def test_functions_are_stable_not_immutable(conn):
    volatility = conn.execute(
        "SELECT DISTINCT provolatile FROM pg_proc WHERE pronamespace = 'pgml_trigger'::regnamespace "
        "AND proname IN ('predict', 'predict_proba', 'predict_label') AND pronargs = 2").fetchall()
    assert volatility == [("s",)]
    logged = conn.execute("SELECT DISTINCT provolatile FROM pg_proc WHERE pronamespace = 'pgml_trigger'::regnamespace "
                          "AND proname = 'predict' AND pronargs = 3").fetchall()
    assert logged == [("v",)]  # predict(model, features, log_key) writes the prediction log

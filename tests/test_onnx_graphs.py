"""ONNX graphs as converters emit them (skl2onnx and onnxmltools defaults, torch.onnx), uploaded and scored by every
SQL path; graphs that cannot be scored from a table row are refused, saying what was found.

Tolerances: labels exactly; probabilities and values within compile.RTOL/ATOL of the library (onnxruntime computes
in float32 where the graph does), and within 1e-5 of what torch computed (tests/graphs/torch_expected.json).
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
import trained
from onnx import TensorProto, helper, numpy_helper
from skl2onnx import to_onnx
from sklearn.ensemble import RandomForestClassifier
from tables import copy_rows, create_table, load_table

from pgml_trigger import upload
from pgml_trigger.errors import InvalidModel
from pgml_trigger.uploader.compile import ATOL, RTOL

ROOT = Path(__file__).resolve().parent.parent
GRAPHS = ROOT / "tests" / "graphs"
IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _iris() -> tuple[pd.DataFrame, np.ndarray]:
    model, data = trained.iris_text_labels()
    return pd.DataFrame(data, columns=IRIS), model.predict(data)


def _scores(conn, name: str, frame: pd.DataFrame, classifier: bool) -> dict:
    """What each SQL path gives for the rows of ``frame``, loaded into a table (and once more through a trigger)."""
    load_table(conn, "rows", frame)
    got = {}
    if classifier:
        got["label"] = [label for (label,) in conn.execute(
            "SELECT pgml_trigger.predict_label(%s, to_jsonb(r)) FROM rows AS r ORDER BY id", [name])]
        got["proba"] = [proba for (proba,) in conn.execute(
            "SELECT pgml_trigger.predict_proba(%s, to_jsonb(r)) FROM rows AS r ORDER BY id", [name])]
        output = "text"
    else:
        got["value"] = [value for (value,) in conn.execute(
            "SELECT pgml_trigger.predict(%s, to_jsonb(r)) FROM rows AS r ORDER BY id", [name])]
        got["batch"] = _batch(conn, name)
        output = "double precision"
    create_table(conn, "scored", frame, extra={"output": output})
    conn.execute("SELECT pgml_trigger.attach('scored', %s, 'output')", [name])
    copy_rows(conn, "scored", frame)
    got["trigger"] = [value for (value,) in conn.execute("SELECT output FROM scored ORDER BY id")]
    return got


def _batch(conn, name: str) -> list:
    return conn.execute("SELECT pgml_trigger.predict_batch(%s, array_agg(to_jsonb(r) ORDER BY id)) FROM rows AS r",
                        [name]).fetchone()[0]


def _check_classifier(conn, name, frame, labels, proba, *, numeric_labels: bool, rtol=RTOL, atol=ATOL) -> None:
    got = _scores(conn, name, frame, classifier=True)
    expected = [str(label) for label in labels]
    assert got["label"] == expected
    assert got["trigger"] == expected
    assert np.allclose(got["proba"], proba, rtol=rtol, atol=atol)
    if numeric_labels:
        values = [value for (value,) in conn.execute(
            "SELECT pgml_trigger.predict(%s, to_jsonb(r)) FROM rows AS r ORDER BY id", [name])]
        assert values == [float(label) for label in labels]
        assert _batch(conn, name) == [float(label) for label in labels]
    else:
        with pytest.raises(psycopg.errors.WrongObjectType, match="predicts text labels"):
            conn.execute("SELECT pgml_trigger.predict(%s, to_jsonb(r)) FROM rows AS r LIMIT 1", [name])


def _check_regressor(conn, name, frame, values, rtol=RTOL, atol=ATOL) -> None:
    got = _scores(conn, name, frame, classifier=False)
    for path in ("value", "batch", "trigger"):
        assert np.allclose(got[path], values, rtol=rtol, atol=atol), path
    with pytest.raises(psycopg.errors.WrongObjectType):
        conn.execute("SELECT pgml_trigger.predict_proba(%s, to_jsonb(r)) FROM rows AS r LIMIT 1", [name])


# --- skl2onnx, default options: probabilities as a ZipMap -----------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float", "double"])
def test_skl2onnx_default_export_with_text_labels(conn, dtype):
    model, _ = trained.iris_text_labels()
    frame, labels = _iris()
    graph = to_onnx(model, frame.to_numpy().astype(dtype))  # outputs: label (string), probabilities (ZipMap)
    assert [output.type.WhichOneof("value") for output in graph.graph.output] == ["tensor_type", "sequence_type"]
    upload(conn, "iris", graph, feature_names=IRIS)
    assert conn.execute("SELECT task, classes, format, scoring_path FROM pgml_trigger.models").fetchone() == (
        "classification", list(model.classes_), "onnx", "onnx")
    _check_classifier(conn, "iris", frame, labels, model.predict_proba(frame.to_numpy()), numeric_labels=False,
                      rtol=RTOL if dtype is np.float32 else 1e-12, atol=ATOL if dtype is np.float32 else 1e-12)


def test_skl2onnx_default_export_with_int64_labels(conn):
    X, y = trained.breast_cancer()
    model = RandomForestClassifier(n_estimators=15, random_state=0).fit(X.to_numpy(), y.to_numpy())
    upload(conn, "bc", to_onnx(model, X.to_numpy().astype(np.float32)), feature_names=list(X.columns))
    assert conn.execute("SELECT classes FROM pgml_trigger.models").fetchone()[0] == [0, 1]
    _check_classifier(conn, "bc", X, model.predict(X.to_numpy()), model.predict_proba(X.to_numpy()),
                      numeric_labels=True)


def test_an_uploaded_graph_past_the_deferral_size_is_scored_by_itself(conn):
    """A graph as its converter emitted it has no payload of its own to score first, however big it is: the
    deferral (pgml_trigger.defer_graph_mb) never applies to it, at upload or when scoring."""
    conn.execute(f"ALTER DATABASE {conn.info.dbname} SET pgml_trigger.defer_graph_mb = 0")
    X, y = trained.breast_cancer()
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X.to_numpy(), y.to_numpy())
    upload(conn, "bc", to_onnx(model, X.to_numpy().astype(np.float32)), feature_names=list(X.columns))
    _check_classifier(conn, "bc", X, model.predict(X.to_numpy()), model.predict_proba(X.to_numpy()),
                      numeric_labels=True)


def test_skl2onnx_default_export_of_a_regressor_with_double_input(conn):
    X, _ = trained.diabetes()
    model = trained.diabetes_ridge()
    graph = to_onnx(model, X.to_numpy())  # double in, [N, 1] double out
    upload(conn, "diabetes", graph, feature_names=list(X.columns))
    _check_regressor(conn, "diabetes", X, model.predict(X), rtol=1e-12, atol=1e-9)


def test_skl2onnx_default_export_of_a_dataframe_pipeline_takes_one_input_per_column(conn):
    """to_onnx(pipeline, frame): an input per column, named like it (double and string here), scored by name."""
    X, _ = trained.diabetes_mixed()
    model = trained.mixed_pipeline()
    graph = to_onnx(model, X[:1])
    assert [item.name for item in graph.graph.input] == list(X.columns)
    upload(conn, "mixed", graph)
    assert conn.execute("SELECT feature_names, feature_types FROM pgml_trigger.models").fetchone() == (
        list(X.columns), ["number"] * 5 + ["string"] * 2)
    _check_regressor(conn, "mixed", X, model.predict(X), rtol=1e-12, atol=1e-9)
    with pytest.raises(InvalidModel, match="differ from the names of the ONNX graph's inputs"):
        upload(conn, "mixed", graph, feature_names=[f"x{i}" for i in range(7)])


def test_one_input_per_column_with_whole_numbers_and_text_labels(conn):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = trained.diabetes_mixed()
    frame = X.astype({name: np.float32 for name in ["age", "bmi", "bp", "s1", "s5"]})
    frame["visits"] = np.arange(len(frame)) % 7  # int64: an int64 input
    numbers = ["age", "bmi", "bp", "s1", "s5", "visits"]
    model = make_pipeline(ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), ["sex", "bmi_band"]),
                                             ("numbers", StandardScaler(), numbers)]),
                          LogisticRegression()).fit(frame, np.where(y > 140, "high", "low"))
    upload(conn, "risk", to_onnx(model, frame[:1]))  # a string label and a ZipMap
    _check_classifier(conn, "risk", frame, model.predict(frame), model.predict_proba(frame), numeric_labels=False)
    with pytest.raises(psycopg.errors.DataException, match="feature 'visits' takes whole numbers"):
        conn.execute("SELECT pgml_trigger.predict_label('risk', to_jsonb(r) || '{\"visits\": 2.5}') FROM rows AS r "
                     "LIMIT 1")


def test_a_regressor_giving_a_one_dimensional_output(conn):
    weights = np.array([2.0, -1.0], dtype=np.float32)
    graph = helper.make_model(helper.make_graph(
        [helper.make_node("MatMul", ["X", "w"], ["y"])], "dot",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        [numpy_helper.from_array(weights, "w")]), opset_imports=[helper.make_opsetid("", 13)])
    frame = pd.DataFrame({"a": [1.0, 2.5, -3.0], "b": [0.5, 1.0, 4.0]})
    upload(conn, "dot", graph, feature_names=["a", "b"])
    _check_regressor(conn, "dot", frame, frame.to_numpy() @ weights)


# --- onnxmltools ----------------------------------------------------------------------------------------------

def _onnxmltools(library: str, model, n_features: int):
    onnxmltools = pytest.importorskip("onnxmltools")
    from onnxmltools.convert.common.data_types import FloatTensorType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # converter chatter
        return getattr(onnxmltools, f"convert_{library}")(
            model, initial_types=[("input", FloatTensorType([None, n_features]))])


def test_onnxmltools_lightgbm_default_export(conn):
    lightgbm = pytest.importorskip("lightgbm")
    frame, labels = _iris()
    model = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(frame.to_numpy(), labels)
    upload(conn, "lgbm", _onnxmltools("lightgbm", model, 4), feature_names=IRIS)
    _check_classifier(conn, "lgbm", frame, model.predict(frame.to_numpy()), model.predict_proba(frame.to_numpy()),
                      numeric_labels=False)
    X, y = trained.diabetes()
    regressor = lightgbm.LGBMRegressor(n_estimators=20, verbose=-1).fit(X.to_numpy(), y)
    upload(conn, "lgbm_reg", _onnxmltools("lightgbm", regressor, X.shape[1]), feature_names=list(X.columns))
    rows = X.to_numpy()[:20]
    got = conn.execute("SELECT pgml_trigger.predict_batch('lgbm_reg', %s::float8[][])", [rows.tolist()]).fetchone()[0]
    assert np.allclose(got, regressor.predict(rows), rtol=RTOL, atol=ATOL)


def test_onnxmltools_xgboost_default_export(conn):
    xgboost = pytest.importorskip("xgboost")
    X, y = trained.breast_cancer()
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X.to_numpy(), y.to_numpy())
    upload(conn, "xgb", _onnxmltools("xgboost", model, X.shape[1]), feature_names=list(X.columns))
    _check_classifier(conn, "xgb", X, model.predict(X.to_numpy()), model.predict_proba(X.to_numpy()),
                      numeric_labels=True)


# --- torch.onnx (tests/graphs/make_torch_graphs.py) ------------------------------------------------------------

def _torch(kind: str) -> tuple[bytes, dict]:
    expected = json.loads((GRAPHS / "torch_expected.json").read_text())[kind]
    return (GRAPHS / f"mlp_{kind}.onnx").read_bytes(), expected


def test_torch_mlp_regressor(conn):
    graph, expected = _torch("regressor")
    names = [f"f{i}" for i in range(10)]
    upload(conn, "mlp", graph, feature_names=names)
    assert conn.execute("SELECT task, classes FROM pgml_trigger.models").fetchone() == ("regression", None)
    _check_regressor(conn, "mlp", pd.DataFrame(expected["rows"], columns=names), expected["values"],
                     rtol=0, atol=1e-5)


@pytest.mark.parametrize("classes", [None, ["setosa", "versicolor", "virginica"]], ids=["indexes", "named"])
def test_torch_mlp_classifier_emitting_logits(conn, classes):
    """No label output and no softmax: the server applies one; classes are the column indexes unless given."""
    graph, expected = _torch("classifier")
    upload(conn, "mlp", graph, feature_names=IRIS, classes=classes)
    stored = classes or [0, 1, 2]
    assert conn.execute("SELECT task, classes FROM pgml_trigger.models").fetchone() == ("classification", stored)
    proba = np.asarray(expected["probabilities"])
    labels = [stored[i] for i in proba.argmax(axis=1)]
    _check_classifier(conn, "mlp", pd.DataFrame(expected["rows"], columns=IRIS), labels, proba,
                      numeric_labels=classes is None, rtol=0, atol=1e-5)


def _binary_network(sigmoid: bool) -> tuple[bytes, np.ndarray]:
    """A logistic regression as a network exports it: one column, the logit or (after a Sigmoid) the probability;
    and the second class's probability on the breast-cancer rows."""
    X, _ = trained.breast_cancer()
    mean, scale = X.mean().to_numpy(), X.std().to_numpy()
    weights = (np.linspace(-1, 1, 30) / scale).astype(np.float32).reshape(30, 1)
    bias = np.array([float(-(mean / scale) @ np.linspace(-1, 1, 30))], dtype=np.float32)
    nodes = [helper.make_node("MatMul", ["X", "w"], ["xw"]),
             helper.make_node("Add", ["xw", "b"], ["logit" if sigmoid else "y"])]
    if sigmoid:
        nodes.append(helper.make_node("Sigmoid", ["logit"], ["y"]))
    graph = helper.make_model(helper.make_graph(
        nodes, "binary", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 30])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")]),
        opset_imports=[helper.make_opsetid("", 17)])
    return graph.SerializeToString(), 1 / (1 + np.exp(-(X.to_numpy() @ weights.astype(np.float64) + bias[0]).ravel()))


@pytest.mark.parametrize("sigmoid", [True, False], ids=["probability", "logit"])
def test_a_binary_network_giving_one_column(conn, sigmoid):
    """task="classification": the column is the second class's probability after a Sigmoid, else its logit."""
    X, _ = trained.breast_cancer()
    graph, positive = _binary_network(sigmoid)
    upload(conn, "binary", graph, feature_names=list(X.columns), task="classification", classes=["benign", "malign"])
    proba = np.column_stack([1 - positive, positive])
    labels = np.where(positive > 0.5, "malign", "benign")
    _check_classifier(conn, "binary", X, labels, proba, numeric_labels=False, rtol=0, atol=1e-5)


def test_cli_uploads_network_graphs_with_classes_and_task(conn, dsn, tmp_path):
    binary = tmp_path / "binary.onnx"
    binary.write_bytes(_binary_network(sigmoid=True)[0])
    for file, options in ((GRAPHS / "mlp_classifier.onnx", ["--classes", "setosa,versicolor,virginica"]),
                          (binary, ["--task", "classification"]),
                          (GRAPHS / "mlp_regressor.onnx", [])):
        done = subprocess.run([sys.executable, "-m", "pgml_trigger", "upload", str(file), "--name", file.stem,
                               "--dsn", dsn, *options], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
    assert conn.execute("SELECT name, task, classes FROM pgml_trigger.models ORDER BY name").fetchall() == [
        ("binary", "classification", [0, 1]),
        ("mlp_classifier", "classification", ["setosa", "versicolor", "virginica"]),
        ("mlp_regressor", "regression", None)]


# --- refused ----------------------------------------------------------------------------------------------------

def _graph(inputs, outputs, nodes) -> bytes:
    return helper.make_model(helper.make_graph(nodes, "g", inputs, outputs),
                             opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def test_graphs_that_cannot_be_scored_from_a_row_are_refused_saying_what_was_found(conn):
    float_input = helper.make_tensor_value_info
    several = _graph([float_input("numbers", TensorProto.FLOAT, ["N", 3]),
                      float_input("ids", TensorProto.INT64, ["N", 2])],
                     [float_input("y", TensorProto.FLOAT, ["N", 3])],
                     [helper.make_node("Identity", ["numbers"], ["y"])])
    with pytest.raises(InvalidModel, match=r"2 inputs: numbers \[N, 3\] float, ids \[N, 2\] int64; accepted: one "
                                           r"float or double tensor input \[N, n_features\]"):
        upload(conn, "several", several)
    image = _graph([float_input("image", TensorProto.FLOAT, ["batch", 3, 224, 224])],
                   [float_input("logits", TensorProto.FLOAT, ["batch", 1000])],
                   [helper.make_node("Flatten", ["image"], ["logits"])])
    with pytest.raises(InvalidModel, match=r"input is image \[N, 3, 224, 224\] float; accepted: one float or double "
                                           r"tensor input \[N, n_features\].*image"):
        upload(conn, "resnet", image)
    two_heads = _graph([float_input("X", TensorProto.FLOAT, ["N", 4])],
                       [float_input("a", TensorProto.FLOAT, ["N", 3]), float_input("b", TensorProto.FLOAT, ["N", 2])],
                       [helper.make_node("Identity", ["X"], ["a"]), helper.make_node("Identity", ["X"], ["b"])])
    with pytest.raises(InvalidModel, match=r"cannot tell what to score.*found outputs a \[N, 3\] float, b \[N, 2\]"):
        upload(conn, "heads", two_heads)
    graph, _ = _torch("classifier")
    with pytest.raises(InvalidModel, match="2 classes given, but the ONNX graph scores 3"):
        upload(conn, "mlp", graph, classes=["a", "b"])
    with pytest.raises(InvalidModel, match="task='regression', but the ONNX graph's outputs are those of a classifier"):
        upload(conn, "mlp", graph, task="regression")
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models").fetchone()[0] == 0

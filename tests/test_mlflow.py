"""MLflow models uploaded by URI or directory: a registry in a temporary directory (sqlite tracking store), a
registered model with an alias and a signature with column names, scored by column name; what is recorded."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import trained
from skl2onnx import to_onnx

from pgml_trigger import upload
from pgml_trigger.errors import InvalidModel, MissingExtra
from pgml_trigger.uploader import mlflow_source
from pgml_trigger.uploader.compile import ATOL, RTOL

mlflow = pytest.importorskip("mlflow")
from mlflow.models import infer_signature  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IRIS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """A tracking store and registry in a temporary directory, found through MLFLOW_TRACKING_URI as any MLflow
    user's is: 'diabetes' version 1 (a scikit-learn pipeline over numbers and text, alias champion, metrics).
    One for the module: creating the sqlite store takes seconds; the tests register models of other names."""
    tmp_path = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
        monkeypatch.chdir(tmp_path)  # MLflow's default artifact root is relative: keep it out of the checkout
        yield _register(tmp_path)


def _register(tmp_path: Path) -> dict:
    X, _ = trained.diabetes_mixed()
    model = trained.mixed_pipeline()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's and SQLAlchemy's deprecation chatter
        experiment = mlflow.create_experiment("pgml", artifact_location=(tmp_path / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment) as run:
            mlflow.log_metric("rmse", 53.5)
            mlflow.log_metric("r2", 0.51)
            mlflow.log_text("trained on the diabetes data", "notes/readme.txt")  # an artifact that is no model
            mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict(X)),
                                     registered_model_name="diabetes", pip_requirements=[])
        mlflow.MlflowClient().set_registered_model_alias("diabetes", "champion", 1)
    return {"run_id": run.info.run_id, "experiment": experiment, "model": model, "X": X,
            "tmp": tmp_path}


def _versions(conn) -> list[tuple]:
    return conn.execute("SELECT version, source_uri, mlflow_version, metrics, feature_names "
                        "FROM pgml_trigger.model_versions ORDER BY version").fetchall()


def _by_column_name(conn, name: str, frame: pd.DataFrame, function: str = "predict") -> list:
    from tables import load_table

    load_table(conn, "rows", frame)
    return [value for (value,) in conn.execute(
        f"SELECT pgml_trigger.{function}(%s, to_jsonb(r)) FROM rows AS r ORDER BY id", [name])]


def test_upload_by_alias_scores_by_column_name_and_records_where_from(conn, registry):
    X, model = registry["X"], registry["model"]
    assert upload(conn, "diabetes", "models:/diabetes@champion", alias="production") == 1
    assert _versions(conn) == [
        (1, "models:/diabetes/1", mlflow.__version__, {"rmse": 53.5, "r2": 0.51}, list(X.columns))]
    assert conn.execute("SELECT feature_types FROM pgml_trigger.models").fetchone()[0] == [
        "number"] * 5 + ["string"] * 2  # the signature's column types
    got = _by_column_name(conn, "diabetes", X)
    assert np.allclose(got, model.predict(X), rtol=RTOL, atol=ATOL)


def test_upload_by_version_run_and_directory(conn, registry):
    X, model, run_id = registry["X"], registry["model"], registry["run_id"]
    directory = registry["tmp"] / "saved"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow.sklearn.save_model(model, str(directory), signature=infer_signature(X, model.predict(X)),
                                  pip_requirements=[])
    upload(conn, "diabetes", "models:/diabetes/latest")
    upload(conn, "diabetes", f"runs:/{run_id}/model", metrics={"rmse": 50.0, "checked_by": 1.0})
    upload(conn, "diabetes", directory)
    upload(conn, "diabetes", str(directory / "MLmodel"))
    metrics = {"rmse": 53.5, "r2": 0.51}
    assert [row[:4] for row in _versions(conn)] == [
        (1, "models:/diabetes/1", mlflow.__version__, metrics),
        (2, f"runs:/{run_id}/model", mlflow.__version__, {**metrics, "rmse": 50.0, "checked_by": 1.0}),
        (3, str(directory.resolve()), mlflow.__version__, None),  # a directory is read without the tracking server
        (4, str(directory.resolve()), mlflow.__version__, None)]
    got = _by_column_name(conn, "diabetes@3", X)
    assert np.allclose(got, model.predict(X), rtol=RTOL, atol=ATOL)


def test_onnx_flavor_with_a_zipmap_and_the_signature_naming_the_columns(conn, registry):
    model, data = trained.iris_text_labels()
    frame = pd.DataFrame(data, columns=IRIS)
    graph = to_onnx(model, data.astype(np.float32))  # skl2onnx's default export: labels and a ZipMap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run(experiment_id=registry["experiment"]) as run:
            mlflow.log_metric("accuracy", 0.97)
            mlflow.onnx.log_model(graph, name="iris", signature=infer_signature(frame, model.predict(data)),
                                  registered_model_name="iris", pip_requirements=[])
    upload(conn, "iris", "models:/iris/1")
    assert conn.execute("SELECT format, feature_names, metrics, source_uri FROM pgml_trigger.model_versions"
                        ).fetchone() == ("onnx", IRIS, {"accuracy": 0.97}, "models:/iris/1")
    assert _by_column_name(conn, "iris", frame, "predict_label") == list(model.predict(data))
    upload(conn, "iris", f"runs:/{run.info.run_id}/iris")  # the same model, by the run that logged it
    assert conn.execute("SELECT array_agg(source_uri ORDER BY version), count(DISTINCT sha256) "
                        "FROM pgml_trigger.model_versions").fetchone() == (
        ["models:/iris/1", f"runs:/{run.info.run_id}/iris"], 1)
    assert [label for (label,) in conn.execute("SELECT pgml_trigger.predict_label('iris@2', to_jsonb(r)) "
                                               "FROM rows AS r ORDER BY id")] == list(model.predict(data))


def test_xgboost_flavor_uploads_and_scores_by_column_name(conn, registry):
    """MLflow's xgboost flavor gives the XGBoost model itself, with the signature's names; it uploads like any
    XGBoost model (compiled to ONNX at upload, pgml_trigger/uploader/frameworks/xgboost.py)."""
    import xgboost

    _, data = trained.iris_text_labels()
    frame = pd.DataFrame(data, columns=IRIS)
    target = np.arange(len(frame)) % 3
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(frame.to_numpy(), target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with mlflow.start_run(experiment_id=registry["experiment"]):
            mlflow.xgboost.log_model(model, name="xgb", signature=infer_signature(frame, target),
                                     registered_model_name="xgb", pip_requirements=[])
    source = mlflow_source.resolve("models:/xgb/1")
    assert (type(source.model), source.flavor, source.feature_names) == (xgboost.XGBClassifier, "xgboost", IRIS)
    upload(conn, "xgb", "models:/xgb/1")
    assert conn.execute("SELECT source_uri, library_versions FROM pgml_trigger.model_versions").fetchone() == (
        "models:/xgb/1", {"xgboost": xgboost.__version__})
    assert _by_column_name(conn, "xgb", frame, "predict") == [float(label) for label in model.predict(frame)]


def test_cli_uploads_an_mlflow_uri(conn, dsn, registry):
    done = subprocess.run([sys.executable, "-m", "pgml_trigger", "upload", "models:/diabetes@champion",
                           "--name", "diabetes", "--alias", "production", "--dsn", dsn],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "uploaded diabetes@1 (alias production)"
    assert _versions(conn)[0][1] == "models:/diabetes/1"


def test_what_cannot_be_read_is_refused_and_nothing_stored(conn, registry, monkeypatch):
    with pytest.raises(InvalidModel, match=r"MLflow cannot find models:/diabetes/7 \(tracking URI sqlite:"):
        upload(conn, "diabetes", "models:/diabetes/7")
    with pytest.raises(InvalidModel, match=rf"runs:/{registry['run_id']}/notes is no MLflow model"):
        upload(conn, "diabetes", f"runs:/{registry['run_id']}/notes")
    pyfunc = registry["tmp"] / "pyfunc"
    pyfunc.mkdir()
    (pyfunc / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: churn.scoring\n")
    with pytest.raises(InvalidModel, match=r"has the flavors python_function; pgml_trigger uploads onnx, sklearn, "
                                           r"xgboost, lightgbm, catboost"):
        upload(conn, "diabetes", pyfunc)
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if MLflow were not installed
    with pytest.raises(MissingExtra, match="reading MLflow models needs MLflow") as caught:
        upload(conn, "diabetes", "models:/diabetes@champion")
    assert caught.value.hint == "pip install 'pgml_trigger[mlflow]'"
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models").fetchone()[0] == 0


def test_a_run_whose_metrics_cannot_be_read_still_uploads_with_a_warning(conn, registry, monkeypatch):
    def refuse(self, run_id):
        raise mlflow.exceptions.MlflowException(f"Run '{run_id}' not found")

    monkeypatch.setattr(mlflow.MlflowClient, "get_run", refuse)
    with pytest.warns(UserWarning, match=r"the metrics of models:/diabetes/1's run were not read: Run '\w+' not found"):
        upload(conn, "diabetes", "models:/diabetes/1")
    assert [row[:4] for row in _versions(conn)] == [(1, "models:/diabetes/1", mlflow.__version__, None)]

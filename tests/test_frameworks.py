"""XGBoost, LightGBM and CatBoost models (pgml_trigger/uploader/frameworks/), and uploads the server cannot score.

Each model is scored in the database every way there is (predict, predict_label, predict_proba,
predict_batch, row and statement triggers) and compared with the library's own predictions: the same
labels, and values and probabilities within compile.py's RTOL/ATOL (the tolerance the agreement check
holds the ONNX graph to) where the compiled graph scores, to 1e-12 where the library itself does.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import psycopg
import pytest
import trained
from psycopg import sql
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from tables import copy_rows, create_table, load_table

from pgml_trigger import upload
from pgml_trigger.admin.install import model_libraries
from pgml_trigger.cli import build_parser
from pgml_trigger.errors import InvalidModel, UploadRefused
from pgml_trigger.libraries import MODEL_LIBRARIES
from pgml_trigger.uploader import frameworks
from pgml_trigger.uploader.compile import ATOL, RTOL

xgboost = pytest.importorskip("xgboost")
lightgbm = pytest.importorskip("lightgbm")
catboost = pytest.importorskip("catboost")


def double(x):
    """User code in a pipeline: a module only the uploader has (this test file) is needed to unpickle it."""
    return 2 * x


@dataclass
class Case:
    model: object  # what is uploaded
    X: object  # the rows, a DataFrame with the feature columns
    labels: np.ndarray  # the library's own predictions: class labels, or regression values
    proba: np.ndarray | None  # and class probabilities
    library: str
    scoring_path: str  # where the server scores it: "onnx" (compiled) or "sklearn" (the library itself)
    options: dict


def _xgb_booster():
    X, _, _ = trained.iris_frame()
    booster = trained.xgb_booster_iris()
    proba = booster.predict(xgboost.DMatrix(X))
    return Case(booster, X, np.asarray(trained.IRIS_NAMES)[proba.argmax(axis=1)], proba, "xgboost", "onnx",
                {"classes": trained.IRIS_NAMES})


def _lgbm_booster():
    X, _ = trained.breast_cancer()
    booster = trained.lgbm_booster_breast_cancer()
    positive = booster.predict(X.to_numpy())
    return Case(booster, X, (positive > 0.5).astype(int), np.column_stack([1 - positive, positive]), "lightgbm",
                "onnx", {"feature_names": list(X.columns)})


def _catboost_native():
    X, _ = trained.breast_cancer()
    model = trained.catboost_native_breast_cancer()
    proba = model.predict(X, prediction_type="Probability")
    return Case(model, X, np.asarray(model.classes_)[proba.argmax(axis=1)], proba, "catboost", "onnx", {})


def _estimator(make_model, data, library, scoring_path, **options):
    def case():
        model = make_model()
        X = data()[0]
        proba = model.predict_proba(X) if hasattr(model, "predict_proba") else None
        return Case(model, X, np.ravel(model.predict(X)), proba, library, scoring_path, options)

    return case


CASES = {
    "xgboost-binary": _estimator(trained.xgb_classifier, trained.breast_cancer, "xgboost", "onnx"),
    "xgboost-regressor": _estimator(trained.xgb_regressor, trained.diabetes, "xgboost", "onnx"),
    "xgboost-booster-text-labels": _xgb_booster,
    # The graph scales in float32 and disagrees near split thresholds: the server runs xgboost itself.
    "xgboost-pipeline-native": _estimator(trained.xgb_scaled_pipeline, trained.iris_frame, "xgboost", "sklearn"),
    "lightgbm-multiclass-text-labels": _estimator(trained.lgbm_iris_text_labels, trained.iris_frame, "lightgbm",
                                                  "onnx"),
    "lightgbm-pipeline-regressor": _estimator(trained.lgbm_pipeline_regressor, trained.diabetes, "lightgbm", "onnx"),
    "lightgbm-columntransformer-text-features": _estimator(trained.lgbm_mixed_pipeline, trained.diabetes_mixed,
                                                           "lightgbm", "onnx"),
    "lightgbm-booster-binary": _lgbm_booster,
    "catboost-multiclass-text-labels": _estimator(trained.catboost_iris_text_labels, trained.iris_frame,
                                                  "catboost", "onnx"),
    "catboost-regressor": _estimator(trained.catboost_regressor, trained.diabetes, "catboost", "onnx"),
    "catboost-native-binary": _catboost_native,
    "catboost-pipeline": _estimator(trained.catboost_pipeline, trained.iris_frame, "catboost", "onnx"),
    # compile=False: the server unpickles the pipeline and calls catboost itself.
    "catboost-pipeline-native": _estimator(trained.catboost_pipeline, trained.iris_frame, "catboost", "sklearn",
                                           compile=False),
}


@pytest.mark.parametrize("make_case", CASES.values(), ids=CASES.keys())
def test_models_score_like_their_library(conn, make_case):
    case = make_case()
    upload(conn, "m", case.model, sample=case.X, **case.options)
    assert conn.execute("SELECT scoring_path, library_versions FROM pgml_trigger.model_versions").fetchone() == (
        case.scoring_path, {case.library: metadata.version(case.library)})
    classifier = case.proba is not None
    numeric = not classifier or all(isinstance(label, (int, np.integer)) for label in case.labels)
    rtol, atol = (RTOL, ATOL) if case.scoring_path == "onnx" else (1e-12, 1e-12)
    load_table(conn, "t", case.X)
    if classifier:
        got = conn.execute("SELECT pgml_trigger.predict_label('m', to_jsonb(t)), pgml_trigger.predict_proba('m', "
                           "to_jsonb(t)) FROM t ORDER BY id").fetchall()
        assert [label for label, _ in got] == [str(label) for label in case.labels]
        assert np.allclose([proba for _, proba in got], case.proba, rtol=rtol, atol=atol)
    if numeric:
        got = [value for (value,) in conn.execute("SELECT pgml_trigger.predict('m', to_jsonb(t)) FROM t ORDER BY id")]
        if all(kind in "biuf" for kind in case.X.dtypes.map(lambda dtype: dtype.kind)):
            batch = conn.execute("SELECT pgml_trigger.predict_batch('m', %s::float8[][])",
                                 [case.X.to_numpy(dtype=float).tolist()]).fetchone()[0]
        else:
            batch = conn.execute("SELECT pgml_trigger.predict_batch('m', array_agg(to_jsonb(t) ORDER BY id)) "
                                 "FROM t").fetchone()[0]
        for values in (got, batch):
            if classifier:
                assert values == case.labels.astype(float).tolist()
            else:
                assert np.allclose(values, case.labels, rtol=rtol, atol=atol)

    create_table(conn, "scored", case.X, extra={"out": "double precision" if numeric else "text"})
    conn.execute("SELECT pgml_trigger.attach('scored', 'm', 'out')")
    copy_rows(conn, "scored", case.X)
    by_row = [out for (out,) in conn.execute("SELECT out FROM scored ORDER BY id")]
    # A statement trigger scores the rows in one batch and writes the prediction log.
    create_table(conn, "appended", case.X)
    conn.execute("SELECT pgml_trigger.attach('appended', 'm', 'out', mode => 'statement')")
    copy_rows(conn, "appended", case.X)
    by_statement = [label if prediction is None else prediction for prediction, label in conn.execute(
        "SELECT prediction, label FROM pgml_trigger.prediction_log ORDER BY row_key::integer")]
    for scored in (by_row, by_statement):
        if not numeric:
            assert scored == [str(label) for label in case.labels]
        elif classifier:
            assert scored == case.labels.astype(float).tolist()
        else:
            assert np.allclose(scored, case.labels, rtol=rtol, atol=atol)


def test_frameworks_are_found_by_the_library_of_the_last_step():
    assert frameworks.for_model(trained.xgb_scaled_pipeline()).name == "xgboost"
    assert frameworks.for_model(trained.lgbm_booster_breast_cancer()).name == "lightgbm"
    assert frameworks.for_model(trained.catboost_regressor()).name == "catboost"
    assert frameworks.for_model(trained.linear_breast_cancer()).name == "sklearn"
    assert tuple(framework.library for framework in frameworks.frameworks() if framework.library) == MODEL_LIBRARIES


def test_native_path_scores_with_the_library_in_the_server(conn):
    """compile=False: the joblib payload is unpickled in the server, whose environment has xgboost."""
    X, _ = trained.breast_cancer()
    model = trained.xgb_classifier()
    upload(conn, "native", model, compile=False)
    assert conn.execute("SELECT format, scoring_path, library_versions FROM pgml_trigger.models").fetchone() == (
        "joblib", "sklearn", {"xgboost": xgboost.__version__})
    load_table(conn, "t", X)
    got = conn.execute("SELECT pgml_trigger.predict_proba('native', to_jsonb(t)) FROM t ORDER BY id").fetchall()
    assert np.allclose([proba for (proba,) in got], model.predict_proba(X), rtol=1e-12, atol=1e-12)
    assert conn.execute("SELECT pgml_trigger.loaded_scoring_path('native')").fetchone()[0] == "sklearn"


def test_native_boosters_refuse_what_they_cannot_describe(conn):
    X, y = trained.breast_cancer()
    ranker = xgboost.train({"objective": "rank:pairwise"}, xgboost.DMatrix(X, label=y, group=[len(X)]), 2)
    with pytest.raises(InvalidModel, match="objective rank:pairwise"):
        upload(conn, "ranker", ranker)
    with pytest.raises(InvalidModel, match="names 2 classes; the xgboost.Booster .* has 3"):
        upload(conn, "iris", trained.xgb_booster_iris(), classes=["a", "b"])
    with pytest.raises(InvalidModel, match=r"types the server does not load from skops: .*xgboost"):
        upload(conn, "skops", trained.xgb_classifier(), format="skops")
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models").fetchone()[0] == 0


def test_upload_of_a_pickle_needing_a_module_only_the_uploader_has_is_refused(conn):
    X, y = trained.diabetes()
    model = make_pipeline(FunctionTransformer(double), Ridge()).fit(X, y)
    with pytest.raises(UploadRefused, match=r"upload of custom refused: .*No module named 'test_frameworks'") as caught:
        upload(conn, "custom", model, sample=X)
    assert caught.value.sqlstate == "55000"
    assert not caught.value.message.startswith("pgml_trigger.") and "Error:" not in caught.value.message
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models").fetchone()[0] == 0


@pytest.fixture
def without_xgboost(installed):
    """A copy of the server's site-packages (symlinks) without xgboost: an environment that lacks the library."""
    source = Path(installed.python_path)
    if not (source / "xgboost").is_dir():
        pytest.skip("the server's environment has no xgboost to leave out")
    target = Path(tempfile.mkdtemp(prefix="pgml_trigger-no-xgboost-", dir="/var/tmp"))
    os.chmod(target, 0o755)
    for entry in source.iterdir():
        if not entry.name.lower().startswith("xgboost"):
            (target / entry.name).symlink_to(entry)
    yield str(target)
    shutil.rmtree(target)


def _use_python_path(conn, path: str) -> None:
    conn.execute(sql.SQL("ALTER DATABASE {} SET pgml_trigger.python_path = {}").format(
        sql.Identifier(conn.info.dbname), sql.Literal(path)))


def test_server_without_the_library_refuses_the_upload_and_doctor_names_it(conn, connect, installed,
                                                                            without_xgboost):
    X, _ = trained.breast_cancer()
    model = trained.xgb_classifier()
    upload(conn, "stored_before", model, compile=False)  # while the server still has xgboost
    _use_python_path(conn, without_xgboost)
    session = connect()  # a new backend reads the new setting
    with pytest.raises(UploadRefused, match=r"this server cannot score the new version: model xgb@1 needs the "
                                            r"Python package xgboost \(saved with [0-9.]+\), which this server's "
                                            "environment lacks") as caught:
        upload(session, "xgb", model, compile=False)
    assert caught.value.sqlstate == "55000" and "--with xgboost" in caught.value.hint
    assert session.execute("SELECT count(*) FROM pgml_trigger.models WHERE name = 'xgb'").fetchone()[0] == 0

    # Compiled, the same model needs no xgboost in the server: onnxruntime scores it.
    upload(session, "xgb", model, sample=X)
    assert session.execute("SELECT pgml_trigger.predict('xgb', %s::float8[])",
                           [list(X.iloc[0])]).fetchone()[0] == float(model.predict(X.iloc[[0]])[0])

    doctor = session.execute("SELECT name, version, scoring_path, loads, error, verdict FROM pgml_trigger.doctor() "
                             "ORDER BY name").fetchall()
    assert doctor[0][:4] == ("stored_before", 1, None, False) and doctor[0][5] == "will not load"
    assert "needs the Python package xgboost" in doctor[0][4]
    assert doctor[1] == ("xgb", 1, "onnx", True, None, "ok")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="stored_before@1 needs the Python package "
                                                                          "xgboost"):
        session.execute("SELECT pgml_trigger.predict('stored_before', %s::float8[])", [list(X.iloc[0])])


def _set_library_versions(conn, name: str, versions: str) -> None:
    conn.execute("SET session_replication_role = replica")  # past the immutability trigger: another library's row
    conn.execute("UPDATE pgml_trigger.models SET library_versions = %s::jsonb WHERE name = %s", [versions, name])
    conn.execute("RESET session_replication_role")


def test_library_versions_are_compared_at_load_like_scikit_learns(conn, connect):
    X, _ = trained.diabetes()
    model = trained.xgb_regressor()
    upload(conn, "old", model, compile=False)
    _set_library_versions(conn, "old", '{"xgboost": "0.90"}')
    upload(conn, "gone", trained.diabetes_ridge(), compile=False)
    _set_library_versions(conn, "gone", '{"nosuchlibrary": "1.0"}')

    session = connect()
    seen = []
    session.add_notice_handler(lambda notice: seen.append(notice.message_primary))
    got = session.execute("SELECT pgml_trigger.predict('old', %s::float8[])", [list(X.iloc[0])]).fetchone()[0]
    assert got == float(model.predict(X.iloc[[0]])[0])
    assert seen == [f"pgml_trigger: model old@1 was saved with xgboost 0.90; this server has {xgboost.__version__}; "
                    "its predictions may differ from the ones checked at upload"]
    doctor = dict(session.execute("SELECT name, verdict FROM pgml_trigger.doctor()").fetchall())
    assert doctor["old"] == f"loads under xgboost {xgboost.__version__}, saved with 0.90: predictions may differ"
    assert doctor["gone"] == "will not load"

    conn.execute(sql.SQL("ALTER DATABASE {} SET pgml_trigger.strict_versions = on").format(
        sql.Identifier(conn.info.dbname)))
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="saved with xgboost 0.90; this server "
                                                                          "has .*; refusing"):
        connect().execute("SELECT pgml_trigger.predict('old', %s::float8[])", [list(X.iloc[0])])


def test_the_installer_puts_the_model_libraries_of_this_python_into_the_server(installed):
    assert model_libraries(None) == ["xgboost", "lightgbm", "catboost"]
    assert model_libraries(["lightgbm", "lightgbm"]) == ["lightgbm"]
    with pytest.raises(Exception, match="knows the model libraries xgboost, lightgbm, catboost"):
        model_libraries(["tensorflow"])
    assert build_parser().parse_args(["install", "--with", "xgboost, lightgbm"]).with_libraries == ["xgboost",
                                                                                                   "lightgbm"]
    assert build_parser().parse_args(["install", "--with", ""]).with_libraries == []
    assert build_parser().parse_args(["install"]).with_libraries is None
    if installed.python_path.startswith("/opt/pgml_trigger/site-packages"):
        pytest.skip("the test image's environment is built by its Dockerfile")
    found = {dist.metadata["Name"].lower(): dist.version
             for dist in metadata.distributions(path=[installed.python_path])}
    for library in ("xgboost", "lightgbm", "catboost"):
        assert found[library] == metadata.version(library)  # pinned to the installing Python's version

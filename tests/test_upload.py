"""The uploader: what it stores, what it refuses, and the CLI."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys

import joblib
import numpy
import pytest
import sklearn
import trained
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression

from pgml_trigger import formats, upload
from pgml_trigger.errors import InvalidModel, ModelTooLarge


def test_versions_count_up_per_name(conn):
    model = trained.diabetes_ridge()
    assert [upload(conn, "a", model), upload(conn, "a", model), upload(conn, "b", model)] == [1, 2, 1]


def test_stored_row_describes_the_model(conn):
    model = trained.linear_breast_cancer()
    upload(conn, "bc", model, description="first try")
    row = conn.execute("SELECT format, sha256, encode(sha256(payload), 'hex'), task, classes, feature_names, "
                       "python_version, sklearn_version, numpy_version, joblib_version, description, created_by, "
                       "created_at <= now() FROM pgml_trigger.models").fetchone()
    X, _ = trained.breast_cancer()
    assert row == ("joblib", row[2], row[1], "classification", [0, 1], list(X.columns), platform.python_version(),
                   sklearn.__version__, numpy.__version__, joblib.__version__, "first try", conn.info.user, True)


def test_payload_round_trips_to_the_same_model(conn):
    model = trained.forest_breast_cancer()
    upload(conn, "rf", model)
    payload = conn.execute("SELECT payload FROM pgml_trigger.models").fetchone()[0]
    X, _ = trained.breast_cancer()
    import io

    assert (joblib.load(io.BytesIO(payload)).predict_proba(X) == model.predict_proba(X)).all()


def test_accepts_a_conninfo_string(dsn, conn):
    assert upload(dsn, "reg", trained.diabetes_ridge()) == 1
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models").fetchone()[0] == 1


def test_feature_names_for_array_models(conn):
    model, _ = trained.iris_text_labels()
    upload(conn, "iris", model)
    upload(conn, "iris", model, feature_names=["sl", "sw", "pl", "pw"])
    assert conn.execute("SELECT feature_names FROM pgml_trigger.models ORDER BY version").fetchall() == [
        (["x0", "x1", "x2", "x3"],), (["sl", "sw", "pl", "pw"],)]


@pytest.mark.parametrize("thing, message", [
    (object(), r"has no predict\(\) method"),
    (LogisticRegression(), "is not fitted"),
    (KMeans(n_clusters=2, n_init=1).fit([[0.0], [1.0], [2.0]]), "neither a classifier nor a regressor"),
])
def test_refuses_what_cannot_be_scored(conn, thing, message):
    with pytest.raises(InvalidModel, match=message):
        upload(conn, "x", thing)
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models").fetchone()[0] == 0


def test_refuses_wrong_feature_names_and_bad_model_names(conn):
    with pytest.raises(InvalidModel, match="has 2 names but"):
        upload(conn, "iris", trained.iris_text_labels()[0], feature_names=["a", "b"])
    with pytest.raises(InvalidModel, match="differ from the names"):
        upload(conn, "bc", trained.linear_breast_cancer(), feature_names=["a"] * 30)
    with pytest.raises(InvalidModel, match="invalid model name"):
        upload(conn, "churn@2", trained.diabetes_ridge())


def test_server_refuses_a_payload_that_does_not_match_its_checksum(conn):
    payload = b"not what was hashed"
    with pytest.raises(Exception) as caught:
        conn.execute("INSERT INTO pgml_trigger.models (name, version, format, payload, sha256, task, feature_names, "
                     "feature_types, feature_inputs, input_kind, python_version, sklearn_version, numpy_version, "
                     "joblib_version) VALUES ('x', 0, 'joblib', %s, %s, 'regression', '{a}', '{number}', '[{}]', "
                     "'array', '3', '1', '1', '1')", [payload, hashlib.sha256(b"other").hexdigest()])
    assert caught.value.sqlstate == "XX001"


def test_model_rows_are_immutable_but_for_description(conn):
    upload(conn, "reg", trained.diabetes_ridge())
    conn.execute("UPDATE pgml_trigger.models SET description = 'ok'")
    with pytest.raises(Exception, match="cannot be changed") as caught:
        conn.execute("UPDATE pgml_trigger.models SET payload = 'x'::bytea")
    assert caught.value.sqlstate == "55000"


def test_cli_uploads_a_saved_file(tmp_path, dsn, conn):
    path = tmp_path / "model.joblib"
    joblib.dump(trained.diabetes_ridge(), path)
    done = subprocess.run([sys.executable, "-m", "pgml_trigger", "upload", str(path), "--name", "diabetes",
                           "--alias", "production", "--dsn", dsn], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "uploaded diabetes@1 (alias production)"
    # Each stage as it ends, on stderr: a big model's upload takes minutes, and this says where they go.
    stages = [line.strip().split(":")[0] for line in done.stderr.splitlines() if line.startswith("  ")]
    assert stages == ["describe", "serialize", "compile", "linear form", "explainer", "send", "server check",
                      "commit"]
    assert conn.execute("SELECT name, alias, version FROM pgml_trigger.aliases").fetchall() == [
        ("diabetes", "production", 1)]
    text = tmp_path / "model.txt"
    text.write_text("x")
    refused = subprocess.run([sys.executable, "-m", "pgml_trigger", "upload", str(text), "--name", "d",
                              "--dsn", dsn], capture_output=True, text=True)
    assert refused.returncode == 2 and "not a .joblib, .pkl, .skops or .onnx file" in refused.stderr


def test_progress_reports_each_stage_with_the_bytes_it_made_or_moved(conn, caplog):
    model = trained.forest_breast_cancer()
    X, _ = trained.breast_cancer()
    seen = []
    with caplog.at_level("INFO", logger="pgml_trigger.upload"):
        upload(conn, "forest", model, sample=X, progress=lambda stage, seconds, nbytes: seen.append(
            (stage, seconds, nbytes)))
    assert [stage for stage, _, _ in seen] == ["describe", "serialize", "compile", "linear form", "explainer",
                                               "send", "server check", "commit"]
    assert all(seconds >= 0 for _, seconds, _ in seen)
    payload, compiled = conn.execute("SELECT octet_length(payload), octet_length(compiled_payload) "
                                     "FROM pgml_trigger.models").fetchone()
    sizes = {stage: nbytes for stage, _, nbytes in seen}
    explainer = conn.execute("SELECT octet_length(explainer) FROM pgml_trigger.models").fetchone()[0]
    assert (sizes["serialize"], sizes["compile"], sizes["send"]) == (payload, compiled, payload + compiled)
    assert sizes["explainer"] == explainer
    assert sizes["describe"] is None
    assert [record.getMessage().split(": ")[1].split(" took")[0] for record in caplog.records] == [
        stage for stage, _, _ in seen]


def test_a_version_over_the_cap_is_refused_saying_what_to_do(conn, monkeypatch):
    model = trained.forest_breast_cancer()
    X, _ = trained.breast_cancer()
    monkeypatch.setattr(formats, "MAX_STORED_BYTES", 1000)  # as if this were a 300-tree forest
    with pytest.raises(ModelTooLarge, match=r"of joblib payload and [\d,]+ of compiled ONNX\); pgml_trigger "
                                            r"stores at most 1,000 bytes") as refused:
        upload(conn, "forest", model, sample=X)
    assert "compile=False" in refused.value.hint and "fewer trees" in refused.value.hint
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models").fetchone()[0] == 0

"""Model formats (joblib, skops, onnx), the DBA's allowed_formats policy, HMAC-signed payloads."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path

import joblib
import numpy as np
import psycopg
import pytest
import skops.io
import trained
from psycopg import sql
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from tables import load_table

from pgml_trigger import formats, upload
from pgml_trigger.admin.transfer import export_model, import_model
from pgml_trigger.errors import InvalidModel, UploadRefused
from pgml_trigger.uploader.compile import ATOL, RTOL


def _set_database(conn, setting: str, value: str) -> None:
    conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
        sql.Identifier(conn.info.dbname), sql.Identifier(*setting.split(".")), sql.Literal(value)))


def _bc_onnx(model, **options):
    X, _ = trained.breast_cancer()
    return to_onnx(model, initial_types=[("input", FloatTensorType([None, X.shape[1]]))],
                   options={"zipmap": False}, **options)


def double(x):
    """User code in a pipeline: what skops must refuse to load."""
    return 2 * x


# --- skops ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("make_model", [trained.forest_breast_cancer, trained.hgb_breast_cancer,
                                        trained.linear_breast_cancer])
def test_skops_models_score_like_the_offline_model(conn, make_model):
    model = make_model()
    X, _ = trained.breast_cancer()
    upload(conn, "bc", model, format="skops", compile=False)
    row = conn.execute("SELECT format, skops_version, scoring_path FROM pgml_trigger.models").fetchone()
    assert row == ("skops", skops.__version__, "sklearn")
    load_table(conn, "tumours", X)
    got = conn.execute("SELECT pgml_trigger.predict('bc', to_jsonb(t)), pgml_trigger.predict_proba('bc', to_jsonb(t)) "
                       "FROM tumours AS t ORDER BY id").fetchall()
    assert [value for value, _ in got] == model.predict(X).astype(float).tolist()
    assert np.allclose([proba for _, proba in got], model.predict_proba(X), rtol=1e-12, atol=1e-15)


def test_skops_refuses_types_outside_the_allow_list(conn):
    X, y = trained.diabetes()
    model = make_pipeline(FunctionTransformer(double), Ridge()).fit(X, y)
    with pytest.raises(InvalidModel, match=r"test_formats\.double"):
        upload(conn, "custom", model, format="skops")
    # Written past the uploader, the server refuses it at load, naming the type.
    upload(conn, "custom", trained.diabetes_ridge(), format="skops", compile=False)
    payload = skops.io.dumps(model)
    conn.execute("SET session_replication_role = replica")  # skip the immutability trigger: simulate tampering
    conn.execute("UPDATE pgml_trigger.models SET payload = %s, sha256 = encode(sha256(%s), 'hex')", [payload, payload])
    conn.execute("RESET session_replication_role")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"custom@1.*outside the allow-list.*double"):
        conn.execute("SELECT pgml_trigger.predict('custom', %s::float8[])", [list(X.iloc[0])])


# --- onnx ----------------------------------------------------------------------------------------------------

def test_onnx_classifier_scores_like_the_offline_model(conn):
    model = trained.forest_breast_cancer()
    X, _ = trained.breast_cancer()
    upload(conn, "bc", _bc_onnx(model), feature_names=list(X.columns))
    row = conn.execute("SELECT format, task, classes, feature_names, scoring_path, onnxruntime_version IS NOT NULL "
                       "FROM pgml_trigger.models").fetchone()
    assert row == ("onnx", "classification", [0, 1], list(X.columns), "onnx", True)
    load_table(conn, "tumours", X)
    got = conn.execute("SELECT pgml_trigger.predict('bc', to_jsonb(t)), pgml_trigger.predict_label('bc', to_jsonb(t)), "
                       "pgml_trigger.predict_proba('bc', to_jsonb(t)) FROM tumours AS t ORDER BY id").fetchall()
    assert [value for value, _, _ in got] == model.predict(X).astype(float).tolist()
    assert [label for _, label, _ in got] == [str(label) for label in model.predict(X)]
    assert np.allclose([proba for _, _, proba in got], model.predict_proba(X), rtol=RTOL, atol=ATOL)
    batch = conn.execute("SELECT pgml_trigger.predict_batch('bc', %s::float8[][])",
                         [X.to_numpy().tolist()]).fetchone()[0]
    assert batch == model.predict(X).astype(float).tolist()


@pytest.mark.parametrize("tensor", [FloatTensorType, DoubleTensorType])
def test_onnx_regressor_from_bytes_with_float_or_double_input(conn, tensor):
    model = trained.diabetes_ridge()
    X, _ = trained.diabetes()
    graph = to_onnx(model, initial_types=[("X", tensor([None, X.shape[1]]))])
    upload(conn, "diabetes", graph.SerializeToString(), feature_names=list(X.columns))
    load_table(conn, "patients", X)
    got = [value for (value,) in conn.execute(
        "SELECT pgml_trigger.predict('diabetes', to_jsonb(p)) FROM patients AS p ORDER BY id")]
    assert np.allclose(got, model.predict(X), rtol=RTOL if tensor is FloatTensorType else 1e-12, atol=1e-4)
    with pytest.raises(psycopg.errors.WrongObjectType):
        conn.execute("SELECT pgml_trigger.predict_proba('diabetes', to_jsonb(p)) FROM patients AS p LIMIT 1")


def test_onnx_graphs_pgml_trigger_cannot_score_are_refused_at_upload(conn):
    # Graphs of other shapes (a ZipMap, several inputs, images): tests/test_onnx_graphs.py.
    with pytest.raises(InvalidModel, match="has 2 names but the ONNX input takes 30"):
        upload(conn, "bc", _bc_onnx(trained.forest_breast_cancer()), feature_names=["a", "b"])
    with pytest.raises(InvalidModel, match="not an ONNX model"):
        upload(conn, "bc", b"certainly not protobuf")
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models").fetchone()[0] == 0


def test_cli_uploads_skops_and_onnx_files(tmp_path, dsn, conn):
    X, _ = trained.diabetes()
    model = trained.diabetes_ridge()
    skops.io.dump(model, tmp_path / "ridge.skops")
    (tmp_path / "ridge.onnx").write_bytes(
        to_onnx(model, initial_types=[("X", FloatTensorType([None, 10]))]).SerializeToString())
    joblib.dump(model, tmp_path / "ridge.joblib")
    for file, options in (("ridge.skops", []), ("ridge.onnx", []), ("ridge.joblib", ["--format", "skops"])):
        done = subprocess.run([sys.executable, "-m", "pgml_trigger", "upload", str(tmp_path / file), "--name", "ridge",
                               "--feature-names", ",".join(X.columns), *options, "--dsn", dsn],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    assert conn.execute("SELECT version, format FROM pgml_trigger.models ORDER BY version").fetchall() == [
        (1, "skops"), (2, "onnx"), (3, "skops")]
    expected = float(model.predict(X.iloc[[4]])[0])
    got = conn.execute("SELECT pgml_trigger.predict('ridge@1', %(r)s::float8[]), "
                       "pgml_trigger.predict('ridge@2', %(r)s::float8[])", {"r": list(X.iloc[4])}).fetchone()
    assert got[0] == expected and got[1] == pytest.approx(expected, rel=RTOL, abs=1e-4)


def test_export_and_import_keep_every_format(tmp_path, conn):
    X, _ = trained.diabetes()
    model = trained.diabetes_ridge()
    upload(conn, "joblib", model, sample=X)
    upload(conn, "skops", model, format="skops")
    upload(conn, "onnx", to_onnx(model, initial_types=[("X", FloatTensorType([None, 10]))]),
           feature_names=list(X.columns))
    row = list(X.iloc[7])
    for name in ("joblib", "skops", "onnx"):
        export_model(conn, name, tmp_path / f"{name}.json.gz")
        assert import_model(conn, tmp_path / f"{name}.json.gz") == (name, 1, 2)
        original, imported = conn.execute("SELECT pgml_trigger.predict(%(m)s || '@1', %(r)s::float8[]), "
                                          "pgml_trigger.predict(%(m)s || '@2', %(r)s::float8[])",
                                          {"m": name, "r": row}).fetchone()
        assert imported == original == pytest.approx(float(model.predict(X.iloc[[7]])[0]), rel=RTOL, abs=1e-4)
    assert conn.execute("SELECT format, scoring_path FROM pgml_trigger.models WHERE version = 2 ORDER BY name"
                        ).fetchall() == [("joblib", "onnx"), ("onnx", "onnx"), ("skops", "sklearn")]


# --- pgml_trigger.allowed_formats ----------------------------------------------------------------------------

def test_a_hardened_database_loads_only_onnx_and_skops(conn, connect):
    X, _ = trained.diabetes()
    model = trained.diabetes_ridge()
    upload(conn, "pickled", model, compile=False)
    upload(conn, "safe", model, format="skops", compile=False)
    upload(conn, "graph", to_onnx(model, initial_types=[("X", FloatTensorType([None, 10]))]),
           feature_names=list(X.columns))
    _set_database(conn, "pgml_trigger.allowed_formats", "onnx,skops")
    session = connect()
    row = list(X.iloc[2])
    expected = float(model.predict(X.iloc[[2]])[0])
    assert session.execute("SELECT pgml_trigger.predict('safe', %s::float8[])", [row]).fetchone()[0] == expected
    assert session.execute("SELECT pgml_trigger.predict('graph', %s::float8[])", [row]).fetchone()[0] == pytest.approx(
        expected, rel=RTOL, abs=1e-4)
    message = r"model pickled@1 cannot be loaded: its payload is joblib.*pgml_trigger.allowed_formats = 'onnx,skops'"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=message):
        session.execute("SELECT pgml_trigger.predict('pickled', %s::float8[])", [row])
    session.execute("SET pgml_trigger.allowed_formats = 'joblib'")  # a session cannot loosen the DBA's policy
    assert session.execute("SHOW pgml_trigger.allowed_formats").fetchone()[0] == "joblib"
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=message):
        session.execute("SELECT pgml_trigger.predict('pickled', %s::float8[])", [row])
    assert conn.execute("SELECT name, allowed, loads FROM pgml_trigger.doctor()").fetchall() == [
        ("graph", True, True), ("pickled", False, False), ("safe", True, True)]


def test_a_compiled_joblib_model_scores_on_onnx_but_never_unpickles(conn, connect):
    """Forest graphs send missing values elsewhere than scikit-learn: those rows would need the pickle."""
    model = trained.forest_breast_cancer()
    X, _ = trained.breast_cancer()
    upload(conn, "bc", model, sample=X)
    assert conn.execute("SELECT scoring_path, compiled_handles_nan FROM pgml_trigger.models").fetchone() == (
        "onnx", False)
    _set_database(conn, "pgml_trigger.allowed_formats", "onnx")
    session = connect()
    complete = list(X.iloc[0])
    assert session.execute("SELECT pgml_trigger.predict('bc', %s::float8[])", [complete]).fetchone()[0] == float(
        model.predict(X.iloc[[0]])[0])
    gap = [None] + complete[1:]
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"bc@1 cannot be loaded: its payload .*is joblib"):
        session.execute("SELECT pgml_trigger.predict('bc', %s::float8[])", [gap])
    assert session.execute("SELECT name, version, sha256 IS NOT NULL, loads FROM pgml_trigger.cache_info()"
                           ).fetchall() == [("bc", 1, True, 1)]
    assert conn.execute("SELECT allowed, loads, verdict FROM pgml_trigger.doctor()").fetchone() == (
        True, True, "ok, on ONNX; rows with a missing value are refused (joblib is not allowed)")


# --- HMAC ----------------------------------------------------------------------------------------------------

@pytest.fixture
def key_file(server):
    """A key file only the server's OS user (postgres) can read, as a DBA would set it up."""
    if server["kind"] == "testcontainers":
        pytest.skip("the key file must be on the database host")
    directory = Path(tempfile.mkdtemp(prefix="pgml_trigger-key-", dir="/var/tmp"))
    directory.chmod(0o755)
    path = directory / "hmac.key"
    path.write_bytes(os.urandom(32).hex().encode() + b"\n")
    path.chmod(0o600)
    postgres = pwd.getpwnam("postgres")
    os.chown(path, postgres.pw_uid, postgres.pw_gid)
    yield path
    path.unlink()
    directory.rmdir()


def test_with_a_key_configured_only_signed_payloads_load(conn, key_file, monkeypatch):
    X, _ = trained.diabetes()
    model = trained.diabetes_ridge()
    key = key_file.read_bytes().rstrip(b"\n")
    upload(conn, "early", model, sample=X)  # before the DBA configured the key: no HMAC
    _set_database(conn, "pgml_trigger.hmac_key_file", str(key_file))
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match='model "late" has no payload_hmac'):
        upload(conn, "late", model)
    upload(conn, "signed", model, sample=X, hmac_key=key)
    # The server checks the HMAC of a new version before the upload commits (uploader.py), so a wrong key
    # never gets a row stored.
    with pytest.raises(UploadRefused, match="model forged@1 has an HMAC that does not match") as refused:
        upload(conn, "forged", model, hmac_key=b"not the key")
    assert refused.value.sqlstate == "XX001"
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models WHERE name = 'forged'").fetchone()[0] == 0
    row = list(X.iloc[1])
    expected = float(model.predict(X.iloc[[1]])[0])
    assert conn.execute("SELECT pgml_trigger.predict('signed', %s::float8[])", [row]).fetchone()[0] == pytest.approx(
        expected, rel=RTOL, abs=1e-4)
    with pytest.raises(psycopg.errors.DataCorrupted, match="model early@1 has no HMAC"):
        conn.execute("SELECT pgml_trigger.predict('early', %s::float8[])", [row])
    monkeypatch.setenv("PGML_TRIGGER_HMAC_KEY_FILE", str(key_file))  # the uploader reads the key file named here
    assert upload(conn, "from_env", model, format="skops") == 1
    assert conn.execute("SELECT pgml_trigger.predict('from_env', %s::float8[])", [row]).fetchone()[0] == expected


def test_an_unreadable_key_file_refuses_every_load(conn):
    X, _ = trained.diabetes()
    upload(conn, "reg", trained.diabetes_ridge())
    _set_database(conn, "pgml_trigger.hmac_key_file", "/nonexistent/pgml_trigger.key")
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="reg@1: pgml_trigger.hmac_key_file"):
        conn.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [list(X.iloc[0])])


# --- compressed payloads -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, compression", [("joblib", "zlib"), ("skops", "deflate")])
def test_a_payload_over_the_threshold_is_stored_compressed_signed_and_scores_like_the_offline_model(
        conn, key_file, monkeypatch, fmt, compression):
    """The server loads a compressed payload as it is (joblib.load and skops.io.loads read their own
    compression), after checking the sha256 and HMAC of the stored bytes."""
    model = trained.forest_breast_cancer()
    X, _ = trained.breast_cancer()
    plain = len(formats.dump(model, fmt))
    monkeypatch.setattr(formats, "COMPRESS_ABOVE", plain - 1)  # this model is the big one
    _set_database(conn, "pgml_trigger.hmac_key_file", str(key_file))
    upload(conn, "bc", model, format=fmt, compile=False, hmac_key=key_file.read_bytes().rstrip(b"\n"))
    stored, intact = conn.execute("SELECT payload, sha256 = encode(sha256(payload), 'hex') FROM pgml_trigger.models"
                                  ).fetchone()
    assert formats.compression(stored, fmt) == compression and len(stored) < plain / 2 and intact
    load_table(conn, "tumours", X)
    got = conn.execute("SELECT pgml_trigger.predict('bc', to_jsonb(t)), pgml_trigger.predict_proba('bc', to_jsonb(t)) "
                       "FROM tumours AS t ORDER BY id").fetchall()
    assert [value for value, _ in got] == model.predict(X).astype(float).tolist()
    assert [proba for _, proba in got] == model.predict_proba(X).tolist()
    assert conn.execute("SELECT scoring_path, verdict FROM pgml_trigger.doctor()").fetchone() == ("sklearn", "ok")


def test_a_small_payload_is_stored_as_it_is_and_compression_keeps_the_skops_allow_list(conn, monkeypatch):
    upload(conn, "small", trained.diabetes_ridge(), compile=False)
    assert formats.compression(conn.execute("SELECT payload FROM pgml_trigger.models").fetchone()[0], "joblib") is None
    monkeypatch.setattr(formats, "COMPRESS_ABOVE", 0)
    X, y = trained.diabetes()
    model = make_pipeline(FunctionTransformer(double), Ridge()).fit(X, y)
    with pytest.raises(InvalidModel, match=r"test_formats\.double"):
        upload(conn, "custom", model, format="skops")
    payload = formats.dump(model, "skops")
    assert formats.compression(payload, "skops") == "deflate"
    # Written past the uploader, compressed, the server refuses it at load all the same.
    upload(conn, "custom", trained.diabetes_ridge(), format="skops", compile=False)
    conn.execute("SET session_replication_role = replica")
    conn.execute("UPDATE pgml_trigger.models SET payload = %s, sha256 = encode(sha256(%s), 'hex') "
                 "WHERE name = 'custom'", [payload, payload])
    conn.execute("RESET session_replication_role")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"custom@1.*outside the allow-list.*double"):
        conn.execute("SELECT pgml_trigger.predict('custom', %s::float8[])", [list(X.iloc[0])])


# --- checksums -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("column, what", [("payload", "payload"), ("compiled_payload", "compiled payload")])
def test_every_payload_is_checked_against_its_sha256_before_loading(conn, column, what):
    X, _ = trained.diabetes()
    model = trained.diabetes_ridge()
    upload(conn, "compiled", model, sample=X)
    upload(conn, "graph", to_onnx(model, initial_types=[("X", FloatTensorType([None, 10]))]),
           feature_names=list(X.columns))
    conn.execute("SET session_replication_role = replica")  # past the immutability triggers: simulate tampering
    conn.execute(sql.SQL("UPDATE pgml_trigger.models SET {0} = {0} || '\\x00'::bytea WHERE {0} IS NOT NULL").format(
        sql.Identifier(column)))
    conn.execute("RESET session_replication_role")
    # A compiled model scores from its compiled payload alone; an onnx model from its payload.
    name = "graph" if column == "payload" else "compiled"
    with pytest.raises(psycopg.errors.DataCorrupted, match=f"model {name}@1: the stored {what} does not match"):
        conn.execute("SELECT pgml_trigger.predict(%s, %s::float8[])", [name, list(X.iloc[0])])

"""Library versions at load: a WARNING once per model per backend, refusal under strict_versions, doctor()."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest
import sklearn
import trained
from psycopg import sql
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType

from pgml_trigger import upload

OLD = "1.2.2"


def _upload_as_if_from(conn, name, model, version, monkeypatch, **options) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(sklearn, "__version__", version)
        upload(conn, name, model, **options)


def _warnings(conn) -> list[str]:
    seen: list[str] = []
    conn.add_notice_handler(lambda notice: seen.append(notice.message_primary)
                            if notice.severity_nonlocalized == "WARNING" else None)
    return seen


def test_a_model_saved_with_another_scikit_learn_warns_once_per_backend(conn, connect, monkeypatch):
    X, _ = trained.diabetes()
    model = trained.diabetes_ridge()
    _upload_as_if_from(conn, "old", model, OLD, monkeypatch, compile=False)
    upload(conn, "current", model, compile=False)
    session = connect()
    seen = _warnings(session)
    for i in range(3):
        for name in ("old", "current"):
            got = session.execute("SELECT pgml_trigger.predict(%s, %s::float8[])", [name, list(X.iloc[i])]).fetchone()
            assert got[0] == float(model.predict(X.iloc[[i]])[0])
    assert seen == [f"pgml_trigger: model old@1 was saved with scikit-learn {OLD}; this server has "
                    f"{sklearn.__version__}; its predictions may differ from the ones checked at upload"]
    other = connect()  # once per backend: a new backend warns again
    seen_there = _warnings(other)
    other.execute("SELECT pgml_trigger.predict('old', %s::float8[])", [list(X.iloc[0])])
    assert len(seen_there) == 1


def test_strict_versions_refuses_the_model_and_doctor_says_so(conn, connect, dsn, monkeypatch):
    X, _ = trained.diabetes()
    model = trained.diabetes_ridge()
    _upload_as_if_from(conn, "old", model, OLD, monkeypatch, compile=False)
    _upload_as_if_from(conn, "old_compiled", model, OLD, monkeypatch, sample=X)  # scored by ONNX: no pickle
    upload(conn, "current", model, format="skops")
    upload(conn, "graph", to_onnx(model, initial_types=[("X", FloatTensorType([None, 10]))]),
           feature_names=list(X.columns))
    doctor = ("SELECT name, format, scoring_path, allowed, loads, error, sklearn_recorded, sklearn_server, verdict "
              "FROM pgml_trigger.doctor()")
    server = sklearn.__version__
    assert conn.execute(doctor).fetchall() == [
        ("current", "skops", "sklearn", True, True, None, server, server, "ok"),
        ("graph", "onnx", "onnx", True, True, None, server, None, "ok"),
        ("old", "joblib", "sklearn", True, True, None, OLD, server,
         f"loads under scikit-learn {server}, saved with {OLD}: predictions may differ"),
        ("old_compiled", "joblib", "onnx", True, True, None, OLD, server, "ok")]

    conn.execute(sql.SQL("ALTER DATABASE {} SET pgml_trigger.strict_versions = on").format(
        sql.Identifier(conn.info.dbname)))
    session = connect()
    session.execute("SET pgml_trigger.strict_versions = off")  # the database's setting counts, not the session's
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState,
                       match=rf"model old@1 was saved with scikit-learn {OLD}; this server has {server}; refusing"):
        session.execute("SELECT pgml_trigger.predict('old', %s::float8[])", [list(X.iloc[0])])
    assert session.execute("SELECT pgml_trigger.predict('old_compiled', %s::float8[])",
                           [list(X.iloc[0])]).fetchone()[0] == pytest.approx(float(model.predict(X.iloc[[0]])[0]),
                                                                             rel=1e-5, abs=1e-4)
    old = conn.execute(doctor + " WHERE name = 'old'").fetchone()
    assert old[3:5] == (True, False) and old[8] == "will not load" and "strict_versions" in old[5]

    done = subprocess.run([sys.executable, "-m", "pgml_trigger", "doctor", "--dsn", dsn],
                          capture_output=True, text=True)
    print(done.stdout)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 4
    assert lines[2].startswith(f"old@1  joblib  allowed  not loadable  scikit-learn {OLD} (server {server})  "
                               "will not load: model old@1 was saved with")
    assert lines[1] == "graph@1  onnx  allowed  scored by onnx  onnx  ok"

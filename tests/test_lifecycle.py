"""Lifecycle: alias history and rollback, safe deletes, export/import, upgrades, uninstall."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import psycopg
import pytest
import trained
from sklearn.linear_model import Ridge
from tables import copy_rows, create_table

from pgml_trigger import upload
from pgml_trigger.admin.transfer import export_model, import_model
from pgml_trigger.admin.uninstall import uninstall
from pgml_trigger.errors import InstallError, ModelCorrupted


@pytest.fixture
def versions(conn):
    X, y = trained.diabetes()
    models = [Ridge(alpha=alpha).fit(X, y) for alpha in (0.1, 1.0, 10.0)]
    for model in models:
        upload(conn, "churn", model)
    return X, models


def _alias(conn, alias="production"):
    return conn.execute("SELECT version FROM pgml_trigger.aliases WHERE name = 'churn' AND alias = %s",
                        [alias]).fetchone()[0]


def test_alias_history_records_every_move(conn, versions):
    for version in (1, 2, 3):
        conn.execute("SELECT pgml_trigger.set_alias('churn', 'production', %s)", [version])
    conn.execute("DELETE FROM pgml_trigger.aliases")
    rows = conn.execute("SELECT alias, from_version, to_version, kind, moved_by, moved_at <= now() "
                        "FROM pgml_trigger.alias_history ORDER BY id").fetchall()
    user = conn.info.user
    assert rows == [("production", None, 1, "set", user, True), ("production", 1, 2, "set", user, True),
                    ("production", 2, 3, "set", user, True), ("production", 3, None, "delete", user, True)]


def test_rollback_walks_back_and_scoring_follows(conn, connect, versions):
    X, models = versions
    reader = connect()
    predict = "SELECT pgml_trigger.predict('churn', %s::float8[])"
    row = list(X.iloc[0])
    for version in (1, 2, 3):
        conn.execute("SELECT pgml_trigger.set_alias('churn', 'production', %s)", [version])
    assert reader.execute(predict, [row]).fetchone()[0] == float(models[2].predict(X.iloc[[0]])[0])
    assert conn.execute("SELECT pgml_trigger.rollback('churn')").fetchone()[0] == 2
    assert reader.execute(predict, [row]).fetchone()[0] == float(models[1].predict(X.iloc[[0]])[0])
    assert conn.execute("SELECT pgml_trigger.rollback('churn', 'production')").fetchone()[0] == 1
    assert _alias(conn) == 1
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="no earlier version"):
        conn.execute("SELECT pgml_trigger.rollback('churn')")
    assert _alias(conn) == 1
    kinds = conn.execute("SELECT kind FROM pgml_trigger.alias_history ORDER BY id").fetchall()
    assert [k for (k,) in kinds] == ["set", "set", "set", "rollback", "rollback"]


def test_rollback_of_an_unknown_alias(conn, versions):
    with pytest.raises(psycopg.errors.UndefinedObject, match='has no alias "staging"'):
        conn.execute("SELECT pgml_trigger.rollback('churn', 'staging')")


def test_delete_model_refuses_while_used_and_names_the_users(conn, versions):
    X, _ = versions
    conn.execute("SELECT pgml_trigger.set_alias('churn', 'staging', 2)")
    create_table(conn, "accounts", X, extra={"risk": "float8"})
    conn.execute("SELECT pgml_trigger.attach('accounts', 'churn', 'risk')")  # 'churn' = latest = 3
    with pytest.raises(psycopg.errors.DependentObjectsStillExist) as caught:
        conn.execute("SELECT pgml_trigger.delete_model('churn', 2)")
    assert "aliases: 'staging'" in caught.value.diag.message_detail
    with pytest.raises(psycopg.errors.DependentObjectsStillExist) as caught:
        conn.execute("SELECT pgml_trigger.delete_model('churn', 3)")
    assert "scoring triggers: accounts.risk (model 'churn')" in caught.value.diag.message_detail
    conn.execute("SELECT pgml_trigger.delete_model('churn', 1)")
    assert [v for (v,) in conn.execute("SELECT version FROM pgml_trigger.models ORDER BY version")] == [2, 3]
    with pytest.raises(psycopg.errors.UndefinedObject, match="has no version 1"):
        conn.execute("SELECT pgml_trigger.delete_model('churn', 1)")


def test_export_and_import_between_databases(conn, new_database, tmp_path, versions):
    X, models = versions
    conn.execute("UPDATE pgml_trigger.models SET description = 'alpha 1' WHERE version = 2")
    path = tmp_path / "churn.pgml.gz"
    assert export_model(conn, "churn@2", path) == ("churn", 2)
    with psycopg.connect(new_database(), autocommit=True) as other:
        upload(other, "churn", trained.diabetes_ridge())
        assert import_model(other, path) == ("churn", 2, 2)
        row = other.execute("SELECT description, sha256, feature_names FROM pgml_trigger.models "
                            "WHERE version = 2").fetchone()
        source = conn.execute("SELECT description, sha256, feature_names FROM pgml_trigger.models "
                              "WHERE version = 2").fetchone()
        assert row == source
        got = other.execute("SELECT pgml_trigger.predict('churn@2', %s::float8[])", [list(X.iloc[4])]).fetchone()[0]
        assert got == float(models[1].predict(X.iloc[[4]])[0])


def _rewrite_export(path, change_header=lambda header: header, change_payloads=lambda payloads: payloads):
    with gzip.open(path, "rb") as source:
        header, payloads = json.loads(source.readline()), source.read()
    with gzip.open(path, "wb") as out:
        out.write(json.dumps(change_header(header)).encode() + b"\n" + change_payloads(payloads))


@pytest.mark.parametrize("damage", ["row", "payload", "truncated"])
def test_import_refuses_a_damaged_file(conn, new_database, tmp_path, versions, damage):
    path = tmp_path / "churn.pgml.gz"
    export_model(conn, "churn@1", path)
    if damage == "row":
        _rewrite_export(path, change_header=lambda header: dict(
            header, row=header["row"].replace('"description": null', '"description": "tampered"')))
    elif damage == "payload":
        _rewrite_export(path, change_payloads=lambda payloads: payloads[:100] + bytes([payloads[100] ^ 1])
                        + payloads[101:])
    else:
        _rewrite_export(path, change_payloads=lambda payloads: payloads[:-10])
    with psycopg.connect(new_database(), autocommit=True) as other:
        with pytest.raises(ModelCorrupted, match="damaged"):
            import_model(other, path)
        assert other.execute("SELECT count(*) FROM pgml_trigger.models").fetchone()[0] == 0


def test_cli_export_import(conn, dsn, new_database, tmp_path, versions):
    path = tmp_path / "m.gz"
    run = [sys.executable, "-m", "pgml_trigger"]
    done = subprocess.run([*run, "export", "churn", str(path), "--dsn", dsn], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"exported churn@3 to {path}", done.stderr
    done = subprocess.run([*run, "import", str(path), "--dsn", new_database()], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "imported churn@3 as churn@1", done.stderr


def test_uninstall_refuses_attached_triggers_then_detaches(conn, dsn, versions):
    X, _ = versions
    create_table(conn, "accounts", X, extra={"risk": "float8"})
    conn.execute("SELECT pgml_trigger.attach('accounts', 'churn', 'risk')")
    copy_rows(conn, "accounts", X.iloc[:3])
    with pytest.raises(InstallError, match="scoring triggers are attached to accounts.risk"):
        uninstall(dsn, log=lambda message: None)
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models").fetchone()[0] == 3
    uninstall(dsn, detach=True, log=lambda message: None)
    assert conn.execute("SELECT to_regnamespace('pgml_trigger')").fetchone()[0] is None
    assert conn.execute("SELECT count(*), count(risk) FROM accounts").fetchone() == (3, 3)
    copy_rows(conn, "accounts", X.iloc[:1])  # no trigger left behind
    assert conn.execute("SELECT count(risk) FROM accounts").fetchone()[0] == 3
    setting = conn.execute("SELECT count(*) FROM pg_db_role_setting s, unnest(s.setconfig) c "
                           "WHERE c LIKE 'pgml_trigger.%' AND s.setdatabase = "
                           "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()[0]
    assert setting == 0

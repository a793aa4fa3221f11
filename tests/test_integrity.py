"""What is stored stays what was uploaded: doctor() checks every payload, and the largest payloads move
through export, import, pg_dump and pg_restore."""

from __future__ import annotations

import hashlib

import psycopg
import pytest
import trained
from dumps import dump, restore

from pgml_trigger import formats, upload
from pgml_trigger.admin.transfer import export_model, import_model

DOCTOR = "SELECT name, version, loads, error, verdict FROM pgml_trigger.doctor() ORDER BY name, version"


def _damage(conn, column: str, name: str, version: int) -> None:
    """Flip one byte of a stored payload, as a disk or a careless superuser might."""
    conn.execute("ALTER TABLE pgml_trigger.models DISABLE TRIGGER models_before_update")
    conn.execute(f"UPDATE pgml_trigger.models SET {column} = set_byte({column}, 10, get_byte({column}, 10) # 1) "
                 "WHERE name = %s AND version = %s", [name, version])
    conn.execute("ALTER TABLE pgml_trigger.models ENABLE TRIGGER models_before_update")


@pytest.mark.parametrize("column", ["payload", "compiled_payload"])
def test_doctor_names_a_version_whose_stored_payload_changed(conn, column):
    X, _ = trained.diabetes()
    for _ in range(2):
        upload(conn, "churn", trained.diabetes_ridge(), sample=X)
    assert conn.execute("SELECT count(*) FROM pgml_trigger.models WHERE scoring_path = 'onnx'").fetchone()[0] == 2
    assert [row[4] for row in conn.execute(DOCTOR)] == ["ok", "ok"]
    _damage(conn, column, "churn", 2)
    first, second = conn.execute(DOCTOR).fetchall()
    assert first[4] == "ok"
    what = column.replace("_", " ")
    assert second[4] == f"corrupted: the stored {what} of churn@2 no longer matches the sha256 recorded at upload"
    # Scoring reads the compiled payload only: a damaged original still loads, but doctor() says so.
    assert second[2] is (column == "payload")


BIG = 520_000_000  # over 512 MB, under the 500 MiB upload accepts: hex text of it is over 1 GB on the way out


def _insert_raw(conn, name: str, payload: bytes) -> None:
    conn.execute("""
        INSERT INTO pgml_trigger.models (name, version, format, payload, sha256, task, feature_names, feature_types,
                                         feature_inputs, input_kind, python_version, sklearn_version, numpy_version,
                                         joblib_version)
        VALUES (%s, 0, 'joblib', %b, %s, 'regression', '{a}', '{number}', '[{}]', 'array', '3', '1', '1', '1')""",
                 [name, payload, formats.sha256(payload)])


def _stored(dsn: str) -> tuple:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT name, octet_length(payload), encode(sha256(payload), 'hex'), sha256 "
                            "FROM pgml_trigger.models").fetchone()


def test_a_payload_over_512_mb_exports_imports_dumps_and_restores(dsn, conn, new_database, tmp_path):
    payload = bytes(range(256)) * (BIG // 256)
    digest = hashlib.sha256(payload).hexdigest()
    _insert_raw(conn, "big", payload)
    del payload
    assert _stored(dsn) == ("big", BIG, digest, digest)

    export_model(conn, "big", tmp_path / "big.gz")
    imported = new_database()
    with psycopg.connect(imported, autocommit=True) as other:
        assert import_model(other, tmp_path / "big.gz") == ("big", 1, 1)
    assert _stored(imported) == ("big", BIG, digest, digest)

    dump(dsn, "-Fc", "-Z0", path=tmp_path / "big.dump")
    restored = new_database(installed_copy=False)
    restore(restored, tmp_path / "big.dump")
    assert _stored(restored) == ("big", BIG, digest, digest)


def test_the_server_refuses_more_than_upload_accepts(conn):
    with pytest.raises(psycopg.errors.ProgramLimitExceeded, match="pgml_trigger stores at most 500 MiB"):
        _insert_raw(conn, "huge", bytes(formats.MAX_STORED_BYTES + 1))

"""Training profile and metrics at upload; drift() of recent inputs against the profile."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest
import trained
from tables import copy_rows, load_table

from pgml_trigger import upload


@pytest.fixture
def mixed(conn):
    X, _ = trained.diabetes_mixed()
    upload(conn, "mixed", trained.mixed_pipeline(), sample=X, metrics={"r2": 0.5, "rows": len(X)})
    return X


def _drift(conn, source, since=None):
    rows = conn.execute("SELECT feature, statistic, value, drifted, rows FROM pgml_trigger.drift('mixed', %s, %s)",
                        [source, since]).fetchall()
    return {feature: (statistic, value, drifted, count) for feature, statistic, value, drifted, count in rows}


def test_upload_stores_metrics_and_profile(conn, mixed):
    metrics, profile = conn.execute("SELECT metrics, training_profile FROM pgml_trigger.models").fetchone()
    assert metrics == {"r2": 0.5, "rows": len(mixed)}
    assert profile["bmi"]["kind"] == "number" and profile["bmi"]["count"] == len(mixed)
    assert profile["bmi"]["mean"] == pytest.approx(float(mixed["bmi"].mean()))
    assert len(profile["bmi"]["quantiles"]) == 11 and sum(profile["bmi"]["bin_shares"]) == pytest.approx(1.0)
    assert profile["sex"]["shares"] == pytest.approx(mixed["sex"].value_counts(normalize=True).to_dict())


def test_training_data_itself_shows_no_drift(conn, mixed):
    load_table(conn, "visits", mixed)
    result = _drift(conn, "visits")
    assert set(result) == set(mixed.columns)
    for _statistic, value, drifted, count in result.values():
        assert value == pytest.approx(0.0, abs=1e-9) and drifted is False and count == len(mixed)
    assert result["sex"][0] == "tvd" and result["age"][0] == "psi"


def test_shifted_inputs_are_flagged_per_feature(conn, mixed):
    shifted = mixed.copy()
    shifted["bmi"] = shifted["bmi"] + 0.08
    shifted["sex"] = "male"
    load_table(conn, "visits", shifted)
    result = _drift(conn, "visits")
    flagged = {feature for feature, (_, _, drifted, _) in result.items() if drifted}
    assert flagged == {"bmi", "sex"}  # bmi_band was left as in training
    assert result["sex"][1] == pytest.approx(1 - float((mixed["sex"] == "male").mean()))


def test_since_selects_recent_rows_by_created_at(conn, mixed):
    shifted = mixed.copy()
    shifted["bmi"] = shifted["bmi"] + 0.08
    load_table(conn, "visits", mixed, extra={"created_at": "timestamptz DEFAULT now()"})
    conn.execute("UPDATE visits SET created_at = now() - interval '30 days'")
    copy_rows(conn, "visits", shifted.iloc[:200])
    recent = _drift(conn, "visits", since=datetime.now(timezone.utc) - timedelta(days=1))
    assert recent["bmi"][3] == 200 and recent["bmi"][2] is True
    everything = _drift(conn, "visits")
    assert everything["bmi"][3] == len(mixed) + 200


def test_drift_errors(conn, mixed):
    upload(conn, "plain", trained.diabetes_ridge())
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="without a training profile"):
        conn.execute("SELECT * FROM pgml_trigger.drift('plain', 'pgml_trigger.models')")
    conn.execute("CREATE TABLE partial (age float8)")
    with pytest.raises(psycopg.errors.UndefinedColumn, match='partial has no column "bmi"'):
        conn.execute("SELECT * FROM pgml_trigger.drift('mixed', 'partial')")
    load_table(conn, "visits", mixed)
    with pytest.raises(psycopg.errors.UndefinedColumn, match="no scored_at or created_at column"):
        conn.execute("SELECT * FROM pgml_trigger.drift('mixed', 'visits', now())")


def test_status_cli_lists_models_triggers_and_drift(conn, dsn, mixed):
    import subprocess
    import sys

    shifted = mixed.copy()
    shifted["sex"] = "male"
    load_table(conn, "visits", shifted, extra={"prediction": "float8"})
    conn.execute("SELECT pgml_trigger.attach('visits', 'mixed', 'prediction')")
    upload(conn, "plain", trained.diabetes_ridge(), alias="production")
    done = subprocess.run([sys.executable, "-m", "pgml_trigger", "status", "--dsn", dsn],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[:4] == ["mixed", "1", "regression", "joblib"] for line in lines)
    assert any(line.split()[:2] == ["plain", "1"] and "production" in line for line in lines)
    assert any(line.split()[:4] == ["visits", "prediction", "mixed", "mixed@1"] for line in lines)
    assert any(line.strip().startswith("visits (mixed): sex tvd") for line in lines)

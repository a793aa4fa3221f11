"""Model references: 'name', 'name@version', 'name@alias', and set_alias."""

from __future__ import annotations

import psycopg
import pytest
import trained

from pgml_trigger import upload


@pytest.fixture
def three_versions(conn):
    X, _ = trained.diabetes()
    model = trained.diabetes_ridge()
    for _ in range(3):
        upload(conn, "churn", model)
    return X


def _resolve(conn, ref):
    return conn.execute("SELECT name, version FROM pgml_trigger.resolve_model(%s)", [ref]).fetchone()


def test_bare_name_is_latest_version_without_production_alias(conn, three_versions):
    assert _resolve(conn, "churn") == ("churn", 3)


def test_bare_name_follows_production_alias(conn, three_versions):
    conn.execute("SELECT pgml_trigger.set_alias('churn', 'production', 2)")
    assert _resolve(conn, "churn") == ("churn", 2)


def test_explicit_version_and_alias(conn, three_versions):
    conn.execute("SELECT pgml_trigger.set_alias('churn', 'staging', 1)")
    assert _resolve(conn, "churn@3") == ("churn", 3)
    assert _resolve(conn, "churn@staging") == ("churn", 1)


def test_set_alias_moves_an_alias_and_records_who(conn, three_versions):
    conn.execute("SELECT pgml_trigger.set_alias('churn', 'staging', 1)")
    conn.execute("SELECT pgml_trigger.set_alias('churn', 'staging', 3)")
    rows = conn.execute("SELECT alias, version, updated_by FROM pgml_trigger.aliases").fetchall()
    assert rows == [("staging", 3, conn.info.user)]


def test_upload_with_alias_points_it_at_the_new_version(conn):
    model = trained.diabetes_ridge()
    upload(conn, "churn", model)
    version = upload(conn, "churn", model, alias="production")
    upload(conn, "churn", model)
    assert version == 2
    assert _resolve(conn, "churn") == ("churn", 2)


def test_scoring_uses_the_referenced_version(conn):
    X, y = trained.diabetes()
    from sklearn.linear_model import Ridge

    first = Ridge(alpha=0.1).fit(X, y)
    second = Ridge(alpha=10.0).fit(X, y)
    upload(conn, "churn", first)
    upload(conn, "churn", second, alias="staging")
    row = list(X.iloc[0])
    got = conn.execute("SELECT pgml_trigger.predict('churn@1', %(r)s::float8[]), "
                       "pgml_trigger.predict('churn@staging', %(r)s::float8[])", {"r": row}).fetchone()
    assert got == (float(first.predict(X.iloc[[0]])[0]), float(second.predict(X.iloc[[0]])[0]))


@pytest.mark.parametrize("ref, message, hint", [
    ("nope", 'model "nope" does not exist', "upload it first"),
    ("churn@9", 'model "churn" has no version 9', "its versions are: 1, 2, 3"),
    ("churn@canary", 'model "churn" has no alias "canary"', "it has no aliases"),
])
def test_unknown_references_are_undefined_object(conn, three_versions, ref, message, hint):
    with pytest.raises(psycopg.errors.UndefinedObject) as caught:
        conn.execute("SELECT pgml_trigger.predict(%s, ARRAY[1.0])", [ref])
    assert message in caught.value.diag.message_primary
    assert hint in caught.value.diag.message_hint


@pytest.mark.parametrize("ref", ["", "churn@", "@3", "a@b@c"])
def test_malformed_references_are_invalid_parameter_value(conn, three_versions, ref):
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="invalid model reference"):
        conn.execute("SELECT pgml_trigger.predict(%s, ARRAY[1.0])", [ref])


def test_set_alias_refuses_unknown_version_and_bad_alias(conn, three_versions):
    with pytest.raises(psycopg.errors.UndefinedObject, match="has no version 7"):
        conn.execute("SELECT pgml_trigger.set_alias('churn', 'production', 7)")
    with pytest.raises(psycopg.errors.InvalidParameterValue, match='invalid alias "3"'):
        conn.execute("SELECT pgml_trigger.set_alias('churn', '3', 1)")
    assert conn.execute("SELECT count(*) FROM pgml_trigger.aliases").fetchone()[0] == 0

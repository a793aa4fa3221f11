"""Row triggers that compute linear models as SQL arithmetic (sql/triggers.sql, pgml_trigger/uploader/linear.py).

The trigger writes the same labels as the model's offline predict(), and
regression values within linear.RTOL/ATOL of it; rows the arithmetic cannot
take (NULL, NaN, infinite or huge features) get the Python path's answer or
error; and the trigger follows new versions and alias moves transactionally.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pytest
import trained
from sklearn.datasets import load_wine
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.svm import LinearSVC
from tables import copy_rows, create_table, load_table

from pgml_trigger import upload
from pgml_trigger.uploader.linear import ATOL, RTOL


def _row_trigger_path(conn, name: str, version: int = 1) -> str:
    return conn.execute("SELECT row_trigger_path FROM pgml_trigger.model_versions WHERE name = %s AND version = %s",
                        [name, version]).fetchone()[0]


def _column(conn, table: str, column: str) -> list:
    return [value for (value,) in conn.execute(f"SELECT {column} FROM {table} ORDER BY id")]


def test_binary_classifier_writes_the_offline_labels(conn):
    X, _ = trained.breast_cancer()
    model = trained.linear_breast_cancer()
    upload(conn, "bc", model)
    assert _row_trigger_path(conn, "bc") == "sql"
    create_table(conn, "tumors", X, extra={"score": "double precision", "label": "text"})
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'label')")
    copy_rows(conn, "tumors", X)
    offline = model.predict(X)
    assert _column(conn, "tumors", "score") == offline.astype(float).tolist()
    assert _column(conn, "tumors", "label") == [str(label) for label in offline.tolist()]


def test_multiclass_classifiers_write_the_offline_labels(conn):
    model, data = trained.iris_text_labels()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    upload(conn, "iris", model, feature_names=names)
    assert _row_trigger_path(conn, "iris") == "sql"
    flowers = pd.DataFrame(data, columns=names)
    create_table(conn, "flowers", flowers, extra={"species": "text"})
    conn.execute("SELECT pgml_trigger.attach('flowers', 'iris', 'species')")
    copy_rows(conn, "flowers", flowers)
    assert _column(conn, "flowers", "species") == model.predict(data).tolist()

    wine = load_wine(as_frame=True)
    svc = make_pipeline(MinMaxScaler(), StandardScaler(), LinearSVC(C=0.5, max_iter=20_000)).fit(wine.data, wine.target)
    upload(conn, "wine", svc)
    assert _row_trigger_path(conn, "wine") == "sql"
    create_table(conn, "wines", wine.data, extra={"cultivar": "integer"})
    conn.execute("SELECT pgml_trigger.attach('wines', 'wine', 'cultivar')")
    copy_rows(conn, "wines", wine.data)
    assert _column(conn, "wines", "cultivar") == svc.predict(wine.data).tolist()


def test_regressor_writes_the_offline_values_within_tolerance(conn):
    X, y = trained.diabetes()
    model = make_pipeline(StandardScaler(), Ridge(alpha=0.3)).fit(X, y)
    upload(conn, "progression", model)
    assert _row_trigger_path(conn, "progression") == "sql"
    agreement = conn.execute("SELECT linear_form -> 'agreement' FROM pgml_trigger.models").fetchone()[0]
    assert agreement["rows"] > 0 and agreement["max_abs_diff_value"] <= ATOL + RTOL * 400
    load_table(conn, "patients", X.iloc[:0], extra={"risk": "double precision"})
    conn.execute("SELECT pgml_trigger.attach('patients', 'progression', 'risk')")
    copy_rows(conn, "patients", X)
    assert _column(conn, "patients", "risk") == pytest.approx(model.predict(X).tolist(), rel=RTOL, abs=ATOL)


def test_models_that_are_not_linear_keep_their_path(conn):
    upload(conn, "forest", trained.forest_breast_cancer())
    upload(conn, "mixed", trained.mixed_pipeline())  # one-hot encoding: not an affine scaler
    assert _row_trigger_path(conn, "forest") == "onnx"
    assert _row_trigger_path(conn, "mixed") != "sql"


@pytest.fixture
def tumors(conn):
    X, _ = trained.breast_cancer()
    model = trained.linear_breast_cancer()
    upload(conn, "bc", model)
    create_table(conn, "tumors", X, extra={"score": "double precision"})
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    columns = ", ".join(f'"{name}"' for name in X.columns)
    return X, model, f"INSERT INTO tumors ({columns}) VALUES ({', '.join(['%s'] * len(X.columns))})"


def test_null_and_non_finite_features_get_the_python_paths_errors(conn, tumors):
    X, _, insert = tumors
    row = X.iloc[0].tolist()
    for value, error, fragment in ((None, psycopg.errors.NullValueNotAllowed, 'column "mean_radius" is NULL'),
                                   (float("nan"), psycopg.errors.NullValueNotAllowed, 'column "mean_radius" is NaN'),
                                   (float("inf"), psycopg.DataError, 'column "mean_radius"')):
        with pytest.raises(error) as caught:
            conn.execute(insert, [value, *row[1:]])
        assert fragment in caught.value.diag.message_primary
        assert "bc@1" in caught.value.diag.message_primary
    assert conn.execute("SELECT count(*) FROM tumors").fetchone()[0] == 0


def test_tiny_and_huge_features_score_like_the_model(conn, tumors):
    """A subnormal feature must not raise PostgreSQL's underflow error; a huge one goes to the Python path."""
    X, model, insert = tumors
    row = X.iloc[0].tolist()
    tiny = [5e-324, *row[1:]]
    huge = [1e306, *row[1:]]
    conn.execute(insert, tiny)
    conn.execute(insert, huge)
    expected_tiny = float(model.predict(pd.DataFrame([tiny], columns=X.columns))[0])
    expected_huge = float(model.predict(pd.DataFrame([huge], columns=X.columns))[0])
    assert _column(conn, "tumors", "score") == [expected_tiny, expected_huge]


def _versioned(version: int) -> LinearRegression:
    rng = np.random.default_rng(version)
    X = pd.DataFrame(rng.normal(size=(40, 2)), columns=["x", "y"])
    return LinearRegression().fit(X, 1000 * version + X["x"] - 3 * X["y"])


def test_trigger_follows_versions_aliases_and_rollbacks(conn, connect):
    upload(conn, "m", _versioned(1), alias="production")
    conn.execute("CREATE TABLE points (id serial PRIMARY KEY, x float8, y float8, score float8)")
    conn.execute("SELECT pgml_trigger.attach('points', 'm', 'score')")
    writer = connect()

    def scored_by() -> int:
        writer.execute("INSERT INTO points (x, y) VALUES (0.5, -0.25)")
        score = conn.execute("SELECT score FROM points ORDER BY id DESC LIMIT 1").fetchone()[0]
        version = round(score / 1000)
        expected = _versioned(version).predict(pd.DataFrame([[0.5, -0.25]], columns=["x", "y"]))[0]
        assert score == pytest.approx(expected, rel=RTOL, abs=ATOL)
        return version

    assert scored_by() == 1
    upload(conn, "m", _versioned(2))
    assert scored_by() == 1  # 'm' means the production alias
    conn.execute("SELECT pgml_trigger.set_alias('m', 'production', 2)")
    assert scored_by() == 2
    with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
        conn.execute("SELECT pgml_trigger.set_alias('m', 'production', 1)")
        conn.execute("SELECT 1 / 0")
    assert scored_by() == 2  # the rolled-back move left the trigger alone
    conn.execute("SELECT pgml_trigger.rollback('m')")
    assert scored_by() == 1


def test_trigger_moves_between_sql_and_python_paths(conn, connect):
    X, _ = trained.breast_cancer()
    linear, forest = trained.linear_breast_cancer(), trained.forest_breast_cancer()
    upload(conn, "bc", linear, alias="production")
    upload(conn, "bc", forest)
    assert [_row_trigger_path(conn, "bc", 1), _row_trigger_path(conn, "bc", 2)] == ["sql", "onnx"]
    create_table(conn, "tumors", X, extra={"score": "double precision"})
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    # rows where the two models disagree show which one scored
    disagree = X[linear.predict(X) != forest.predict(X)]
    assert len(disagree) > 0
    writer = connect()
    for version, model in ((2, forest), (1, linear)):
        conn.execute("SELECT pgml_trigger.set_alias('bc', 'production', %s)", [version])
        conn.execute("TRUNCATE tumors")
        copy_rows(writer, "tumors", disagree)
        assert _column(conn, "tumors", "score") == model.predict(disagree).astype(float).tolist()

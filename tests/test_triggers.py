"""Scoring triggers: attach, detach, and every way rows arrive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg
import pytest
import trained
from tables import copy_rows, create_table, load_table

from pgml_trigger import upload
from pgml_trigger.uploader import linear


@pytest.fixture
def bc(conn):
    X, _ = trained.breast_cancer()
    model = trained.linear_breast_cancer()
    upload(conn, "bc", model)
    create_table(conn, "tumors", X, extra={"score": "double precision", "label": "text", "note": "text"})
    return X, model


def _offline(model, X):
    return [float(model.predict(X.iloc[[i]])[0]) for i in range(len(X))]


def _columns(X):
    return ", ".join(f'"{name}"' for name in X.columns)


def test_attach_returns_trigger_and_copy_fires_it(conn, bc):
    X, model = bc
    assert conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')").fetchone()[0] == "pgml_score_score"
    copy_rows(conn, "tumors", X)
    got = [score for (score,) in conn.execute("SELECT score FROM tumors ORDER BY id")]
    assert got == _offline(model, X)


def test_multi_row_values_and_insert_select_fire_it(conn, bc):
    X, model = bc
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    rows = X.iloc[:3]
    values = ", ".join("(" + ", ".join(repr(float(v)) for v in row) + ")" for row in rows.itertuples(index=False))
    conn.execute(f"INSERT INTO tumors ({_columns(X)}) VALUES {values}")
    conn.execute(f"INSERT INTO tumors ({_columns(X)}) SELECT {_columns(X)} FROM tumors ORDER BY id")
    got = [score for (score,) in conn.execute("SELECT score FROM tumors ORDER BY id")]
    assert got == _offline(model, rows) * 2


def test_text_output_column_gets_the_label(conn):
    model, data = trained.iris_text_labels()
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    upload(conn, "iris", model, feature_names=names)
    frame = pd.DataFrame(data, columns=names)
    create_table(conn, "flowers", frame, extra={"species": "text"})
    conn.execute("SELECT pgml_trigger.attach('flowers', 'iris', 'species')")
    copy_rows(conn, "flowers", frame)
    got = [species for (species,) in conn.execute("SELECT species FROM flowers ORDER BY id")]
    assert got == list(model.predict(data))


def test_features_list_maps_differently_named_columns(conn):
    model, data = trained.iris_text_labels()
    upload(conn, "iris", model)  # features x0..x3
    conn.execute('CREATE TABLE petals ("Petal Width" float8, "sepal ""w""" float8, sl float8, pl float8, '
                 "species varchar(20))")
    conn.execute("""SELECT pgml_trigger.attach('petals', 'iris', 'species',
                    ARRAY['sl', 'sepal "w"', 'pl', 'Petal Width'])""")
    row = data[60]
    conn.execute('INSERT INTO petals (sl, "sepal ""w""", pl, "Petal Width") VALUES (%s, %s, %s, %s)', list(row))
    assert conn.execute("SELECT species FROM petals").fetchone()[0] == model.predict([row])[0]


def test_update_rescoring_only_when_a_feature_changes(conn, bc):
    X, model = bc
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    copy_rows(conn, "tumors", X.iloc[:2])
    conn.execute("UPDATE tumors SET score = -1")  # the output column is not a feature: no re-score
    conn.execute("UPDATE tumors SET note = 'seen'")  # not a feature column: trigger does not fire
    conn.execute('UPDATE tumors SET "mean_radius" = "mean_radius"')  # a feature, unchanged: keeps the value
    assert [s for (s,) in conn.execute("SELECT score FROM tumors ORDER BY id")] == [-1.0, -1.0]
    # Copy row 1's features into row 0 (ids 1 and 2): row 0 changes, and is re-scored as row 1.
    sets = ", ".join(f'"{name}" = src."{name}"' for name in X.columns)
    conn.execute(f"UPDATE tumors AS t SET {sets} FROM tumors AS src WHERE t.id = 1 AND src.id = 2")
    assert [s for (s,) in conn.execute("SELECT score FROM tumors ORDER BY id")] == [
        float(model.predict(X.iloc[[1]])[0]), -1.0]


@pytest.fixture
def visits(conn):
    """The mixed-type pipeline (text and numeric features) and a table feeding it in another column order, one
    column named differently ("gender" for feature "sex"), with extra columns."""
    model = trained.mixed_pipeline()
    X, _ = trained.diabetes_mixed()
    upload(conn, "mixed", model)
    table = X[list(reversed(X.columns))].rename(columns={"sex": "gender"})
    create_table(conn, "visits", table, extra={"prediction": "double precision", "note": "text", "seen": "boolean"})
    columns = ["gender" if name == "sex" else name for name in X.columns]
    return model, X, table, columns


def _attach_mixed(conn, table, output, columns, **options):
    extra = "".join(f", {name} => {value}" for name, value in options.items())
    conn.execute(f"SELECT pgml_trigger.attach('{table}', 'mixed', '{output}', %s{extra})", [columns])


def test_mixed_type_pipeline_from_trigger(conn, visits):
    model, X, table, columns = visits
    _attach_mixed(conn, "visits", "prediction", columns)
    # The row goes to Python as a float8[] of its numeric features and a text[] of its text ones, not as jsonb.
    body = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'score_1'").fetchone()[0]
    assert "::double precision[], ARRAY[" in body and "jsonb" not in body
    copy_rows(conn, "visits", table)
    got = [p for (p,) in conn.execute("SELECT prediction FROM visits ORDER BY id")]
    assert got == _offline(model, X)

    # UPDATEs: row 1 takes row 6's features; row 2 changes its text feature only.
    sets = ", ".join(f'"{column}" = src."{column}"' for column in columns)
    conn.execute(f"UPDATE visits AS t SET {sets} FROM visits AS src WHERE t.id = 1 AND src.id = 6")
    conn.execute("UPDATE visits SET gender = CASE gender WHEN 'male' THEN 'female' ELSE 'male' END WHERE id = 2")
    changed = X.iloc[[5, 1]].copy()
    changed.iloc[1, changed.columns.get_loc("sex")] = "female" if X["sex"].iloc[1] == "male" else "male"
    got = [p for (p,) in conn.execute("SELECT prediction FROM visits WHERE id <= 2 ORDER BY id")]
    assert got == _offline(model, changed)


def test_mixed_type_rows_logged_and_in_statement_mode(conn, visits):
    model, X, table, columns = visits
    _attach_mixed(conn, "visits", "prediction", columns, log="true")
    create_table(conn, "appended", table)
    _attach_mixed(conn, "appended", "prediction", columns, mode="'statement'")
    for name in ("score_1", "score_2"):
        assert "jsonb" not in conn.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [name]).fetchone()[0]
    copy_rows(conn, "visits", table.iloc[:20])
    copy_rows(conn, "appended", table.iloc[:20])
    logged = conn.execute("SELECT target::text, prediction, features FROM pgml_trigger.prediction_log "
                          "ORDER BY target::text, row_key::int").fetchall()
    expected = _offline(model, X.iloc[:20])
    assert [target for target, _, _ in logged] == ["public.appended"] * 20 + ["public.visits"] * 20
    assert [p for _, p, _ in logged[20:]] == expected
    assert [p for _, p, _ in logged[:20]] == pytest.approx(expected, rel=1e-12)  # one model call for the 20
    assert logged[20][2] == X.iloc[0].to_dict()  # log => true keeps the features, by name


def test_statement_trigger_refuses_a_version_taking_its_features_as_other_kinds(conn):
    """A statement trigger splits rows by the kinds of features it was attached for and is not rewritten when the
    version changes: a version taking the same features as other kinds is refused, never fed the wrong values."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    def fitted(text_feature):
        frame = pd.DataFrame({"a": ["x", "y", "x", "y"], "b": ["1", "2", "3", "4"]})
        frame[{"a": "b", "b": "a"}[text_feature]] = [1.0, 2.0, 3.0, 4.0]
        encode = make_column_transformer((OneHotEncoder(), [text_feature]), remainder="passthrough")
        return make_pipeline(encode, LinearRegression()).fit(frame[["a", "b"]], [1.0, 2.0, 3.0, 4.0])

    upload(conn, "kinds", fitted("a"))  # a: text, b: number
    conn.execute("CREATE TABLE pairs (id integer PRIMARY KEY, a text, b double precision, out double precision)")
    conn.execute("SELECT pgml_trigger.attach('pairs', 'kinds', 'out', mode => 'statement')")
    conn.execute("INSERT INTO pairs VALUES (1, 'x', 1.0)")
    upload(conn, "kinds", fitted("b"))  # version 2: a number, b text
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState) as caught:
        conn.execute("INSERT INTO pairs VALUES (2, 'y', 2.0)")
    assert ("hands model kinds features of the types (string, number) but kinds@2 takes (number, string)"
            in caught.value.diag.message_primary)
    assert conn.execute("SELECT count(*) FROM pairs").fetchone()[0] == 1


@pytest.mark.parametrize("column, value", [("bmi", None), ("bmi", "NaN"), ("bmi", "Infinity"), ("age", "-Infinity"),
                                           ("gender", None)])
def test_mixed_type_missing_and_infinite_values_as_scikit_learn_takes_them(conn, visits, column, value):
    """A NULL, NaN or infinite number and a NULL text: the trigger stores what scikit-learn predicts for the row, or
    refuses it, naming the column, where scikit-learn refuses it (a missing number reaches LinearRegression, which
    takes none; a missing text is an unknown category to OneHotEncoder(handle_unknown="ignore"))."""
    model, X, table, columns = visits
    _attach_mixed(conn, "visits", "prediction", columns)
    row = dict(table.iloc[0].to_dict(), **{column: value})
    names = ", ".join(f'"{name}"' for name in row)
    offline = X.iloc[[0]].copy()
    feature = "sex" if column == "gender" else column
    offline[feature] = offline[feature].astype(object)  # a text column keeps its kind with a missing value in it
    offline.iloc[0, offline.columns.get_loc(feature)] = {None: np.nan, "NaN": np.nan, "Infinity": np.inf,
                                                         "-Infinity": -np.inf}[value]
    insert = f"INSERT INTO visits ({names}) VALUES ({', '.join(['%s'] * len(row))}) RETURNING prediction"
    try:
        expected = float(model.predict(offline)[0])
    except ValueError:  # scikit-learn refuses the row
        with pytest.raises(psycopg.Error) as refused:
            conn.execute(insert, list(row.values()))
        assert refused.value.sqlstate == ("22003" if "Infinity" in str(value) else "22004")
        assert f'column "{column}"' in refused.value.diag.message_primary
        assert conn.execute("SELECT count(*) FROM visits").fetchone()[0] == 0
        return
    assert conn.execute(insert, list(row.values())).fetchone()[0] == expected


def test_mixed_type_columns_of_every_kind_score_as_scikit_learn(conn):
    """char(n) (with its padding), an enum, varchar, real (by its text), numeric, integer and boolean columns: each
    row gets what scikit-learn predicts from the values as the columns show them."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame({"code": ["ab    ", "cd    ", "ab", "cd"] * 5, "tier": ["gold", "tin"] * 10,
                          "city": ["Oslo", "Rome", "Oslo", "Lima", "Rome"] * 4, "ratio": [0.1 * i for i in range(20)],
                          "amount": [1.25 * i for i in range(20)], "count": list(range(20)),
                          "flag": [1.0, 0.0, 0.0, 1.0] * 5})
    model = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["code", "tier", "city"]),
                                                  remainder="passthrough"),
                          LinearRegression()).fit(frame, [float(i % 7) + 0.37 * i for i in range(20)])
    upload(conn, "kinds", model)
    conn.execute("CREATE TYPE tier AS ENUM ('tin', 'gold')")
    conn.execute("CREATE TABLE items (id serial PRIMARY KEY, flag boolean, count integer, amount numeric(8, 2), "
                 "ratio real, city varchar(10), tier tier, code char(6), out float8)")
    conn.execute("SELECT pgml_trigger.attach('items', 'kinds', 'out')")
    assert "bpcharout" in conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'score_1'").fetchone()[0]
    conn.execute("INSERT INTO items (code, tier, city, ratio, amount, count, flag) VALUES "
                 "('ab', 'gold', 'Oslo', 0.1, 2.50, 3, true), ('cd', 'tin', 'Lima', 1.7, 0.25, -4, false), "
                 "('x', 'tin', 'Rome', 3.3e-5, 12.75, 7, true)")
    # As the columns show them: "ab    " as char(6) pads it, 0.1 as a real prints it; true and false are 1 and 0.
    shown = pd.DataFrame({"code": ["ab    ", "cd    ", "x     "], "tier": ["gold", "tin", "tin"],
                          "city": ["Oslo", "Lima", "Rome"], "ratio": [0.1, 1.7, 3.3e-5], "amount": [2.5, 0.25, 12.75],
                          "count": [3, -4, 7], "flag": [1.0, 0.0, 1.0]})
    got = [out for (out,) in conn.execute("SELECT out FROM items ORDER BY id")]
    assert got == _offline(model, shown)


def test_detach_removes_trigger_function_and_record(conn, bc):
    X, _ = bc
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    conn.execute("SELECT pgml_trigger.detach('tumors', 'score')")
    copy_rows(conn, "tumors", X.iloc[:1])
    assert conn.execute("SELECT score FROM tumors").fetchone()[0] is None
    assert conn.execute("SELECT count(*) FROM pgml_trigger.attachments").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tumors'::regclass").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'score\\_%' "
                        "AND pronamespace = 'pgml_trigger'::regnamespace").fetchone()[0] == 0
    with pytest.raises(psycopg.errors.UndefinedObject, match='no model is attached to column "score"'):
        conn.execute("SELECT pgml_trigger.detach('tumors', 'score')")


def test_attaching_again_replaces_the_attachment(conn, bc):
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc@1', 'score')")
    assert conn.execute("SELECT model_ref FROM pgml_trigger.attachments").fetchall() == [("bc@1",)]
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'tumors'::regclass").fetchone()[0] == 1


def test_dropping_the_table_forgets_the_attachment(conn, bc):
    conn.execute("SELECT pgml_trigger.attach('tumors', 'bc', 'score')")
    conn.execute("DROP TABLE tumors")
    assert conn.execute("SELECT count(*) FROM pgml_trigger.attachments").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM pg_proc WHERE proname LIKE 'score\\_%' "
                        "AND pronamespace = 'pgml_trigger'::regnamespace").fetchone()[0] == 0


def test_trigger_follows_the_production_alias(conn, connect):
    X, y = trained.diabetes()
    from sklearn.linear_model import Ridge

    first, second = Ridge(alpha=0.1).fit(X, y), Ridge(alpha=50.0).fit(X, y)
    upload(conn, "d", first, alias="production")
    upload(conn, "d", second)
    load_table(conn, "patients", X.iloc[:0], extra={"risk": "float8"})
    conn.execute("SELECT pgml_trigger.attach('patients', 'd', 'risk')")
    writer = connect()
    copy_rows(writer, "patients", X.iloc[:1])
    conn.execute("SELECT pgml_trigger.set_alias('d', 'production', 2)")
    copy_rows(writer, "patients", X.iloc[:1])
    got = [r for (r,) in conn.execute("SELECT risk FROM patients ORDER BY id")]
    expected = [float(first.predict(X.iloc[[0]])[0]), float(second.predict(X.iloc[[0]])[0])]
    assert got == pytest.approx(expected, rel=linear.RTOL, abs=linear.ATOL)  # the trigger's SQL arithmetic

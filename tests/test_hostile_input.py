"""Random and adversarial input at every SQL entry point.

Every case ends in a correct result or a clean SQL error: a SQLSTATE that is
neither 38000 (external routine exception) nor XX000 (internal error), the
connection alive, the session usable, and the tables as they were.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections import Counter

import numpy as np
import pandas as pd
import psycopg
import pytest
import trained
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from threadpoolctl import threadpool_limits

from pgml_trigger import upload
from pgml_trigger.uploader import linear

EXAMPLES = 200
HOSTILE_TABLE = 'x"; DROP TABLE t; --'
HOSTILE_SCHEMA = "my schema"
HOSTILE_OUTPUT = 'score "out"; --'
INJECTIONS = ["'; DROP TABLE t; --", '"; DROP TABLE t; --', "$$; DROP TABLE t; $$", "reg'--", "reg@production'--",
              "pgml_trigger.models", "t", "public.t", "\\", "%s", "%I", "' OR '1'='1", "ünïcödé", "名前", "🙂",
              "a" * 300, " ", "reg ", "reg@", "@1", "reg@1@1", "reg@0", "reg@-1", "reg@999999999", "reg@9999999999"]
MODEL_REFS = ["reg", "reg@1", "reg@production", "iris", "mixed", "nope", "", *INJECTIONS]
cases: Counter[str] = Counter()

hypothesis_settings = settings(max_examples=EXAMPLES, deadline=None, database=None,
                               suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                      HealthCheck.data_too_large, HealthCheck.large_base_example])

# PostgreSQL text holds no NUL, and UTF-8 no lone surrogate.
texts = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]), max_size=80)
model_refs = st.one_of(st.sampled_from(MODEL_REFS), texts)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(),
                   st.sampled_from([0.0, -0.0, 1e308, -1e308, 5e-324, float("nan"), float("inf")]))
float_arrays = st.one_of(
    st.lists(floats, max_size=14),
    st.lists(st.floats(-10, 10), min_size=10, max_size=10),
    st.integers(0, 3).map(lambda n: [0.5] * (100_000 * n)),  # empty and huge
)
# JSON has no NaN or Infinity: json.dumps would write them, and the ::jsonb cast refuse them before any call.
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), texts)
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=5),
                                                                 st.dictionaries(texts, inner, max_size=5)),
                           max_leaves=30)
class RawJson(str):
    """JSON text sent as is: nested deeper than Python's json module (and so psycopg's Jsonb) can write."""


REG_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
feature_objects = st.one_of(
    json_values,
    st.fixed_dictionaries({name: st.one_of(st.floats(-1, 1), json_values) for name in REG_FEATURES}),
    st.fixed_dictionaries({name: st.floats(-1, 1) for name in REG_FEATURES}, optional={"extra": json_values}),
    st.integers(1, 3).map(lambda depth: RawJson("[" * (depth * 3000) + "]" * (depth * 3000))),  # deep
    st.integers(1, 3).map(lambda depth: RawJson('{"age": ' * (depth * 3000) + "1" + "}" * (depth * 3000))),
    st.integers(1, 2).map(lambda n: {f"k{i}": i for i in range(50_000 * n)}),  # large
    st.integers(4301, 6000).map(lambda digits: RawJson('{"age": 1' + "0" * digits + "}")),  # more than Python parses
)


@pytest.fixture
def world(conn):
    """Models, a table each scoring entry point must leave alone, and a table with hostile identifiers."""
    upload(conn, "reg", trained.diabetes_ridge(), alias="production")
    upload(conn, "iris", trained.iris_text_labels()[0])
    upload(conn, "mixed", trained.mixed_pipeline())
    conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    conn.execute("INSERT INTO t VALUES (1), (2)")
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(HOSTILE_SCHEMA)))
    columns = sql.SQL(", ").join(sql.SQL("{} float8").format(sql.Identifier(name)) for name in REG_FEATURES)
    conn.execute(sql.SQL("CREATE TABLE {}.{} ({}, {} float8, {} text)").format(
        sql.Identifier(HOSTILE_SCHEMA), sql.Identifier(HOSTILE_TABLE), columns, sql.Identifier(HOSTILE_OUTPUT),
        sql.Identifier("label; --")))
    return conn


def _state(conn):
    return conn.execute("""
        SELECT (SELECT array_agg(sha256 || name || version ORDER BY name, version) FROM pgml_trigger.models),
               (SELECT array_agg(name || alias || version ORDER BY name, alias) FROM pgml_trigger.aliases),
               (SELECT array_agg(target::text || output_column ORDER BY id) FROM pgml_trigger.attachments),
               (SELECT array_agg(id ORDER BY id) FROM t),
               (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal)""").fetchone()


def _run(conn, entry_point, statement, params=None):
    """Execute; return ("ok", rows) or ("error", sqlstate) after checking the error was a clean one."""
    cases[entry_point] += 1
    before = _state(conn)
    try:
        return "ok", conn.execute(statement, params).fetchall()
    except psycopg.Error as error:
        assert not conn.closed and not conn.broken, f"connection lost: {error!r}"
        assert error.sqlstate, f"no SQLSTATE: {error!r}"
        assert error.sqlstate not in ("38000", "XX000"), f"{error.sqlstate}: {error}"
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert _state(conn) == before
        return "error", error.sqlstate


def _same(got, expected) -> bool:
    return got == expected or (isinstance(got, float) and math.isnan(got) and math.isnan(expected))


def _writes_as_json(features) -> bool:
    try:
        json.dumps(features, allow_nan=False)
        return True
    except ValueError:
        return False


def _offline(values):
    row = np.array([values], dtype=np.float64)
    return float(trained.diabetes_ridge().predict(pd.DataFrame(row, columns=REG_FEATURES))[0])


REG_REFS = ("reg", "reg@1", "reg@production")
ALIAS = r"[A-Za-z_][A-Za-z0-9_.-]{0,62}"  # set_alias's rule (sql/resolution.sql)


def _finite_numbers(values, count: int) -> bool:
    """A list of ``count`` finite numbers (JSON true and false are not numbers to a model not fitted on them)."""
    return (isinstance(values, list) and len(values) == count
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values))


def _reg_features(features) -> list | None:
    """The values of a valid by-name input to reg (every feature a finite number), else None."""
    if not isinstance(features, dict) or any(name not in features for name in REG_FEATURES):
        return None
    values = [features[name] for name in REG_FEATURES]
    return [float(v) for v in values] if _finite_numbers(values, len(REG_FEATURES)) else None


def _scored(outcome, result, what):
    """Valid input must score: a clean refusal of it would hide an entry point that refuses everything."""
    assert outcome == "ok", f"valid input to {what} refused with SQLSTATE {result}"
    return result[0][0]


def _as_offline(outcome, result, what, expected, **approx):
    """The answer must be the model's own (within ``approx``); where the model computes no finite number (a feature
    near float8's largest, multiplied), the answer must be a refusal with 22003, never a NaN or an infinity."""
    values = np.atleast_1d(np.asarray(expected, dtype=np.float64))
    if not np.isfinite(values).all():
        assert (outcome, result) == ("error", "22003"), f"{what} gave {result} where the model computes {expected}"
        return
    got = _scored(outcome, result, what)
    assert got == (pytest.approx(expected, **approx) if approx else expected)


IRIS_FEATURES = ["x0", "x1", "x2", "x3"]
MIXED_NUMBERS, MIXED_TEXTS = ["age", "bmi", "bp", "s1", "s5"], ["sex", "bmi_band"]
RESOLVED = {"reg": ("reg", 1), "reg@1": ("reg", 1), "reg@production": ("reg", 1), "iris": ("iris", 1),
            "iris@1": ("iris", 1), "mixed": ("mixed", 1), "mixed@1": ("mixed", 1)}


def _by_name_offline(function: str, model: str, features) -> tuple[str, object] | None:
    """What the model itself answers for a by-name input it takes: (function's answer kind, answer); None where the
    input or the call is one the model has no answer for (a refusal is the right outcome)."""
    if not isinstance(features, dict) or RESOLVED.get(model) is None:
        return None
    name = RESOLVED[model][0]
    if name == "reg" and function == "predict" and _reg_features(features) is not None:
        return "value", _offline(_reg_features(features))
    if name == "iris" and function != "predict" and all(name in features for name in IRIS_FEATURES):
        values = [features[name] for name in IRIS_FEATURES]
        if _finite_numbers(values, 4):
            iris = trained.iris_text_labels()[0]
            return ("label", iris.predict([values])[0]) if function == "predict_label" else \
                ("proba", list(iris.predict_proba([values])[0]))
    if name == "mixed" and function == "predict" and all(name in features for name in MIXED_NUMBERS + MIXED_TEXTS):
        numbers, texts = [features[n] for n in MIXED_NUMBERS], [features[n] for n in MIXED_TEXTS]
        if _finite_numbers(numbers, 5) and all(text is None or isinstance(text, str) for text in texts):
            # A NULL text is an unknown category to the model's OneHotEncoder(handle_unknown="ignore").
            row = pd.DataFrame([numbers + [np.nan if text is None else text for text in texts]],
                               columns=MIXED_NUMBERS + MIXED_TEXTS).astype({text: object for text in MIXED_TEXTS})
            return "value", float(trained.mixed_pipeline().predict(row)[0])
    return None


@hypothesis_settings
@given(function=st.sampled_from(["predict", "predict_label", "predict_proba"]), model=st.one_of(model_refs, st.none()),
       features=st.one_of(float_arrays, st.none()))
def test_scoring_with_arrays(world, function, model, features):
    outcome, result = _run(world, function, sql.SQL("SELECT pgml_trigger.{}(%s, %s::float8[])").format(
        sql.Identifier(function)), [model, features])
    iris = trained.iris_text_labels()[0]
    if model is None or features is None:
        assert (outcome, result) == ("ok", [(None,)])  # STRICT
    elif function == "predict" and model in REG_REFS and _finite_numbers(features, 10):
        _as_offline(outcome, result, function, _offline(features))
    elif function == "predict_label" and model == "iris" and _finite_numbers(features, 4):
        assert _scored(outcome, result, function) == iris.predict([features])[0]
    elif function == "predict_proba" and model == "iris" and _finite_numbers(features, 4):
        _as_offline(outcome, result, function, list(iris.predict_proba([features])[0]), rel=1e-9, abs=1e-12)
    else:
        assert outcome == "error", f"{function}({model!r}, {len(features)} values) scored: {result}"


@hypothesis_settings
@given(function=st.sampled_from(["predict", "predict_label", "predict_proba"]), model=st.one_of(model_refs, st.none()),
       features=st.one_of(feature_objects, st.none()))
def test_scoring_with_jsonb(world, function, model, features):
    param = features if isinstance(features, RawJson) or features is None else Jsonb(features)
    outcome, result = _run(world, function, sql.SQL("SELECT pgml_trigger.{}(%s, %s::jsonb)").format(
        sql.Identifier(function)), [model, param])
    expected = None if isinstance(features, RawJson) else _by_name_offline(function, model, features)
    if not _writes_as_json(features):  # NaN or Infinity in it: psycopg writes text that is not JSON
        assert (outcome, result) == ("error", "22P02")
    elif model is None or features is None:
        assert (outcome, result) == ("ok", [(None,)])
    elif expected is None:
        assert outcome == "error", f"{function}({model!r}) scored: {result}"
    elif expected[0] == "label":
        assert _scored(outcome, result, function) == expected[1]
    else:
        _as_offline(outcome, result, function, expected[1], rel=1e-9, abs=1e-12)


@hypothesis_settings
@given(function=st.sampled_from(["predict", "predict_label", "predict_proba", "resolve_model", "set_alias"]),
       sql_type=st.sampled_from(["text", "int", "int[]", "numeric[]", "boolean", "text[]", "json", "bytea", "point"]),
       value=st.one_of(st.sampled_from(["1", "{1,2}", "{}", "NaN", "(1,2)", "\\x00", "{{1},{2}}"]), texts))
def test_wrong_types(world, function, sql_type, value):
    """Arguments of types no signature takes: a clean error (mostly 42883 or a cast's 22P02), never a crash."""
    second = sql.SQL("%s::{}").format(sql.SQL(sql_type))
    statement = {
        "resolve_model": sql.SQL("SELECT pgml_trigger.resolve_model({})").format(second),
        "set_alias": sql.SQL("SELECT pgml_trigger.set_alias('reg', 'a', {})").format(second),
    }.get(function, sql.SQL("SELECT pgml_trigger.{}('reg', {})").format(sql.Identifier(function), second))
    outcome, result = _run(world, function, statement, [value])
    if outcome == "ok":
        # Only what a cast makes a valid call: resolve_model of text, set_alias of an existing version.
        assert function in ("resolve_model", "set_alias") or result == [(None,)]
        if function == "set_alias":
            world.execute("DELETE FROM pgml_trigger.aliases WHERE alias = 'a'")


@hypothesis_settings
@given(model=st.one_of(model_refs, st.none()))
def test_resolve_model(world, model):
    outcome, result = _run(world, "resolve_model", "SELECT * FROM pgml_trigger.resolve_model(%s)", [model])
    if model is None:
        assert (outcome, result) == ("ok", [(None, None)])
    elif model in RESOLVED:
        assert (outcome, result) == ("ok", [RESOLVED[model]])
    else:
        assert outcome == "error", f"{model!r} resolved to {result}"


@hypothesis_settings
@given(name=st.one_of(model_refs, st.none()), alias=st.one_of(st.sampled_from(["staging", "production", "1a"]),
                                                              texts, st.none()),
       version=st.one_of(st.integers(-3, 3), st.sampled_from([2**31 - 1, -(2**31)]), st.none()))
def test_set_alias(world, name, alias, version):
    outcome, result = _run(world, "set_alias", "SELECT pgml_trigger.set_alias(%s, %s, %s::int)",
                           [name, alias, version])
    if None in (name, alias, version):
        assert (outcome, result) == ("ok", [(None,)])  # STRICT
    elif name in ("reg", "iris", "mixed") and version == 1 and re.fullmatch(ALIAS, alias):
        assert (outcome, result) == ("ok", [(1,)]), f"set_alias({name!r}, {alias!r}, 1) refused: {result}"
        assert world.execute("SELECT * FROM pgml_trigger.resolve_model(%s)", [f"{name}@{alias}"]).fetchone() == (
            name, 1)
        world.execute("SELECT pgml_trigger.set_alias('reg', 'production', 1)")
        world.execute("DELETE FROM pgml_trigger.aliases WHERE NOT (name = 'reg' AND alias = 'production')")
    else:
        assert outcome == "error", f"set_alias({name!r}, {alias!r}, {version}) gave {result}"


TARGETS = [f'"{HOSTILE_SCHEMA}"."{HOSTILE_TABLE.replace(chr(34), chr(34) * 2)}"', "t", "pgml_trigger.models",
           "pg_class", "nope", HOSTILE_TABLE, '"t', "t; DROP TABLE t", ""]
COLUMNS = [HOSTILE_OUTPUT, "label; --", "age", "nope", "", "id"]


column_lists = st.lists(st.one_of(st.sampled_from(COLUMNS + REG_FEATURES), texts, st.none()), max_size=12)
attach_arguments = st.one_of(
    # Plausible: the hostile table, a model and output that fit, features in any order (or not quite).
    st.tuples(st.just(TARGETS[0]), st.sampled_from(["reg", "reg@production", "reg@1", "iris"]),
              st.sampled_from(COLUMNS[:2]), st.one_of(st.none(), st.permutations(REG_FEATURES), column_lists)),
    # Anything.
    st.tuples(st.one_of(st.sampled_from(TARGETS), texts, st.none()), st.one_of(model_refs, st.none()),
              st.one_of(st.sampled_from(COLUMNS), texts, st.none()), st.one_of(st.none(), column_lists)),
)


@hypothesis_settings
@given(arguments=attach_arguments, row=st.lists(st.floats(-0.2, 0.2), min_size=10, max_size=10))
def test_attach_and_detach(world, arguments, row):
    target, model, output, features = arguments
    takes = _feeds(target, model, output, features)
    outcome, result = _run(world, "attach", "SELECT pgml_trigger.attach(%s, %s, %s, %s)",
                           [target, model, output, features])
    if outcome != "ok":
        assert takes is None, f"attach({model!r}, {output!r}, {features}) refused with SQLSTATE {result}"
        outcome, _ = _run(world, "detach", "SELECT pgml_trigger.detach(%s, %s)", [target, output])
        assert outcome == "error" or None in (target, output)
        return
    assert takes is not None, f"attach({target!r}, {model!r}, {output!r}, {features}) was accepted"
    # It worked: then it scores, with hostile identifiers all along, and detaches to leave nothing behind.
    table = sql.Identifier(HOSTILE_SCHEMA, HOSTILE_TABLE)
    outcome, result = _run(world, "scoring trigger", sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING {}").format(
        table, sql.SQL(", ").join(map(sql.Identifier, REG_FEATURES)), sql.SQL(", ").join([sql.Placeholder()] * 10),
        sql.Identifier(output)), row)
    got = _scored(outcome, result, "a scoring trigger")
    values = dict(zip(REG_FEATURES, row))
    if takes == "reg":
        # reg is linear: the trigger computes it as SQL arithmetic, within linear.RTOL/ATOL
        assert got == pytest.approx(_offline([values[column] for column in features or REG_FEATURES]),
                                    rel=linear.RTOL, abs=linear.ATOL)
    else:
        assert got == trained.iris_text_labels()[0].predict([[values[column] for column in features]])[0]
    world.execute(sql.SQL("DELETE FROM {}").format(table))
    assert _run(world, "detach", "SELECT pgml_trigger.detach(%s, %s)", [target, output])[0] == "ok"
    assert world.execute("SELECT count(*) FROM pgml_trigger.attachments").fetchone() == (0,)


def _feeds(target, model, output, features, trigger: bool = True) -> str | None:
    """Which model a scoring trigger (or score()) takes these arguments for ("reg", "iris"), or None where it must
    refuse them: the hostile table's numeric columns feed reg's ten features into its numeric output column, or
    iris's four into its text one. A trigger takes each feature from another column (its UPDATE OF list names each
    once); score() may read one column for two features."""
    if target != TARGETS[0] or model is None:
        return None
    columns = features is not None and set(features) <= set(REG_FEATURES) and (
        len(set(features)) == len(features) or not trigger)
    if model in REG_REFS and output == HOSTILE_OUTPUT and (features is None or (columns and len(features) == 10)):
        return "reg"
    if model == "iris" and output == "label; --" and columns and len(features) == 4:
        return "iris"
    return None


rows_2d = st.one_of(
    st.lists(st.lists(st.floats(-1, 1), min_size=10, max_size=10), min_size=1, max_size=20),  # what reg takes
    st.lists(st.lists(floats, min_size=0, max_size=12), max_size=6),  # ragged, NULLs, NaN, Infinity, empty
    st.lists(st.lists(st.lists(st.floats(-1, 1), min_size=2, max_size=2), min_size=2, max_size=2), max_size=3),  # 3-D
    st.integers(1, 2).map(lambda n: [[0.1] * 10 for _ in range(20_000 * n)]),  # many rows
)
jsonb_rows = st.lists(st.one_of(st.none(), feature_objects.filter(lambda f: not isinstance(f, RawJson))), max_size=8)


@hypothesis_settings
@given(model=st.one_of(model_refs, st.none()), rows=st.one_of(rows_2d, st.none()))
def test_predict_batch_with_arrays(world, model, rows):
    outcome, result = _run(world, "predict_batch", "SELECT pgml_trigger.predict_batch(%s, %s::float8[])",
                           [model, rows])
    if outcome == "error" and result in ("22P02", "2202E"):  # not an array PostgreSQL takes ('{{}}', ragged)
        assert rows and (not all(rows) or len({len(row) for row in rows}) > 1 or any(not row[0] for row in rows))
    elif model is None or rows is None:
        assert (outcome, result) == ("ok", [(None,)])
    elif model in REG_REFS and rows and all(_finite_numbers(row, 10) for row in rows):
        with threadpool_limits(1):  # one matrix on one thread, as the server scores it
            offline = trained.diabetes_ridge().predict(pd.DataFrame(np.array(rows, dtype=np.float64),
                                                                    columns=REG_FEATURES))
        assert _scored(outcome, result, "predict_batch") == pytest.approx(list(offline), rel=1e-12)
    elif outcome == "ok" and rows == []:
        assert result == [([],)]


@hypothesis_settings
@given(model=st.one_of(model_refs, st.none()), rows=st.one_of(jsonb_rows, st.none()))
def test_predict_batch_with_jsonb(world, model, rows):
    if rows is not None and not all(_writes_as_json(row) for row in rows):
        rows = [row for row in rows if _writes_as_json(row)]
    param = None if rows is None else [None if row is None else Jsonb(row) for row in rows]
    outcome, result = _run(world, "predict_batch", "SELECT pgml_trigger.predict_batch(%s, %s::jsonb[])",
                           [model, param])
    expected = None if rows is None else [None if row is None else _by_name_offline("predict", model or "", row)
                                          for row in rows]
    if model is None or rows is None:
        assert (outcome, result) == ("ok", [(None,)])
    elif model in RESOLVED and RESOLVED[model][0] == "iris":
        assert outcome == "error", f"predict_batch of iris, whose labels are text, scored: {result}"
    elif model in RESOLVED and all(row is None for row in rows):
        assert (outcome, result) == ("ok", [([None] * len(rows),)])  # a null row predicts NULL
    elif model in RESOLVED and all(row is None or want is not None for row, want in zip(rows, expected)):
        values = [None if want is None else want[1] for want in expected]
        if not all(value is None or math.isfinite(value) for value in values):
            assert (outcome, result) == ("error", "22003")
        else:
            got = _scored(outcome, result, "predict_batch")
            assert got == [None if value is None else pytest.approx(value, rel=1e-12) for value in values]
    else:
        assert outcome == "error", f"predict_batch({model!r}, {len(rows)} rows) scored: {result}"


@hypothesis_settings
@given(model=st.one_of(st.sampled_from(["reg", "iris"]), model_refs, st.none()),
       target=st.one_of(st.sampled_from(TARGETS), texts, st.none()),
       output=st.one_of(st.sampled_from(COLUMNS), texts, st.none()),
       features=st.one_of(st.none(), st.permutations(REG_FEATURES), column_lists),
       batch_size=st.one_of(st.integers(-2, 4), st.sampled_from([2**31 - 1, -(2**31)]), st.none()))
def test_score(world, model, target, output, features, batch_size):
    table = sql.Identifier(HOSTILE_SCHEMA, HOSTILE_TABLE)
    world.execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        table, sql.SQL(", ").join(map(sql.Identifier, REG_FEATURES)), sql.SQL(", ").join([sql.Placeholder()] * 10)),
        [0.01 * i for i in range(10)])
    before = world.execute(sql.SQL("SELECT * FROM {}").format(table)).fetchall()
    outcome, result = _run(world, "score", "SELECT pgml_trigger.score(%s, %s, %s, %s, %s::int)",
                           [model, target, output, features, batch_size])
    takes = _feeds(target, model, output, features, trigger=False) if batch_size is not None and batch_size >= 1 \
        else None
    if takes is None:
        assert outcome == "error", f"score({model!r}, {target!r}, {output!r}, {features}, {batch_size}) gave {result}"
        assert world.execute(sql.SQL("SELECT * FROM {}").format(table)).fetchall() == before
    else:
        assert (outcome, result) == ("ok", [(1,)]), f"score({model!r}, ..., {features}) refused: {result}"
        scored = world.execute(sql.SQL("SELECT {} FROM {}").format(sql.Identifier(output), table)).fetchone()[0]
        values = dict(zip(REG_FEATURES, [0.01 * i for i in range(10)]))
        if takes == "reg":
            assert scored == pytest.approx(_offline([values[c] for c in features or REG_FEATURES]), rel=1e-12)
        else:
            assert scored == trained.iris_text_labels()[0].predict([[values[c] for c in features]])[0]
    world.execute(sql.SQL("DELETE FROM {}").format(table))


def test_zz_report_cases(figure):
    """Runs after the property tests in this module (pytest keeps file order)."""
    for entry_point, count in sorted(cases.items()):
        figure(f"hostile cases at {entry_point}", count)
    figure("hostile cases in all", sum(cases.values()))


def test_numbers_a_float32_model_would_saturate_are_out_of_range(conn):
    """A forest reads float32: 1e300 or 3.5e38 would be infinity to it (scikit-learn refuses them), so the server
    refuses them with 22003 naming the feature, by name, by position and in a batch; a linear model computing in
    double takes them."""
    X, _ = trained.breast_cancer()
    forest = trained.forest_breast_cancer()
    upload(conn, "forest", forest, sample=X)
    upload(conn, "reg", trained.diabetes_ridge())
    for value in (1e300, 3.5e38, -3.5e38):
        row = X.iloc[0].to_dict() | {"mean_radius": value}
        with warnings.catch_warnings(), pytest.raises(ValueError, match="too large"):
            warnings.simplefilter("ignore")  # numpy's overflow in the cast to float32
            forest.predict(pd.DataFrame([row]))
        for statement, argument in (("SELECT pgml_trigger.predict_label('forest', %s::jsonb)", Jsonb(row)),
                                    ("SELECT pgml_trigger.predict_proba('forest', %s::float8[])", list(row.values())),
                                    ("SELECT pgml_trigger.predict_batch('forest', ARRAY[%s::float8[]])",
                                     list(row.values()))):
            with pytest.raises(psycopg.errors.NumericValueOutOfRange, match='feature "mean_radius" is .*, beyond'):
                conn.execute(statement, [argument])
    assert conn.execute("SELECT pgml_trigger.predict('reg', %s::float8[])", [[1e300] + [0.0] * 9]).fetchone()[0] \
        == pytest.approx(_offline([1e300] + [0.0] * 9), rel=1e-12)


def test_probabilities_are_within_0_and_1_and_sum_to_1(conn):
    """A forest's float32 graph puts some probabilities a hair outside [0, 1] (-3.6e-7, 1.0000004), and its rows sum
    to 1 within float32's precision only: the server clips them and each row sums to 1 in double."""
    X, _ = trained.breast_cancer()
    forest = trained.forest_breast_cancer()
    upload(conn, "forest", forest, sample=X)
    assert conn.execute("SELECT scoring_path FROM pgml_trigger.models").fetchone() == ("onnx",)
    rows = np.array([proba for (proba,) in conn.execute(
        "SELECT pgml_trigger.predict_proba('forest', r) FROM jsonb_array_elements(%s) AS r",
        [Jsonb(X.to_dict("records"))])])
    assert rows.min() >= 0.0 and rows.max() <= 1.0
    assert np.allclose(rows.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.allclose(rows, forest.predict_proba(X), atol=1e-6)


def test_booleans_and_twice_named_columns_are_refused(conn):
    """JSON true is no number to a model not fitted on booleans; a row with two columns of a feature's name (a
    join's) is ambiguous."""
    upload(conn, "reg", trained.diabetes_ridge())
    X, _ = trained.diabetes()
    row = X.iloc[0].to_dict()
    with pytest.raises(psycopg.errors.DatatypeMismatch, match='feature "sex" of model reg@1 must be a number, got '
                                                              "JSON boolean true"):
        conn.execute("SELECT pgml_trigger.predict('reg', %s::jsonb)", [Jsonb(row | {"sex": True})])
    conn.execute("CREATE TABLE patients (id int, " + ", ".join(f"{name} float8" for name in X.columns) + ")")
    conn.execute("INSERT INTO patients VALUES (1, " + ", ".join(["%s"] * len(X.columns)) + ")", list(row.values()))
    with pytest.raises(psycopg.errors.AmbiguousColumn, match='has two columns named "bmi", a feature of the model'):
        conn.execute("SELECT pgml_trigger.predict('reg', j) "
                     "FROM (SELECT p.*, p.bmi * 2 AS bmi FROM patients AS p) AS j")
    assert conn.execute("SELECT pgml_trigger.predict('reg', p) FROM patients AS p").fetchone()[0] == pytest.approx(
        _offline(list(row.values())), rel=1e-12)


def _row_by_row(model, frame):
    """As the trigger scores: one row at a time (a batch may differ in the last bit)."""
    return [float(model.predict(frame.iloc[[i]])[0]) for i in range(len(frame))]


def test_hostile_identifiers_through_attach_scoring_and_detach(conn):
    """Table, schema, feature and output column names with quotes, spaces and SQL in them."""
    numbers = ['a "quoted" col', "b; DROP TABLE t; --", "c $$ '"]
    text_feature = "d') OR true; --"
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({name: rng.normal(size=60) for name in numbers})
    frame[text_feature] = rng.choice(["x'y", 'z"w', "$$"], size=60)
    target = frame[numbers[0]] * 2 + (frame[text_feature] == "$$") * 3
    numeric_model = LinearRegression().fit(frame[numbers], target)
    mixed_model = make_pipeline(make_column_transformer((OneHotEncoder(), [text_feature]), remainder="passthrough"),
                                LinearRegression()).fit(frame, target)
    upload(conn, "numeric", numeric_model)
    upload(conn, "mixed", mixed_model)
    conn.execute("CREATE TABLE t (id int)")
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(HOSTILE_SCHEMA)))
    table = sql.Identifier(HOSTILE_SCHEMA, HOSTILE_TABLE)
    conn.execute(sql.SQL("CREATE TABLE {} ({}, {} text, {} float8, {} float8)").format(
        table, sql.SQL(", ").join(sql.SQL("{} float8").format(sql.Identifier(name)) for name in numbers),
        sql.Identifier(text_feature), sql.Identifier(HOSTILE_OUTPUT), sql.Identifier("mixed out")))
    regclass = table.as_string(conn)
    conn.execute("SELECT pgml_trigger.attach(%s, 'numeric', %s)", [regclass, HOSTILE_OUTPUT])
    conn.execute("SELECT pgml_trigger.attach(%s, 'mixed', %s)", [regclass, "mixed out"])
    comment = conn.execute("SELECT obj_description(tgfoid) FROM pg_trigger WHERE tgname = 'pgml_score_mixed out'")
    assert HOSTILE_TABLE.replace('"', '""') in comment.fetchone()[0]

    columns = sql.SQL(", ").join(map(sql.Identifier, frame.columns))
    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, columns)) as copy:
        for row in frame.itertuples(index=False):
            copy.write_row(list(row))
    got = conn.execute(sql.SQL("SELECT {}, {} FROM {}").format(
        sql.Identifier(HOSTILE_OUTPUT), sql.Identifier("mixed out"), table)).fetchall()
    assert [g[0] for g in got] == pytest.approx(_row_by_row(numeric_model, frame[numbers]), rel=linear.RTOL,
                                                abs=linear.ATOL)  # SQL arithmetic
    assert [g[1] for g in got] == _row_by_row(mixed_model, frame)
    conn.execute(sql.SQL("UPDATE {} SET {} = 'x''y'").format(table, sql.Identifier(text_feature)))
    frame[text_feature] = "x'y"
    got = conn.execute(sql.SQL("SELECT {} FROM {}").format(sql.Identifier("mixed out"), table)).fetchall()
    assert [g[0] for g in got] == _row_by_row(mixed_model, frame)

    conn.execute("SELECT pgml_trigger.detach(%s, %s)", [regclass, HOSTILE_OUTPUT])
    conn.execute("SELECT pgml_trigger.detach(%s, 'mixed out')", [regclass])
    assert conn.execute("SELECT count(*) FROM pgml_trigger.attachments").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass", [regclass]).fetchone() == (0,)
    assert conn.execute("SELECT to_regclass('t') IS NOT NULL").fetchone() == (True,)

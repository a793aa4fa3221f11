"""The breadth suite: every pipeline of tests/breadth_cases.py, fitted on clean data and on data with holes, is
uploaded into one database and scored in SQL the ways users score, against the library's own output on the same
rows: predict(m, row), predict_label(m, row) and predict_proba(m, row) for every row of a table (rows with a NULL
among them), predict_batch(m, json_agg(t)), and a row trigger filling a column as the rows are inserted.

Each case ends in one verdict:

* exact: every answer is the library's (labels equal; values and probabilities within the tolerance below), and
  every row the library cannot score (a missing value where the model takes none) is refused with the SQLSTATE
  a user is told to expect (22004), as is every call the model has no answer for (42809: predict_proba of a
  regressor or of a classifier without probabilities, predict() of text labels);
* refused: the upload refused the model, naming the step it cannot take;
* failing: accepted at upload, then an error where the library gives an answer (or another SQLSTATE), or a
  refusal at upload that names no step;
* wrong: accepted, and an answer that is not the library's, or an answer where the library refuses.

Failing and wrong must be none. Tolerance: a model scored by an ONNX graph within what the upload's own check
allows, compile.RTOL relative and compile.ATOL absolute (for regression values, ATOL plus RTOL times the largest
value, as float32 sums of trees need); the model's own library and SQL arithmetic in a row trigger within 1e-9
relative. Linear models score in double: test_linear_models_score_in_double holds them to 1e-12.

docs/support.md is generated from the verdicts (support_table()): test_support_table_is_the_committed_one fails
when the committed file differs; run this module with PGML_TRIGGER_WRITE_SUPPORT=1 to write it instead.
"""

from __future__ import annotations

import os
import time
import warnings
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from breadth_cases import CASES, SCORED_ROWS, Case, dataset, fitted
from psycopg import sql
from tables import copy_rows, create_table

from pgml_trigger import upload
from pgml_trigger.errors import PgmlTriggerError
from pgml_trigger.uploader import compile as compiled_path

SUPPORT = Path(__file__).resolve().parent.parent / "docs" / "support.md"
WRITE_SUPPORT = os.environ.get("PGML_TRIGGER_WRITE_SUPPORT") == "1"
TIGHT = 1e-9
VERDICTS = ("exact", "refused", "failing", "wrong")
# What a SQL user is promised for a call the model has no answer for, and for a missing value it refuses.
NO_ANSWER, REFUSED_HOLE = "42809", "22004"

TRY = """
CREATE FUNCTION breadth_try(function text, model text, features anyelement) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    result text;
BEGIN
    EXECUTE format('SELECT pgml_trigger.%I($1, $2)::text', function) INTO result USING model, features;
    RETURN result;
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR ' || SQLSTATE || ' ' || SQLERRM;
END
$$"""


@dataclass
class Outcome:
    case: Case
    holes: bool
    imputed: bool = False  # imputers were added for the holes (scikit-learn refused to fit the pipeline as it was)
    verdict: str = "exact"
    problems: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)  # class names in the model, outermost first
    transformers: set[str] = field(default_factory=set)  # of those, the ones rows flow through to the final one
    final: str = ""
    kind: str = ""  # "classifier" | "regressor"
    scoring_path: str | None = None  # "onnx (double)", "onnx (float32)", or the model's own library
    row_trigger_path: str | None = None
    refusing_steps: set[str] = field(default_factory=set)  # steps named by the 22004 errors of this model
    accepts_missing: int = 0  # features taking a NULL
    features: int = 0
    worst: float = 0.0  # largest difference from the library's answer, relative to the tolerance's scale
    seconds: float = 0.0

    def flag(self, verdict: str, problem: str) -> None:
        if VERDICTS.index(verdict) > VERDICTS.index(self.verdict):
            self.verdict = verdict
        self.problems.append(problem)


OUTCOMES: list[Outcome] = []


@pytest.fixture
def breadth(conn):
    conn.execute(TRY)
    for name in sorted({case.dataset for case in CASES}):
        data = dataset(name)
        create_table(conn, f"rows_{name}", data.scored)
        copy_rows(conn, f"rows_{name}", data.scored.astype(object).where(data.scored.notna(), None))
    return conn


def test_every_pipeline_scores_as_its_library_or_is_refused_naming_the_step(breadth, figure):
    OUTCOMES.clear()
    for case in CASES:
        for holes in (False, True):
            started = time.perf_counter()
            outcome = _run(breadth, case, holes)
            outcome.seconds = time.perf_counter() - started
            OUTCOMES.append(outcome)
            print(f"{case.id} ({'holes' if holes else 'clean'}): {outcome.verdict} {outcome.scoring_path} "
                  f"{outcome.seconds:.1f} s {'; '.join(outcome.problems[:2])}")
    counts = Counter(outcome.verdict for outcome in OUTCOMES)
    for verdict in VERDICTS:
        figure(f"breadth cases {verdict}", counts[verdict])
    figure("breadth cases in all", len(OUTCOMES))
    slowest = max(OUTCOMES, key=lambda outcome: outcome.seconds)
    figure("breadth slowest case", f"{slowest.case.id} ({'holes' if slowest.holes else 'clean'}): "
                                   f"{slowest.seconds:.1f} s")
    bad = [f"{outcome.case.id} ({'holes' if outcome.holes else 'clean'}) {outcome.verdict}: "
           f"{'; '.join(outcome.problems[:3])}" for outcome in OUTCOMES if outcome.verdict in ("failing", "wrong")]
    assert not bad, "\n".join(bad)


def test_support_table_is_the_committed_one():
    if len(OUTCOMES) != 2 * len(CASES):
        pytest.skip("the breadth suite did not run in full")
    table = support_table(OUTCOMES)
    if WRITE_SUPPORT:
        SUPPORT.write_text(table)
    assert SUPPORT.read_text() == table, ("docs/support.md differs from what the breadth suite found; "
                                          "regenerate it: PGML_TRIGGER_WRITE_SUPPORT=1 python3 -m pytest "
                                          "tests/test_breadth.py")


def test_linear_models_score_in_double(conn):
    """A linear model, alone or behind an imputer and a scaler, scores through a graph in double: within 1e-12 of
    scikit-learn (a float32 graph was 2.6e-5 off on the diabetes values), rows with holes too."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    diabetes, wine = dataset("diabetes"), dataset("wine")
    regression = LinearRegression().fit(diabetes.frame, diabetes.target)
    imputed = make_pipeline(SimpleImputer(), StandardScaler(), LinearRegression()).fit(diabetes.holed, diabetes.target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lbfgs' convergence chatter
        classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(wine.frame, wine.target)
    for name, model, data in (("regression", regression, diabetes), ("imputed", imputed, diabetes),
                              ("classifier", classifier, wine)):
        upload(conn, name, model, sample=data.frame)
        assert conn.execute("SELECT scoring_path FROM pgml_trigger.models WHERE name = %s", [name]).fetchone() == (
            "onnx",)
        create_table(conn, f"rows_{name}", data.scored)
        copy_rows(conn, f"rows_{name}", data.scored.astype(object).where(data.scored.notna(), None))
    rows = diabetes.scored.iloc[:SCORED_ROWS]
    for name, model in (("regression", regression), ("imputed", imputed)):
        got = [value for (value,) in conn.execute(sql.SQL("SELECT pgml_trigger.predict(%s, t) FROM {} AS t "
                                                          "WHERE id <= %s ORDER BY id").format(
            sql.Identifier(f"rows_{name}")), [name, SCORED_ROWS])]
        assert got == pytest.approx(list(model.predict(rows)), rel=1e-12)
    holed = diabetes.scored.iloc[SCORED_ROWS:]
    got = [value for (value,) in conn.execute("SELECT pgml_trigger.predict('imputed', t) FROM rows_imputed AS t "
                                              "WHERE id > %s ORDER BY id", [SCORED_ROWS])]
    assert got == pytest.approx(list(imputed.predict(holed)), rel=1e-12)
    got = [value for (value,) in conn.execute("SELECT pgml_trigger.predict_proba('classifier', t) "
                                              "FROM rows_classifier AS t WHERE id <= %s ORDER BY id", [SCORED_ROWS])]
    expected = classifier.predict_proba(wine.scored.iloc[:SCORED_ROWS])
    assert np.allclose(got, expected, rtol=1e-12, atol=1e-15)


# --- One case ------------------------------------------------------------------------------------------------


def _run(conn, case: Case, holes: bool) -> Outcome:
    outcome = Outcome(case, holes)
    try:
        return _scored(conn, case, holes, outcome)
    except Exception as exc:  # whatever went wrong, the case failed; the others go on
        conn.rollback()
        outcome.flag("failing", f"{type(exc).__name__}: {exc}")
        return outcome


def _scored(conn, case: Case, holes: bool, outcome: Outcome) -> Outcome:
    model, outcome.imputed = fitted(case, holes)
    data = dataset(case.dataset)
    outcome.steps = _step_names(model)
    outcome.transformers = _transformers(model)
    outcome.final = _final_step(model)
    name = f"{case.id}_{'holes' if holes else 'clean'}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the libraries' chatter while the upload checks the model
            upload(conn, name, model, sample=data.holed if holes else data.frame)
    except PgmlTriggerError as exc:
        named = [step for step in outcome.steps if step in exc.message]
        if named:
            outcome.flag("refused", exc.message)
        else:
            outcome.flag("failing", f"refused at upload naming no step: {exc.message}")
        return outcome
    _describe(conn, name, outcome)
    expected = _expectations(model, data.scored, outcome.kind)
    tolerance = _tolerance(outcome, expected)
    table = f"rows_{case.dataset}"
    for function in ("predict", "predict_label", "predict_proba"):
        got = [value for (value,) in conn.execute(
            sql.SQL("SELECT breadth_try(%s, %s, t) FROM {} AS t ORDER BY id").format(sql.Identifier(table)),
            [function, name])]
        for row, (want, answer) in enumerate(zip(expected[function], got)):
            _compare(outcome, f"{function} row {row + 1}", want, _parsed(answer, function), tolerance)
    _batches(conn, name, table, expected, outcome, tolerance)
    _trigger(conn, name, table, expected, outcome, tolerance)
    return outcome


def _describe(conn, name: str, outcome: Outcome) -> None:
    """What the catalog says of the uploaded model: how it scores, which features take a NULL, who refuses one."""
    task, path, trigger_path, inputs = conn.execute(
        "SELECT m.task, m.scoring_path, v.row_trigger_path, m.feature_inputs "
        "FROM pgml_trigger.models AS m JOIN pgml_trigger.model_versions AS v USING (name, version) "
        "WHERE m.name = %s", [name]).fetchone()
    outcome.kind = "classifier" if task == "classification" else "regressor"
    if path == "onnx":  # a graph computing in float32 limits every number to float32's range
        outcome.scoring_path = "ONNX (float32)" if any("largest" in item for item in inputs) else "ONNX (double)"
    else:
        outcome.scoring_path = {"sklearn": "scikit-learn"}.get(path, path) if outcome.case.library == "sklearn" \
            else outcome.case.library
    outcome.row_trigger_path = "SQL arithmetic" if trigger_path == "sql" else "Python"
    outcome.features = len(inputs)
    outcome.accepts_missing = sum("missing" in item for item in inputs)
    outcome.refusing_steps = {item["refused_by"].split(" ")[0] for item in inputs if "refused_by" in item}


def _expectations(model, rows: pd.DataFrame, kind: str) -> dict[str, list]:
    """Per function, per row: ("value", answer) or ("error", SQLSTATE), from the library itself: the rows at once
    where it scores them all, else the clean ones at once and each row with holes alone."""
    text_labels = kind == "classifier" and any(isinstance(label, str) for label in model.classes_)
    proba = kind == "classifier" and hasattr(model, "predict_proba")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            answers = [_answers(model, rows, proba)]
        except ValueError:  # a missing value the model does not take, in some row with holes
            answers = [_answers(model, rows.iloc[:SCORED_ROWS], proba)]
            for position in range(SCORED_ROWS, len(rows)):
                try:
                    answers.append(_answers(model, rows.iloc[[position]], proba))
                except ValueError:
                    answers.append(([None], None))
    labels = [label for part, _ in answers for label in part]
    probabilities = [p for _, part in answers for p in (part if part is not None else [None])]
    expected: dict[str, list] = {"predict": [], "predict_label": [], "predict_proba": []}
    for label, probability in zip(labels, probabilities):
        if label is None:
            for function in expected:
                expected[function].append(("error", REFUSED_HOLE))
        elif kind == "regressor":
            expected["predict"].append(("value", float(label)))
            expected["predict_label"].append(("error", NO_ANSWER))
            expected["predict_proba"].append(("error", NO_ANSWER))
        else:
            expected["predict"].append(("error", NO_ANSWER) if text_labels else ("value", float(label)))
            expected["predict_label"].append(("value", str(label.item() if hasattr(label, "item") else label)))
            expected["predict_proba"].append(("value", list(map(float, probability))) if proba
                                             else ("error", NO_ANSWER))
    return expected


def _answers(model, rows: pd.DataFrame, proba: bool) -> tuple[list, list | None]:
    """(labels or values, class probabilities or None) of the rows."""
    labels = list(np.ravel(model.predict(rows)))  # CatBoost's classifiers give [N, 1]
    return labels, (list(model.predict_proba(rows)) if proba else [None] * len(labels))


def _tolerance(outcome: Outcome, expected: dict[str, list]) -> tuple[float, float]:
    """(rtol, atol) for this model's answers."""
    values = [abs(want) for kind, want in expected["predict"] if kind == "value"]
    scale = max(values, default=0.0) if outcome.kind == "regressor" else 1.0
    if outcome.scoring_path.startswith("ONNX"):
        return compiled_path.RTOL, compiled_path.ATOL + compiled_path.RTOL * scale
    return TIGHT, TIGHT * scale


def _parsed(answer: str | None, function: str):
    """A breadth_try() answer: ("error", SQLSTATE, message) or ("value", a float, a label or a list of floats)."""
    if answer is None:
        return ("value", None)
    if answer.startswith("ERROR "):
        _, state, message = answer.split(" ", 2)
        return ("error", state, message)
    if function == "predict_label":
        return ("value", answer)
    if answer.startswith("{"):
        return ("value", [float(item) for item in answer.strip("{}").split(",")])
    return ("value", float(answer))


def _compare(outcome: Outcome, where: str, want, got, tolerance) -> None:
    if want[0] == "error":
        if got[0] == "value":
            outcome.flag("wrong", f"{where}: answered {got[1]!r} where the library refuses ({want[1]})")
        elif got[1] != want[1]:
            outcome.flag("failing", f"{where}: SQLSTATE {got[1]} ({got[2]}), expected {want[1]}")
        return
    if got[0] == "error":
        outcome.flag("failing", f"{where}: SQLSTATE {got[1]}: {got[2]}")
        return
    expected, answer = want[1], got[1]
    if isinstance(expected, str) or isinstance(answer, str):
        if str(answer) != str(expected):
            outcome.flag("wrong", f"{where}: {answer!r}, the library says {expected!r}")
        return
    expected, answer = np.atleast_1d(np.asarray(expected, dtype=float)), np.atleast_1d(np.asarray(answer, dtype=float))
    rtol, atol = tolerance
    if expected.shape != answer.shape or not np.allclose(answer, expected, rtol=rtol, atol=atol):
        outcome.flag("wrong", f"{where}: {answer.tolist()}, the library says {expected.tolist()}")
        return
    limit = atol + rtol * np.abs(expected)
    outcome.worst = max(outcome.worst, float(np.max(np.abs(answer - expected) / limit, initial=0.0)))


def _batches(conn, name: str, table: str, expected: dict, outcome: Outcome, tolerance) -> None:
    """predict_batch over the clean rows, then over the rows with holes: a batch fails whole or scores whole."""
    rows = len(expected["predict"])
    for label, ids in (("clean rows", range(1, SCORED_ROWS + 1)), ("rows with holes", range(SCORED_ROWS + 1,
                                                                                           rows + 1))):
        wants = [expected["predict"][i - 1] for i in ids]
        (answer,) = conn.execute(sql.SQL(
            "SELECT breadth_try('predict_batch', %s, (SELECT json_agg(t ORDER BY id) FROM {} AS t "
            "WHERE id = ANY(%s)))").format(sql.Identifier(table)), [name, list(ids)]).fetchone()
        errors = [want for want in wants if want[0] == "error"]
        want = ("error", REFUSED_HOLE if any(w[1] == REFUSED_HOLE for w in errors) else errors[0][1]) if errors \
            else ("value", [w[1] for w in wants])
        _compare(outcome, f"predict_batch of the {label}", want, _parsed(answer, "predict_batch"), tolerance)


def _trigger(conn, name: str, table: str, expected: dict, outcome: Outcome, tolerance) -> None:
    """A row trigger on a copy of the table: the clean rows inserted in one statement, each row with holes in its
    own (one refused row fails its INSERT)."""
    target = f"scored_{name}"
    column, function = ("label", "predict_label") if outcome.kind == "classifier" else ("value", "predict")
    conn.execute(sql.SQL("CREATE TABLE {} (LIKE {}, {} {})").format(
        sql.Identifier(target), sql.Identifier(table), sql.Identifier(column),
        sql.SQL("text" if column == "label" else "double precision")))
    conn.execute("SELECT pgml_trigger.attach(%s, %s, %s)", [target, name, column])
    insert = sql.SQL("INSERT INTO {} SELECT * FROM {} WHERE id = ANY(%s)").format(sql.Identifier(target),
                                                                                 sql.Identifier(table))
    wants = expected[function]
    try:
        conn.execute(insert, [list(range(1, SCORED_ROWS + 1))])
    except psycopg.Error as exc:
        outcome.flag("failing", f"row trigger on the clean rows: SQLSTATE {exc.sqlstate}: {exc}")
    for row in range(SCORED_ROWS + 1, len(wants) + 1):
        try:
            conn.execute(insert, [[row]])
        except psycopg.Error as exc:
            _compare(outcome, f"row trigger row {row}", wants[row - 1], ("error", exc.sqlstate, str(exc)), tolerance)
    got = dict(conn.execute(sql.SQL("SELECT id, {}::text FROM {}").format(sql.Identifier(column),
                                                                         sql.Identifier(target))).fetchall())
    for row, answer in got.items():
        _compare(outcome, f"row trigger row {row}", wants[row - 1], _parsed(answer, function), tolerance)
    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(target)))


def _step_names(model) -> list[str]:
    """The class names of every estimator in the model (pipeline steps, ColumnTransformer branches, the
    estimators of ensembles and meta-estimators), outermost first, once each."""
    names: list[str] = []

    def visit(estimator) -> None:
        if not hasattr(estimator, "get_params"):
            return
        if type(estimator).__name__ not in names:
            names.append(type(estimator).__name__)
        for value in estimator.get_params(deep=False).values():
            for item in value if isinstance(value, list) else [value]:
                visit(item[1] if isinstance(item, tuple) and len(item) >= 2 else item)

    visit(model)
    return names


def _transformers(model) -> set[str]:
    """The class names of the steps rows go through before the final estimator: a Pipeline's steps, a
    ColumnTransformer's branches, a FeatureUnion's parts."""
    found: set[str] = set()

    def visit(estimator, final: bool) -> None:
        kind = type(estimator).__name__
        if kind == "Pipeline":
            steps = [step for _, step in estimator.steps if step not in (None, "passthrough")]
            for position, step in enumerate(steps):
                visit(step, final and position == len(steps) - 1)
        elif kind in ("ColumnTransformer", "FeatureUnion"):
            parts = estimator.transformers if kind == "ColumnTransformer" else estimator.transformer_list
            for part in parts:
                visit(part[1], False)
        elif not final and hasattr(estimator, "get_params"):
            found.add(kind)

    visit(model, True)
    return found


def _final_step(model) -> str:
    while type(model).__name__ == "Pipeline":
        model = model.steps[-1][1]
    return type(model).__name__


# --- docs/support.md -----------------------------------------------------------------------------------------

MISSING_VALUES = [
    "## Missing values",
    "",
    "A NULL (or NaN) feature is accepted exactly where the fitted model accepts a missing value. The upload "
    "finds out by trying: it scores a few sample rows again with each feature missing in turn "
    "(`pgml_trigger/uploader/missing.py`). Where the model still predicts, the feature takes a NULL: an imputer "
    "fills it (`SimpleImputer`, `IterativeImputer`, `KNNImputer`, with `add_indicator` too), an encoder takes it "
    "as a category, or the estimator takes missing values itself (`HistGradientBoosting*`, the trees and "
    "forests of scikit-learn, XGBoost, LightGBM, CatBoost). A Pipeline, a ColumnTransformer (each column as the "
    "steps of its branch see it, the remainder too) and a FeatureUnion are walked as the data flows, so a "
    "pipeline that imputes some columns takes NULLs in those and refuses them in the others.",
    "",
    "A NULL is passed as the model was fitted with it: NaN for a number; for text, None where the training "
    "frame held None in an object column, else NaN (pandas' missing text). Where a feature refuses it, the "
    "error is `22004` and names the feature (in a trigger, the column) and the step that refuses it:",
    "",
    "```",
    "ERROR:  pgml_trigger: feature \"bmi\" is NULL, and model risk@1 does not accept a missing value there: "
    "LinearRegression (step 'linearregression') refuses it",
    "HINT:  fill the value in, or refit the model so that something before that step fills it (e.g. a "
    "SimpleImputer)",
    "```",
    "",
    "`pgml_trigger.model_catalog.feature_inputs` records it per feature, in model order: `{\"missing\": "
    "\"NaN\"}` where a NULL is passed as NaN (`\"None\"`: as None), `{\"refused_by\": \"...\"}` where a "
    "step refuses it; `accepts_nan` says whether any feature takes one. A row with a missing value is scored "
    "by the compiled ONNX graph when the upload found the graph to give the model's answers on rows with "
    "holes, and otherwise by the model's own library: a missing text value (an ONNX string tensor cannot hold "
    "one), or a converter that sends NaN down another branch than the model (random forests).",
    "",
    "## Numbers",
    "",
    "- ±Infinity is refused with `22003`. So is a number beyond float32's range (±3.4e38) where the model reads "
    "numbers as float32 (trees and forests cast their input) or its compiled graph computes in float32: there "
    "it would be infinity. A model computing in double (a linear model, a scaler, an MLP) takes any finite "
    "double, in a graph in double.",
    "- A prediction that is not a finite number (a model overflowing on a feature far outside its training "
    "range) is refused with `22003`, never returned.",
    "- Probabilities are within [0, 1] and each row's sum to 1: a float32 graph's, which stray a hair outside and "
    "sum to 1 only within float32's precision, are clipped and normalized in double.",
    "- JSON `true` and `false` are numbers only for a feature the model was fitted on booleans (the `sample` "
    "says so); elsewhere they are refused with `42804`. A trigger's boolean column still reaches the model as 1 "
    "or 0.",
    "- A row holding two columns of a feature's name (a join's row, `SELECT a.*, b.x`) is refused with "
    "`42702` naming it, where the last of the two would otherwise have been taken.",
]

_CONTAINERS = {"Pipeline", "ColumnTransformer", "FeatureUnion"}
_IMPUTERS = {"SimpleImputer", "IterativeImputer", "KNNImputer", "MissingIndicator"}


def support_table(outcomes: list[Outcome]) -> str:
    counts = Counter(outcome.verdict for outcome in outcomes)
    lines = [
        "# What scores how: missing values, numbers, and the support table",
        "",
        "<!-- Generated by tests/test_breadth.py from the breadth suite's verdicts; do not edit by hand. Regenerate:",
        "     PGML_TRIGGER_WRITE_SUPPORT=1 python3 -m pytest tests/test_breadth.py -->",
        "",
        *MISSING_VALUES,
        "",
        "## The breadth suite",
        "",
        f"`tests/test_breadth.py` fits {len(outcomes) // 2} pipelines (`tests/breadth_cases.py`) on datasets that "
        "ship with scikit-learn, each on clean data and on the same data with holes (NaN in about one number in "
        "twelve, NULL in about one text value in twelve; a pipeline scikit-learn will not fit on holes gets "
        "imputers in front, as its author would add them). It uploads them into one database and scores every "
        "one by `predict(m, row)`, `predict_label`, `predict_proba`, `predict_batch` and a row trigger, on clean "
        "rows and on rows with a NULL in each column in turn, against the library's own answers.",
        "",
        f"Verdicts: **{counts['exact']} exact**, {counts['refused']} refused at upload naming the step, "
        f"{counts['failing']} accepted then failing, {counts['wrong']} accepted and wrong "
        f"(of {len(outcomes)}). Exact means: labels equal; values and probabilities within what the upload's "
        "own check allows where an ONNX graph scores them (1e-5 relative, 1e-6 absolute; linear models, in "
        "double, are held to 1e-12 by `test_linear_models_score_in_double`), within 1e-9 where the model's own "
        "library or a trigger's SQL arithmetic does; every row with a missing value the model does not take "
        "refused with `22004`, and every call the model has no answer for (probabilities of a regressor, "
        "`predict()` of text labels) refused with `42809`.",
        "",
        "## Per step",
        "",
        "How each estimator or transformer scored, over the models it is in (each pipeline twice: fitted clean "
        "and with holes). **Scores through**: an ONNX graph "
        "in double, or in float32 (trees and SVMs compute in float32 in the graph, and trees read float32 "
        "themselves), or the model's own library (scikit-learn, XGBoost, ...) where no converter writes a "
        "graph that agrees. **Row trigger**: SQL arithmetic where the trigger computes a linear model itself. "
        "**NULL, fitted clean**: what a NULL meets in a model fitted on clean data: `refuses` (the `22004` "
        "error names this step), `fills` (an imputer), `takes` (the estimator takes missing values itself), "
        "`passes on` (a later step decides). **Fitted with holes**: `as is` where scikit-learn fits the "
        "pipeline on data with holes, `behind imputers` where it does not.",
        "",
        "| step | models | scores through | row trigger | NULL, fitted clean | fitted with holes |",
        "|---|---|---|---|---|---|",
    ]
    by_step: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        for step in outcome.steps:
            if step not in _CONTAINERS:
                by_step[step].append(outcome)
    for step in sorted(by_step, key=str.lower):
        cases = by_step[step]
        verdicts = Counter(outcome.verdict for outcome in cases)
        lines.append("| " + " | ".join([
            f"`{step}`",
            ", ".join(f"{verdicts[verdict]} {verdict}" for verdict in VERDICTS if verdicts[verdict]),
            _joined(outcome.scoring_path for outcome in cases),
            _joined(outcome.row_trigger_path for outcome in cases),
            _joined(_null_meets(step, outcome) for outcome in cases if not outcome.holes),
            _joined(("behind imputers" if outcome.imputed else "as is") for outcome in cases
                    if outcome.holes and step == outcome.final),
        ]) + " |")
    lines += [
        "",
        "## Per case",
        "",
        "Each pipeline as fitted on clean data (fitted with holes, it may have imputers added), its two verdicts, "
        "how it scored, and how many of its features take a NULL in each fit.",
        "",
        "| case | pipeline | clean | with holes | scores through | features taking NULL (clean / holes) |",
        "|---|---|---|---|---|---|",
    ]
    pairs: dict[str, dict[bool, Outcome]] = defaultdict(dict)
    for outcome in outcomes:
        pairs[outcome.case.id][outcome.holes] = outcome
    for case_id, pair in pairs.items():
        clean, holed = pair[False], pair[True]
        lines.append("| " + " | ".join([
            f"`{case_id}`",
            " → ".join(step for step in clean.steps if step not in _CONTAINERS),
            clean.verdict,
            holed.verdict + (" (imputers added)" if holed.imputed else ""),
            _joined([clean.scoring_path, holed.scoring_path]),
            f"{clean.accepts_missing} of {clean.features} / {holed.accepts_missing} of {holed.features}",
        ]) + " |")
    return "\n".join(lines) + "\n"


def _null_meets(step: str, outcome: Outcome) -> str | None:
    if outcome.verdict == "refused":
        return None
    if step in outcome.refusing_steps:
        return "refuses"
    if step in _IMPUTERS:
        return "fills"
    if step == outcome.final:  # it sees a NULL where no imputer fills it first
        return "takes" if outcome.accepts_missing and not _IMPUTERS & set(outcome.steps) else None
    return "passes on" if step in outcome.transformers and outcome.refusing_steps else None


def _joined(values) -> str:
    seen = [value for value in dict.fromkeys(values) if value]
    return ", ".join(seen) if seen else "–"

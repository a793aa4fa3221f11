"""explain(): SHAP values of predictions, equal to shap's and the boosting libraries' own, from SQL and triggers.

Every family is uploaded and explained through SQL, and its contributions are compared with what shap
(TreeExplainer with tree_path_dependent, LinearExplainer over the same background) or the library itself
(XGBoost's pred_contribs, LightGBM's pred_contrib, CatBoost's ShapValues) gives for the same rows: to 1e-5
of the largest value of the prediction (XGBoost adds its trees up in float32, so its own values are that
far from exact). The TreeSHAP code is also checked outside the server against brute force.
"""

from __future__ import annotations

import itertools
import json
import math
from functools import cache

import numpy as np
import pandas as pd
import psycopg
import pytest
import trained
from psycopg import sql
from tables import load_table

from pgml_trigger import upload
from pgml_trigger.server import treeshap
from pgml_trigger.server.treeshap import MISSING_AS_ZERO, MISSING_DEFAULT, MISSING_OR_ZERO, Forest

shap = pytest.importorskip("shap")

RTOL = 1e-5
ROWS = 12  # explained per model


# --- TreeSHAP outside the server, against the definition.


def _brute_force(forest: Forest, x: np.ndarray, output: int) -> tuple[np.ndarray, float]:
    """Path-dependent SHAP values by their definition: Shapley values of v(S) = E[f | x_S], where a split on a
    feature outside S takes both branches weighted by cover (Lundberg et al. 2018, Algorithm 1)."""
    features = np.unique(forest.feature[forest.left >= 0])
    roots = [node for node in range(len(forest.left)) if node not in set(forest.left) | set(forest.right)]

    def goes_left(node: int) -> bool:
        value = float(np.float32(x[forest.feature[node]])) if forest.float32 else x[forest.feature[node]]
        kind = forest.missing[node]
        if math.isnan(value) and kind == MISSING_AS_ZERO:
            value = 0.0
        if math.isnan(value) or (kind == MISSING_OR_ZERO and abs(value) <= 1e-35):
            return bool(forest.default_left[node])
        return value < forest.threshold[node] if forest.strict else value <= forest.threshold[node]

    def expectation(node: int, known: frozenset) -> float:
        if forest.left[node] < 0:
            return forest.value[node, output]
        left, right = forest.left[node], forest.right[node]
        if forest.feature[node] in known:
            return expectation(left if goes_left(node) else right, known)
        return (forest.cover[left] * expectation(left, known) + forest.cover[right] * expectation(right, known)) \
            / forest.cover[node]

    def v(known) -> float:
        return forest.offset[output] + sum(expectation(root, frozenset(known)) for root in roots)

    n = len(features)
    phi = np.zeros(len(x))
    for i, feature in enumerate(features):
        others = [f for j, f in enumerate(features) if j != i]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                phi[feature] += weight * (v({*subset, feature}) - v(subset))
    return phi, v(())


def _random_forest(rng, n_trees: int, depth: int, n_features: int, n_outputs: int, strict: bool,
                   float32: bool) -> Forest:
    """Full binary trees splitting on few features (so that paths repeat features), random covers and missing
    directions, all three missing kinds."""
    columns = {name: [] for name in ("left", "right", "feature", "threshold", "default_left", "missing", "value",
                                     "cover")}
    base = 0
    for _ in range(n_trees):
        n_nodes = 2 ** (depth + 1) - 1
        leaf_cover = rng.integers(1, 20, size=2 ** depth).astype(float)
        cover = np.zeros(n_nodes)
        cover[2 ** depth - 1:] = leaf_cover
        for node in range(2 ** depth - 2, -1, -1):
            cover[node] = cover[2 * node + 1] + cover[2 * node + 2]
        for node in range(n_nodes):
            internal = node < 2 ** depth - 1
            columns["left"].append(base + 2 * node + 1 if internal else -1)
            columns["right"].append(base + 2 * node + 2 if internal else -1)
            columns["feature"].append(int(rng.integers(n_features)))
            columns["threshold"].append(float(rng.choice([-0.5, 0.0, 0.5])))
            columns["default_left"].append(bool(rng.integers(2)))
            columns["missing"].append(int(rng.choice([MISSING_DEFAULT, MISSING_AS_ZERO, MISSING_OR_ZERO])))
            columns["value"].append(rng.normal(size=n_outputs) if not internal else np.zeros(n_outputs))
            columns["cover"].append(cover[node])
        base += n_nodes
    arrays = {name: np.asarray(values) for name, values in columns.items()}
    return Forest(**arrays, offset=rng.normal(size=n_outputs), strict=strict, float32=float32)


@pytest.mark.parametrize("tabled", [True, False], ids=["tabled", "computed"])
def test_treeshap_equals_the_definition(tabled, monkeypatch):
    """Repeated features on a path, every missing kind, strict and float32 comparisons; leaves looked up in the
    table and computed per row alike."""
    monkeypatch.setattr(treeshap, "TABLED_PLAYERS", 10 if tabled else 0)
    rng = np.random.default_rng(7)
    for strict, float32 in [(False, False), (True, True)]:
        forest = _random_forest(rng, n_trees=3, depth=4, n_features=5, n_outputs=2, strict=strict, float32=float32)
        X = rng.choice([-1.0, -0.5, 0.0, 0.2, 0.5, 1.0, np.nan], size=(6, 5))
        outputs = rng.integers(2, size=len(X))
        phi, total = forest.shap_values(X, outputs)
        for r, x in enumerate(X):
            expected_phi, expected_base = _brute_force(forest, x, outputs[r])
            np.testing.assert_allclose(phi[r], expected_phi, rtol=1e-10, atol=1e-10)
            assert forest.expected[outputs[r]] == pytest.approx(expected_base, rel=1e-10)
            assert expected_base + phi[r].sum() == pytest.approx(total[r], rel=1e-10)
        np.testing.assert_allclose(forest.predict(X)[np.arange(len(X)), outputs], total, rtol=1e-12)
        signed, flipped = forest.shap_values(X, outputs, signs=-np.ones(len(X)))
        np.testing.assert_allclose(signed, -phi)
        np.testing.assert_allclose(flipped, -total)


def test_single_leaf_trees_count_in_base_and_prediction():
    forest = Forest(left=np.array([1, -1, -1, -1]), right=np.array([2, -1, -1, -1]), feature=np.array([0, 0, 0, 0]),
                    threshold=np.array([0.0, 0, 0, 0]), default_left=np.zeros(4, dtype=bool),
                    missing=np.zeros(4, dtype=np.int8), value=np.array([[0.0], [1.0], [3.0], [10.0]]),
                    cover=np.array([4.0, 1.0, 3.0, 1.0]), offset=np.array([0.5]))
    phi, total = forest.shap_values(np.array([[-1.0], [1.0]]), np.zeros(2, dtype=np.intp))
    assert forest.expected[0] == pytest.approx(0.5 + 2.5 + 10.0)
    assert total.tolist() == [11.5, 13.5]
    np.testing.assert_allclose(phi[:, 0], [-1.5, 0.5])


# --- Every family through SQL, against shap and the libraries' own values.


def _explain_rows(conn, name: str, X: pd.DataFrame) -> list[dict]:
    """explain_batch() of the rows by name (a JSON array of objects, as json_agg() makes it)."""
    rows = [{key: (None if isinstance(value, float) and math.isnan(value) else
                   value.item() if hasattr(value, "item") else value) for key, value in row.items()}
            for row in X.to_dict("records")]
    explained = conn.execute("SELECT pgml_trigger.explain_batch(%s, %s::json)", [name, json.dumps(rows)]).fetchone()[0]
    return explained


def _by_feature(explanation: dict, names) -> np.ndarray:
    contributions = {item["feature"]: item["contribution"] for item in explanation["contributions"]}
    return np.array([contributions[name] for name in names])


def _signed(values: np.ndarray, classes: list, n_outputs: int) -> np.ndarray:
    """Per row, the explained class's values: [rows, outputs, ...] picked by class, or a binary model's single
    output negated for the first class."""
    values = np.asarray(values)
    if n_outputs == 1:
        signs = np.array([-1.0 if c == 0 else 1.0 for c in classes])
        return values * signs.reshape(-1, *([1] * (values.ndim - 1)))
    return np.stack([values[r, ..., c] for r, c in enumerate(classes)])


def _tree_shap(estimator, Z, classes):
    return _explained_classes(shap.TreeExplainer(estimator, feature_perturbation="tree_path_dependent"), Z, classes)


def _linear_shap(estimator, Z, background, classes):
    masker = shap.maskers.Independent(background, max_samples=len(background))
    return _explained_classes(shap.LinearExplainer(estimator, masker), Z, classes)


def _explained_classes(explainer, Z, classes):
    """shap's values and expected value of each row's explained class (_signed)."""
    values = np.asarray(explainer.shap_values(Z))
    n_outputs = 1 if values.ndim == 2 else values.shape[-1]
    expected = np.broadcast_to(np.atleast_1d(explainer.expected_value), (len(classes), n_outputs))
    return _signed(values, classes, n_outputs), _signed(expected, classes, n_outputs).reshape(len(classes))


def _dense(Z) -> np.ndarray:
    return Z.toarray() if hasattr(Z, "toarray") else np.asarray(Z, dtype=np.float64)


def _by_column(values: np.ndarray, preprocessing, names) -> np.ndarray:
    """Contributions of a ColumnTransformer's outputs summed per input column (its output names say which)."""
    matrix = np.zeros((values.shape[1], len(names)))
    for position, output in enumerate(preprocessing.get_feature_names_out()):
        column = output.split("__", 1)[-1]
        matrix[position, max((j for j, name in enumerate(names) if column == name or column.startswith(name + "_")),
                             key=lambda j: len(names[j]))] = 1.0
    return values @ matrix


def _pipeline_shap(pipeline, X, classes, background=None):
    """shap on the final estimator over the pipeline's own transform of the rows, summed back per input column."""
    preprocessing, final = pipeline[:-1], pipeline[-1]
    Z = _dense(preprocessing.transform(X))
    if background is None:
        values, base = _tree_shap(final, Z, classes)
    else:
        values, base = _linear_shap(final, Z, _dense(preprocessing.transform(background)), classes)
    if len(pipeline.steps) > 1 and hasattr(preprocessing[-1], "get_feature_names_out") and \
            type(preprocessing[-1]).__name__ == "ColumnTransformer":
        values = _by_column(values, preprocessing[-1], list(X.columns))
    return values, base


def _xgb_own(booster, X, classes, feature_names=None):
    import xgboost

    contributions = booster.predict(xgboost.DMatrix(np.asarray(X, dtype=np.float64), feature_names=feature_names),
                                    pred_contribs=True)
    n_outputs = 1 if contributions.ndim == 2 else contributions.shape[1]
    picked = _signed(np.moveaxis(contributions, 1, -1) if n_outputs > 1 else contributions, classes, n_outputs)
    return picked[:, :-1], picked[:, -1]


def _lgbm_own(booster, X, classes):
    contributions = booster.predict(np.asarray(X, dtype=np.float64), pred_contrib=True)
    width = X.shape[1] + 1
    n_outputs = contributions.shape[1] // width
    picked = _signed(contributions.reshape(len(X), n_outputs, width).transpose(0, 2, 1) if n_outputs > 1
                     else contributions, classes, n_outputs)
    return picked[:, :-1], picked[:, -1]


def _catboost_own(model, X, classes):
    import catboost

    contributions = model.get_feature_importance(catboost.Pool(np.asarray(X, dtype=np.float64)), type="ShapValues")
    n_outputs = 1 if contributions.ndim == 2 else contributions.shape[1]
    picked = _signed(np.moveaxis(contributions, 1, -1) if n_outputs > 1 else contributions, classes, n_outputs)
    return picked[:, :-1], picked[:, -1]


@cache
def _bc_gaps() -> pd.DataFrame:
    """The breast-cancer features with about one value in six missing."""
    X, _ = trained.breast_cancer()
    return X.mask(np.random.default_rng(1).random(X.shape) < 0.15)


def _families():
    """(id, build) pairs; build() -> (model, upload kwargs, rows to explain, expected method and output,
    [(what, reference(model, rows, classes) -> (contributions, base or None))])."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingClassifier, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    bc, _ = trained.breast_cancer()
    diabetes, y_diabetes = trained.diabetes()
    iris, iris_y, iris_labels = trained.iris_frame()
    mixed, y_mixed = trained.diabetes_mixed()
    rows = bc.iloc[::47].head(ROWS)

    def linear_bc():
        model = trained.linear_breast_cancer()
        return model, {"sample": bc}, rows, ("linear", "log_odds"), [
            ("shap", lambda m, X, c: _pipeline_shap(m, X, c, background=bc))]

    def linear_iris():
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(iris, iris_labels)
        return model, {"sample": iris}, iris.iloc[::13], ("linear", "margin"), [
            ("shap", lambda m, X, c: _pipeline_shap(m, X, c, background=iris))]

    def ridge():
        return trained.diabetes_ridge(), {"sample": diabetes}, diabetes.head(ROWS), ("linear", "value"), [
            ("shap", lambda m, X, c: _linear_shap(m, X.to_numpy(), diabetes.to_numpy(), c))]

    def mixed_linear():
        return trained.mixed_pipeline(), {"sample": mixed}, mixed.head(ROWS), ("linear", "value"), [
            ("shap", lambda m, X, c: _pipeline_shap(m, X, c, background=mixed))]

    def imputed_linear():
        model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(_bc_gaps(), trained.breast_cancer()[1])
        return model, {"sample": bc}, rows, ("linear", "log_odds"), [
            ("shap", lambda m, X, c: _pipeline_shap(m, X, c, background=bc))]

    def forest():
        return trained.forest_breast_cancer(), {"sample": bc}, rows, ("tree_shap", "probability"), [
            ("shap", lambda m, X, c: _tree_shap(m, X, c))]

    def extra_trees():
        model = ExtraTreesRegressor(n_estimators=20, max_depth=6, random_state=0).fit(diabetes, y_diabetes)
        return model, {"sample": diabetes}, diabetes.head(ROWS), ("tree_shap", "value"), [
            ("shap", lambda m, X, c: _tree_shap(m, X, c))]

    def decision_tree():
        model = DecisionTreeClassifier(max_depth=5, random_state=0).fit(iris, iris_labels)
        return model, {"sample": iris}, iris.iloc[::13], ("tree_shap", "probability"), [
            ("shap", lambda m, X, c: _tree_shap(m, X, c))]

    def gradient_boosting():
        model = GradientBoostingClassifier(n_estimators=20, max_depth=3, random_state=0).fit(bc, _target(bc))
        return model, {"sample": bc}, rows, ("tree_shap", "log_odds"), [
            ("shap", lambda m, X, c: _tree_shap(m, X, c))]

    def gradient_boosting_iris():
        model = GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0).fit(iris, iris_y)

        def per_tree(m, X, classes):  # shap explains no multiclass GradientBoosting: its trees one by one
            per_class = [sum(shap.TreeExplainer(tree).shap_values(X) for tree in m.estimators_[:, k]) * m.learning_rate
                         for k in range(m.estimators_.shape[1])]
            return np.stack([per_class[c][r] for r, c in enumerate(classes)]), None

        return model, {"sample": iris}, iris.iloc[::13], ("tree_shap", "margin"), [("shap per tree", per_tree)]

    def hist_gradient_boosting():
        return trained.hgb_breast_cancer(), {"sample": bc}, rows, ("tree_shap", "log_odds"), [
            ("shap", lambda m, X, c: _tree_shap(m, X, c))]

    def xgb_classifier():
        return trained.xgb_classifier(), {"sample": bc}, rows, ("tree_shap", "log_odds"), [
            ("shap", lambda m, X, c: _tree_shap(m, X, c)),
            ("pred_contribs", lambda m, X, c: _xgb_own(m.get_booster(), X, c, list(bc.columns)))]

    def xgb_regressor():
        return trained.xgb_regressor(), {"sample": diabetes}, diabetes.head(ROWS), ("tree_shap", "value"), [
            ("pred_contribs", lambda m, X, c: _xgb_own(m.get_booster(), X, c, list(diabetes.columns)))]

    def xgb_booster():
        return trained.xgb_booster_iris(), {"sample": iris, "classes": trained.IRIS_NAMES}, iris.iloc[::13], \
            ("tree_shap", "margin"), [("pred_contribs", lambda m, X, c: _xgb_own(m, X, c, list(iris.columns)))]

    def lgbm_classifier():
        return trained.lgbm_iris_text_labels(), {"sample": iris}, iris.iloc[::13], ("tree_shap", "margin"), [
            ("shap", lambda m, X, c: _tree_shap(m, X, c)),
            ("pred_contrib", lambda m, X, c: _lgbm_own(m.booster_, X, c))]

    def lgbm_booster():
        return trained.lgbm_booster_breast_cancer(), {"sample": bc.to_numpy(), "feature_names": list(bc.columns)}, \
            rows, ("tree_shap", "log_odds"), [("pred_contrib", lambda m, X, c: _lgbm_own(m, X, c))]

    def lgbm_pipeline():
        return trained.lgbm_pipeline_regressor(), {"sample": diabetes}, diabetes.head(ROWS), ("tree_shap", "value"), [
            ("shap", lambda m, X, c: _pipeline_shap(m, X, c)),
            ("pred_contrib", lambda m, X, c: _lgbm_own(m[-1].booster_, m[:-1].transform(X), c))]

    def lgbm_mixed():
        return trained.lgbm_mixed_pipeline(), {"sample": mixed}, mixed.head(ROWS), ("tree_shap", "value"), [
            ("shap", lambda m, X, c: _pipeline_shap(m, X, c))]

    def catboost_classifier():
        return trained.catboost_iris_text_labels(), {"sample": iris}, iris.iloc[::13], ("tree_shap", "margin"), [
            ("ShapValues", lambda m, X, c: _catboost_own(m, X, c))]

    def catboost_regressor():
        return trained.catboost_regressor(), {"sample": diabetes}, diabetes.head(ROWS), ("tree_shap", "value"), [
            ("ShapValues", lambda m, X, c: _catboost_own(m, X, c))]

    def catboost_native():
        return trained.catboost_native_breast_cancer(), {"sample": bc}, rows, ("tree_shap", "log_odds"), [
            ("ShapValues", lambda m, X, c: _catboost_own(m, X, c))]

    def catboost_pipeline():
        return trained.catboost_pipeline(), {"sample": iris}, iris.iloc[::13], ("tree_shap", "margin"), [
            ("ShapValues", lambda m, X, c: _catboost_own(m[-1], m[:-1].transform(X), c))]

    def encoded_forest():
        """Imputers, a one-hot and an ordinal encoder and a MinMaxScaler before a forest: one contribution per
        input column, the one-hot block's summed."""
        encode = ColumnTransformer([
            ("text", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                   OneHotEncoder(handle_unknown="ignore")), ["sex"]),
            ("band", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["bmi_band"]),
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), MinMaxScaler()),
             ["age", "bmi", "bp", "s1", "s5"])])
        model = make_pipeline(encode, RandomForestRegressor(n_estimators=20, max_depth=6, random_state=0))
        model.fit(mixed, y_mixed)
        return model, {"sample": mixed}, mixed.head(ROWS), ("tree_shap", "value"), [
            ("shap", lambda m, X, c: _pipeline_shap(m, X, c))]

    return [(build.__name__, build) for build in (
        linear_bc, linear_iris, ridge, mixed_linear, imputed_linear, forest, extra_trees, decision_tree,
        gradient_boosting, gradient_boosting_iris, hist_gradient_boosting, xgb_classifier, xgb_regressor,
        xgb_booster, lgbm_classifier, lgbm_booster, lgbm_pipeline, lgbm_mixed, catboost_classifier,
        catboost_regressor, catboost_native, catboost_pipeline, encoded_forest)]


def _target(X: pd.DataFrame) -> np.ndarray:
    return trained.breast_cancer()[1].loc[X.index].to_numpy()


@pytest.mark.parametrize("build", [build for _, build in _families()], ids=[name for name, _ in _families()])
def test_contributions_equal_shap_and_the_libraries_own(conn, build):
    model, kwargs, X, (method, output), references = build()
    upload(conn, "m", model, **kwargs)
    names, task, classes = conn.execute("SELECT feature_names, task, classes FROM pgml_trigger.models "
                                        "WHERE name = 'm'").fetchone()
    X = X[names] if isinstance(X, pd.DataFrame) else X
    explained = _explain_rows(conn, "m", X)
    contributions = np.array([_by_feature(e, names) for e in explained])
    base = np.array([e["base"] for e in explained])
    prediction = np.array([e["prediction"] for e in explained])
    scale = max(1.0, float(np.max(np.abs(prediction))))
    assert {e["method"] for e in explained} == {method} and {e["output"] for e in explained} == {output}
    np.testing.assert_allclose(base + contributions.sum(axis=1), prediction, rtol=1e-6, atol=1e-6 * scale)
    if task == "classification":
        predicted = _predicted_labels(conn, X)
        assert [e["class"] for e in explained] == predicted
        class_index = [classes.index(label) for label in predicted]
    else:
        assert {e["class"] for e in explained} == {None}
        class_index = [None] * len(X)
    for what, reference in references:
        expected, expected_base = reference(model, X, class_index)
        np.testing.assert_allclose(contributions, expected, rtol=RTOL, atol=RTOL * scale, err_msg=what)
        if expected_base is not None:
            np.testing.assert_allclose(base, expected_base, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def _predicted_labels(conn, X: pd.DataFrame) -> list:
    """predict_label() of each row, as the JSON scalars of the model's classes."""
    classes = conn.execute("SELECT classes FROM pgml_trigger.models WHERE name = 'm'").fetchone()[0]
    by_text = {str(label): label for label in classes}
    labels = []
    for row in X.to_dict("records"):
        row = {key: None if isinstance(value, float) and math.isnan(value) else value for key, value in row.items()}
        text = conn.execute("SELECT pgml_trigger.predict_label('m', %s::jsonb)", [json.dumps(row)]).fetchone()[0]
        labels.append(by_text[text])
    return labels


# --- The SQL API: forms, top_k, batches, triggers, score(), missing values, refusals, rights.


@pytest.fixture
def forest(conn):
    """The 20-tree breast-cancer forest as 'forest', and its rows in a table 'tumors' (id, features, prediction,
    reasons)."""
    X, _ = trained.breast_cancer()
    upload(conn, "forest", trained.forest_breast_cancer(), sample=X)
    load_table(conn, "tumors", X.head(40), extra={"prediction": "double precision", "reasons": "jsonb"})
    return X


def test_by_name_by_position_and_by_row_agree_and_top_k_keeps_the_largest(conn, forest):
    array = f"ARRAY[{', '.join(map(_quoted, forest.columns))}]"
    by_row, by_name, by_position, top = conn.execute(
        f"SELECT pgml_trigger.explain('forest', t), pgml_trigger.explain('forest', to_jsonb(t)), "
        f"pgml_trigger.explain('forest@1', {array}), "
        "pgml_trigger.explain('forest', t, top_k => 3) FROM tumors AS t WHERE id = 7").fetchone()
    assert by_row == by_name == by_position
    assert by_row["model"] == "forest@1" and by_row["method"] == "tree_shap" and by_row["output"] == "probability"
    sizes = [abs(item["contribution"]) for item in by_row["contributions"]]
    assert sizes == sorted(sizes, reverse=True) and len(sizes) == 30
    assert top["contributions"] == by_row["contributions"][:3]
    assert {key: top[key] for key in ("class", "base", "prediction")} == \
        {key: by_row[key] for key in ("class", "base", "prediction")}
    row = forest.iloc[6]
    assert {item["feature"]: item["value"] for item in by_row["contributions"]} == \
        pytest.approx(row.to_dict())
    proba = conn.execute("SELECT pgml_trigger.predict_proba('forest', t) FROM tumors AS t WHERE id = 7").fetchone()[0]
    assert by_row["prediction"] == pytest.approx(max(proba), rel=1e-6)
    assert conn.execute("SELECT pgml_trigger.explain('forest', NULL::jsonb), pgml_trigger.explain(NULL, '{}'::jsonb)"
                        ).fetchone() == (None, None)
    batch = conn.execute(f"SELECT pgml_trigger.explain_batch('forest', array_agg({array} ORDER BY id), 3) "
                         "FROM tumors AS t").fetchone()[0]
    by_rows = [e for (e,) in conn.execute("SELECT pgml_trigger.explain('forest', t, 3) FROM tumors AS t ORDER BY id")]
    assert batch == by_rows
    by_jsonb = conn.execute("SELECT pgml_trigger.explain_batch('forest', ARRAY[to_jsonb(t), NULL], 3) "
                            "FROM tumors AS t WHERE id = 7").fetchone()[0]
    assert by_jsonb == [top, None]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_trigger_reasons_equal_explain_of_the_same_row(conn, forest):
    """Row triggers on INSERT and on UPDATE of a feature, over numeric columns, over text and numeric columns
    (the typed path), and for a linear model (whose trigger otherwise computes in SQL)."""
    conn.execute("SELECT pgml_trigger.attach('tumors', 'forest', 'prediction', explain_column => 'reasons', "
                 "explain_top_k => 3)")
    X = forest.iloc[40:50]
    copy = ", ".join(map(_quoted, X.columns))
    with conn.cursor().copy(f"COPY tumors ({copy}) FROM STDIN") as writer:
        for row in X.itertuples(index=False):
            writer.write_row(list(row))
    conn.execute("UPDATE tumors SET mean_radius = mean_radius * 1.5 WHERE id IN (41, 45)")
    _assert_reasons(conn, "tumors", "forest", 3, rows=10)

    mixed, _ = trained.diabetes_mixed()
    upload(conn, "mixed", trained.mixed_pipeline(), sample=mixed)
    load_table(conn, "patients", mixed.head(0), extra={"prediction": "double precision", "why": "jsonb"})
    conn.execute("SELECT pgml_trigger.attach('patients', 'mixed', 'prediction', explain_column => 'why')")
    load_table_rows = mixed.head(8)
    with conn.cursor().copy(f"COPY patients ({', '.join(map(_quoted, mixed.columns))}) FROM STDIN") as writer:
        for row in load_table_rows.itertuples(index=False):
            writer.write_row(list(row))
    conn.execute("UPDATE patients SET sex = 'female' WHERE id = 2")
    _assert_reasons(conn, "patients", "mixed", None, rows=8, column="why")
    reasons = conn.execute("SELECT why FROM patients WHERE id = 1").fetchone()[0]
    assert len(reasons["contributions"]) == 7  # one per input column: the one-hot text columns summed

    upload(conn, "linear", trained.linear_breast_cancer(), sample=forest)
    conn.execute("ALTER TABLE tumors ADD COLUMN risk double precision, ADD COLUMN risk_reasons jsonb")
    conn.execute("SELECT pgml_trigger.attach('tumors', 'linear', 'risk', explain_column => 'risk_reasons', "
                 "explain_top_k => 2)")
    conn.execute("UPDATE tumors SET mean_texture = mean_texture + 1 WHERE id <= 5")
    got = conn.execute("SELECT risk, pgml_trigger.predict('linear', t), risk_reasons, "
                       "pgml_trigger.explain('linear', t, 2) FROM tumors AS t WHERE id <= 5").fetchall()
    assert all(risk == predicted and reasons == explained for risk, predicted, reasons, explained in got)


def _assert_reasons(conn, table: str, model: str, top_k, rows: int, column: str = "reasons") -> None:
    got = conn.execute(sql.SQL("SELECT t.prediction, pgml_trigger.predict({model}, t), t.{column}, "
                               "pgml_trigger.explain({model}, t, {top_k}) FROM {table} AS t WHERE t.{column} "
                               "IS NOT NULL ORDER BY t.id").format(
        model=sql.Literal(model), column=sql.Identifier(column), top_k=sql.Literal(top_k),
        table=sql.Identifier(table))).fetchall()
    assert len(got) == rows
    for prediction, predicted, reasons, explained in got:
        assert prediction == predicted
        assert reasons == explained
        if top_k is not None:
            assert len(reasons["contributions"]) == top_k


def test_statement_mode_and_score_write_the_reasons(conn, forest):
    conn.execute("CREATE TABLE events (LIKE tumors)")
    conn.execute("ALTER TABLE events ADD PRIMARY KEY (id)")
    conn.execute("SELECT pgml_trigger.attach('events', 'forest', 'prediction', mode => 'statement', "
                 "explain_column => 'reasons', explain_top_k => 2)")
    conn.execute("INSERT INTO events SELECT * FROM tumors WHERE id <= 12")
    logged = conn.execute("SELECT l.prediction, l.reasons, pgml_trigger.explain('forest', e, 2) "
                          "FROM pgml_trigger.prediction_log AS l JOIN events AS e ON l.row_key = e.id::text").fetchall()
    assert len(logged) == 12
    assert all(reasons == explained and prediction is not None for prediction, reasons, explained in logged)

    assert conn.execute("SELECT pgml_trigger.score('forest', 'tumors', 'prediction', explain_column => 'reasons', "
                        "explain_top_k => 4)").fetchone()[0] == 40
    _assert_reasons(conn, "tumors", "forest", 4, rows=40)


def test_nulls_are_explained_as_the_model_treats_them(conn):
    """A NULL goes down each split's default branch (HistGradientBoosting, a LightGBM booster), or, in a forest
    fitted without missing values, where scikit-learn sends it; its value is reported as null. A model that takes
    no missing values refuses the NULL as predict() does."""
    X, _ = trained.breast_cancer()
    gaps = X.mask(np.random.default_rng(3).random(X.shape) < 0.2).iloc[::50].head(8)
    hgb, booster = trained.hgb_breast_cancer(), trained.lgbm_booster_breast_cancer()
    upload(conn, "hgb", hgb, sample=X)
    upload(conn, "booster", booster, sample=X.to_numpy(), feature_names=list(X.columns))
    upload(conn, "forest", trained.forest_breast_cancer(), sample=X)
    upload(conn, "linear", trained.linear_breast_cancer(), sample=X)
    classes = [int(label) for label in hgb.predict(gaps)]
    for name, (expected, expected_base) in [("hgb", _tree_shap(hgb, gaps, classes)),
                                            ("booster", _lgbm_own(booster, gaps, _booster_classes(booster, gaps)))]:
        explained = _explain_rows(conn, name, gaps)
        np.testing.assert_allclose([_by_feature(e, X.columns) for e in explained], expected, rtol=RTOL, atol=RTOL)
        np.testing.assert_allclose([e["base"] for e in explained], expected_base, rtol=RTOL, atol=RTOL)
        missing = {item["feature"] for item in explained[0]["contributions"] if item["value"] is None}
        assert missing == set(X.columns[gaps.iloc[0].isna()])
    model = trained.forest_breast_cancer()
    for explanation, proba in zip(_explain_rows(conn, "forest", gaps), model.predict_proba(gaps)):
        assert explanation["prediction"] == pytest.approx(proba.max(), rel=1e-9)
        assert explanation["base"] + sum(item["contribution"] for item in explanation["contributions"]) == \
            pytest.approx(proba.max(), rel=1e-9)
    with pytest.raises(psycopg.errors.NullValueNotAllowed):
        _explain_rows(conn, "linear", gaps.head(1))


def _booster_classes(booster, X) -> list:
    return [int(p > 0.5) for p in booster.predict(X.to_numpy())]


def _error(conn, statement: str, params=None):
    with pytest.raises(psycopg.Error) as caught:
        conn.execute(statement, params)
    assert conn.execute("SELECT 1").fetchone() == (1,)
    return caught.value


def test_refusals_carry_their_sqlstate(conn, forest):
    from sklearn.neural_network import MLPClassifier

    X, y = trained.breast_cancer()
    upload(conn, "mlp", MLPClassifier(hidden_layer_sizes=(4,), max_iter=50, random_state=0).fit(X, y), sample=X)
    upload(conn, "ridge", trained.diabetes_ridge())
    onnx = conn.execute("SELECT compiled_payload FROM pgml_trigger.models WHERE name = 'forest'").fetchone()[0]
    upload(conn, "graph", bytes(onnx), feature_names=list(X.columns))
    row = json.dumps({name: float(value) for name, value in X.iloc[0].items()})
    cases = [
        ("SELECT pgml_trigger.explain('mlp', %s::jsonb)", [row], "0A000", "MLPClassifier"),
        ("SELECT pgml_trigger.explain('graph', %s::jsonb)", [row], "0A000", "ONNX"),
        ("SELECT pgml_trigger.explain('ridge', ARRAY[0,0,0,0,0,0,0,0,0,0]::float8[])", None, "55000", "sample"),
        ("SELECT pgml_trigger.explain('nope', %s::jsonb)", [row], "42704", "nope"),
        ("SELECT pgml_trigger.explain('forest', '{}'::jsonb)", None, "42703", "missing"),
        ("SELECT pgml_trigger.explain('forest', ARRAY[1, 2]::float8[])", None, "22023", "expects 30"),
        ("SELECT pgml_trigger.explain('forest', %s::jsonb, 0)", [row], "22023", "top_k"),
        ("SELECT pgml_trigger.explain_batch('forest', ARRAY[[1, 2]]::float8[], 3)", None, "22023", "expects 30"),
        ("SELECT pgml_trigger.attach('tumors', 'mlp', 'prediction', explain_column => 'reasons')", None, "0A000",
         "MLPClassifier"),
        ("SELECT pgml_trigger.attach('tumors', 'forest', 'prediction', explain_column => 'mean_radius')", None,
         "42804", "jsonb"),
        ("SELECT pgml_trigger.attach('tumors', 'forest', 'prediction', explain_column => 'nowhere')", None, "42703",
         "nowhere"),
        ("SELECT pgml_trigger.attach('tumors', 'forest', 'prediction', explain_top_k => 3)", None, "22023",
         "explain_column"),
        ("SELECT pgml_trigger.score('mlp', 'tumors', 'prediction', explain_column => 'reasons')", None, "0A000",
         "MLPClassifier"),
    ]
    for statement, params, sqlstate, fragment in cases:
        error = _error(conn, statement, params)
        assert (error.sqlstate, fragment in error.diag.message_primary) == (sqlstate, True), \
            (statement, error.diag.message_primary)
        assert "plpy" not in error.diag.message_primary and "Error:" not in error.diag.message_primary
    info = conn.execute("SELECT explainer_info FROM pgml_trigger.model_catalog WHERE name = 'mlp'").fetchone()[0]
    assert info["explained"] is False and "MLPClassifier" in info["reason"]


def test_a_user_explains_but_never_reads_an_explainer(conn, dsn, forest):
    name = f"pgml_explain_user_{id(conn)}"
    conn.execute(sql.SQL("CREATE ROLE {} LOGIN IN ROLE pgml_trigger_user").format(sql.Identifier(name)))
    conn.execute(sql.SQL("GRANT SELECT ON tumors TO {}").format(sql.Identifier(name)))
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(dsn, user=name), autocommit=True) as user:
            explained = user.execute("SELECT pgml_trigger.explain('forest', t, 2), "
                                     "pgml_trigger.explain_batch('forest', json_agg(t), 1) "
                                     "FROM tumors AS t WHERE id = 1 GROUP BY t.*").fetchone()
            assert explained[0]["contributions"][:1] == explained[1][0]["contributions"]
            assert user.execute("SELECT explainer_info ->> 'method' FROM pgml_trigger.model_catalog").fetchone() \
                == ("tree_shap",)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                user.execute("SELECT explainer FROM pgml_trigger.models")
    finally:
        conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_a_tampered_explainer_is_refused(conn, connect, forest):
    conn.execute("SET session_replication_role = replica")  # past the guard that keeps versions immutable
    conn.execute("UPDATE pgml_trigger.models SET explainer = explainer || '\\x00'::bytea")
    conn.execute("RESET session_replication_role")
    error = _error(connect(), "SELECT pgml_trigger.explain('forest', t) FROM tumors AS t WHERE id = 1")
    assert error.sqlstate == "XX001" and "explainer" in error.diag.message_primary


# --- Missing values in pipelines, outside the server: scikit-learn's pipelines refuse NULLs in SQL for now (their
# tags do not say they take missing values), but the stored program fills them as the imputers do.


@pytest.mark.parametrize("final", ["linear", "trees"])
def test_imputers_fill_missing_values_as_the_pipeline_does(final):
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from pgml_trigger.server.explain import Explainer, unpack
    from pgml_trigger.uploader import frameworks
    from pgml_trigger.uploader.explainer import explainer_columns

    X, y = _bc_gaps(), trained.breast_cancer()[1]
    last = LogisticRegression(max_iter=2000) if final == "linear" else \
        HistGradientBoostingClassifier(max_iter=20, random_state=0)
    model = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), last).fit(X, y)
    framework = frameworks.for_model(model)
    info = framework.describe(model, sample=X)
    columns = explainer_columns(framework, model, info, X)
    assert columns["explainer_info"].obj["explained"], columns["explainer_info"].obj
    explainer = Explainer(*unpack(columns["explainer"]))
    rows = X.iloc[::40]
    assert rows.isna().any(axis=None)
    classes = [int(label) for label in model.predict(rows)]
    base, prediction, contributions = explainer.explain(rows.to_numpy(), classes)
    expected, expected_base = _pipeline_shap(model, rows, classes, background=X if final == "linear" else None)
    np.testing.assert_allclose(contributions, expected, rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(base, expected_base, rtol=RTOL, atol=RTOL)
    np.testing.assert_allclose(base + contributions.sum(axis=1), prediction, rtol=1e-9)


def test_steps_that_mix_columns_leave_the_version_without_an_explainer():
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from pgml_trigger.uploader import frameworks
    from pgml_trigger.uploader.explainer import explainer_columns

    X, y = trained.breast_cancer()
    model = make_pipeline(PCA(n_components=5), LogisticRegression()).fit(X, y)
    framework = frameworks.for_model(model)
    columns = explainer_columns(framework, model, framework.describe(model, sample=X), X)
    assert "explainer" not in columns
    assert columns["explainer_info"].obj["sqlstate"] == "0A000" and "PCA" in columns["explainer_info"].obj["reason"]

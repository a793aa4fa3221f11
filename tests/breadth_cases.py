"""The pipelines of the breadth suite (tests/test_breadth.py) and the data they are fitted on.

Each case is a pipeline people build: a scikit-learn classifier or regressor, or XGBoost, LightGBM or CatBoost,
alone or behind the transformers put in front of them. Each is fitted twice: on clean data, and on the same data
with holes (NaN in about one number in twelve, NULL in about one text value in twelve). Fitted with holes, a
pipeline that cannot take them (scikit-learn refuses to fit it) gets imputers in front, as its author would add
them: a SimpleImputer ahead of a numeric pipeline, or one per ColumnTransformer branch (``make(impute=True)``).

All data ship with scikit-learn: iris, wine, breast cancer and diabetes, with text columns made from their
numbers for the mixed pipelines.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd
from sklearn import datasets
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor, make_column_selector
from sklearn.cross_decomposition import PLSRegression
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
from sklearn.ensemble import (
    AdaBoostClassifier,
    AdaBoostRegressor,
    BaggingClassifier,
    BaggingRegressor,
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.experimental import enable_iterative_imputer  # noqa: F401  (makes IterativeImputer importable)
from sklearn.feature_selection import SelectFromModel, SelectKBest, VarianceThreshold, f_classif, f_regression
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.impute import IterativeImputer, KNNImputer, MissingIndicator, SimpleImputer
from sklearn.kernel_approximation import Nystroem
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import (
    ARDRegression,
    BayesianRidge,
    ElasticNet,
    GammaRegressor,
    HuberRegressor,
    Lars,
    Lasso,
    LassoLars,
    LinearRegression,
    LogisticRegression,
    LogisticRegressionCV,
    OrthogonalMatchingPursuit,
    Perceptron,
    PoissonRegressor,
    QuantileRegressor,
    Ridge,
    RidgeClassifier,
    RidgeCV,
    SGDClassifier,
    SGDRegressor,
    TheilSenRegressor,
    TweedieRegressor,
)
from sklearn.multiclass import OneVsRestClassifier
from sklearn.naive_bayes import BernoulliNB, CategoricalNB, ComplementNB, GaussianNB, MultinomialNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor, NearestCentroid
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import FeatureUnion, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    MaxAbsScaler,
    MinMaxScaler,
    Normalizer,
    OneHotEncoder,
    OrdinalEncoder,
    PolynomialFeatures,
    PowerTransformer,
    QuantileTransformer,
    RobustScaler,
    SplineTransformer,
    StandardScaler,
    TargetEncoder,
)
from sklearn.svm import SVC, SVR, LinearSVC, LinearSVR, NuSVC, NuSVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor

SCORED_ROWS = 24  # rows of each dataset every model scores, besides HOLED_ROWS with a hole or two
HOLE_SHARE = 1 / 12


@dataclass(frozen=True)
class Dataset:
    name: str
    frame: pd.DataFrame  # training rows, clean
    target: np.ndarray
    holed: pd.DataFrame  # the same rows with holes
    scored: pd.DataFrame  # rows every model scores: SCORED_ROWS clean ones, then some with holes

    @property
    def texts(self) -> list[str]:
        return [name for name in self.frame.columns if self.frame[name].dtype.kind not in "biuf"]

    @property
    def numbers(self) -> list[str]:
        return [name for name in self.frame.columns if self.frame[name].dtype.kind in "biuf"]


@dataclass(frozen=True)
class Case:
    id: str
    dataset: str
    make: Callable[[bool], object]  # make(impute): the unfitted model; impute: with imputers for data with holes
    library: str = "sklearn"


def _bands(values: pd.Series, labels: list[str]) -> pd.Series:
    cut = pd.qcut(values, len(labels), labels=labels).astype(str)
    return cut.astype("str")


def _dataset(name: str, frame: pd.DataFrame, target: np.ndarray) -> Dataset:
    rng = np.random.default_rng(17)
    holed = frame.copy()
    for column in frame.columns:
        holed.loc[rng.random(len(frame)) < HOLE_SHARE, column] = np.nan
    picked = rng.choice(len(frame), SCORED_ROWS, replace=False)
    scored = frame.iloc[np.sort(picked)].reset_index(drop=True)
    # Rows with holes: each column missing once, then two columns at once.
    holes = []
    columns = list(frame.columns)
    for position, column in enumerate(columns + [None]):
        row = frame.iloc[[int(picked[position % len(picked)])]].copy()
        if column is None:
            row[columns[0]] = np.nan
            row[columns[-1]] = np.nan
        else:
            row[column] = np.nan
        holes.append(row)
    scored = pd.concat([scored, *holes], ignore_index=True)
    for column in frame.columns:  # pandas' own dtypes, as a user's frame has them
        scored[column] = scored[column].astype(frame[column].dtype)
    return Dataset(name, frame, target, holed, scored)


@cache
def dataset(name: str) -> Dataset:
    if name in ("iris", "iris_mixed"):
        data = datasets.load_iris(as_frame=True)
        frame = data.data.copy()
        frame.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
        target = np.asarray(data.target_names, dtype=object)[data.target]  # text labels
        if name == "iris_mixed":
            frame["petal_size"] = _bands(frame["petal_length"], ["small", "medium", "large"])
            frame["sepal_shape"] = np.where(frame["sepal_width"] > 3.0, "round", "long")
            frame = frame[["sepal_length", "sepal_width", "petal_size", "sepal_shape"]]
            target = data.target.to_numpy()  # class indexes: predict() gives them as numbers
    elif name == "wine":
        data = datasets.load_wine(as_frame=True)
        frame = data.data.copy()
        frame.columns = [column.replace("/", "_") for column in frame.columns]
        target = data.target.to_numpy()
    elif name == "breast_cancer":
        data = datasets.load_breast_cancer(as_frame=True)
        frame = data.data.iloc[:, :8].copy()
        frame.columns = [column.replace(" ", "_") for column in frame.columns]
        target = data.target.to_numpy()
    elif name in ("diabetes", "diabetes_mixed"):
        data = datasets.load_diabetes(as_frame=True)
        frame = data.data.copy()
        target = data.target.to_numpy()
        if name == "diabetes_mixed":
            frame["sex"] = np.where(frame["sex"] > 0, "male", "female")
            frame["bmi_band"] = _bands(frame["bmi"], ["low", "mid", "high"])
            frame = frame[["age", "bmi", "bp", "s1", "s5", "sex", "bmi_band"]]
    else:
        raise KeyError(name)
    return _dataset(name, frame, target)


def fitted(case: Case, holes: bool):
    """(the model fitted on clean data or on data with holes, whether imputers were added for the holes)."""
    data = dataset(case.dataset)
    frame = data.holed if holes else data.frame
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and deprecation chatter of the estimators themselves
        if holes:
            try:
                return case.make(False).fit(frame, data.target), False
            except ValueError:  # scikit-learn refuses to fit it on holes: its author adds imputers
                pass
        return case.make(holes).fit(frame, data.target), holes


# --- The pipelines -------------------------------------------------------------------------------------------


def numeric(*steps) -> Callable[[bool], object]:
    """A pipeline over numbers only; with impute, a SimpleImputer first."""
    return lambda impute: make_pipeline(*([SimpleImputer()] if impute else []), *_fresh(steps))


def mixed(numbers, texts, *after, remainder="drop", numbers_names=None, texts_names=None) -> Callable[[bool], object]:
    """A ColumnTransformer (numbers and texts, each a list of steps) and then ``after``; with impute, each branch
    starts with a SimpleImputer (the most frequent text for texts), the remainder too."""

    def make(impute: bool):
        number_steps = ([SimpleImputer()] if impute else []) + _fresh(numbers)
        text_steps = ([SimpleImputer(strategy="most_frequent")] if impute else []) + _fresh(texts)
        rest = _fresh([remainder])[0]
        if impute and rest != "drop":
            rest = make_pipeline(SimpleImputer(), *([] if rest == "passthrough" else [rest]))
        branches = [("numbers", _steps(number_steps), _NUMBERS if numbers_names is None else numbers_names),
                    ("texts", _steps(text_steps), _TEXTS if texts_names is None else texts_names)]
        kept = [branch for branch in branches if branch[2] != []]  # a branch given no columns is left out
        return make_pipeline(ColumnTransformer(kept, remainder=rest), *_fresh(after))

    return make


def _steps(steps: list):
    return make_pipeline(*steps) if steps else "passthrough"


# Column selectors that the server can unpickle (a function of this module it could not import).
_NUMBERS = make_column_selector(dtype_include="number")
_TEXTS = make_column_selector(dtype_exclude="number")


def _fresh(steps) -> list:
    """Unfitted copies, so that one case builds the same pipeline any number of times."""
    from sklearn.base import clone

    return [clone(step) if hasattr(step, "get_params") else step for step in steps]


def _xgb_classifier():
    import xgboost

    return xgboost.XGBClassifier(n_estimators=15, max_depth=3, random_state=0)


def _xgb_regressor():
    import xgboost

    return xgboost.XGBRegressor(n_estimators=15, max_depth=3, random_state=0)


def _lgbm_classifier():
    import lightgbm

    return lightgbm.LGBMClassifier(n_estimators=15, min_child_samples=5, random_state=0, verbose=-1)


def _lgbm_regressor():
    import lightgbm

    return lightgbm.LGBMRegressor(n_estimators=15, min_child_samples=5, random_state=0, verbose=-1)


def _catboost(kind: str):
    import catboost

    options = {"iterations": 15, "depth": 4, "random_seed": 0, "verbose": 0, "allow_writing_files": False,
               "thread_count": 1}
    return catboost.CatBoostClassifier(**options) if kind == "classifier" else catboost.CatBoostRegressor(**options)


def _booster(make_model) -> Callable[[bool], object]:
    """A gradient-boosting library's model, made when the case is (the library is imported then)."""
    return lambda impute: make_pipeline(*([SimpleImputer()] if impute else []), make_model())


def _scaled_booster(make_model) -> Callable[[bool], object]:
    return lambda impute: make_pipeline(*([SimpleImputer()] if impute else []), StandardScaler(), make_model())


def _mixed_booster(make_model) -> Callable[[bool], object]:
    def make(impute: bool):
        texts = make_pipeline(*([SimpleImputer(strategy="most_frequent")] if impute else []),
                              OneHotEncoder(handle_unknown="ignore"))
        rest = SimpleImputer() if impute else "passthrough"
        return make_pipeline(ColumnTransformer([("texts", texts, _TEXTS)], remainder=rest), make_model())

    return make


SEED = {"random_state": 0}

CASES = [
    # --- classifiers on numbers
    Case("logistic", "breast_cancer", numeric(StandardScaler(), LogisticRegression(max_iter=1000))),
    Case("logistic_multiclass", "wine", numeric(StandardScaler(), LogisticRegression(max_iter=1000))),
    Case("logistic_cv", "iris", numeric(StandardScaler(), LogisticRegressionCV(cv=3, max_iter=500))),
    Case("ridge_classifier", "wine", numeric(StandardScaler(), RidgeClassifier())),
    Case("sgd_log_loss", "breast_cancer", numeric(StandardScaler(), SGDClassifier(loss="log_loss", **SEED))),
    Case("sgd_hinge", "wine", numeric(StandardScaler(), SGDClassifier(**SEED))),
    Case("perceptron", "iris", numeric(StandardScaler(), Perceptron(**SEED))),
    Case("linear_svc", "breast_cancer", numeric(StandardScaler(), LinearSVC(**SEED))),
    Case("svc_probability", "iris", numeric(StandardScaler(), SVC(probability=True, **SEED))),
    Case("svc", "wine", numeric(StandardScaler(), SVC())),
    Case("nu_svc", "breast_cancer", numeric(StandardScaler(), NuSVC(probability=True, **SEED))),
    Case("k_neighbors_classifier", "wine", numeric(StandardScaler(), KNeighborsClassifier())),
    Case("nearest_centroid", "iris", numeric(NearestCentroid())),
    Case("gaussian_nb", "wine", numeric(GaussianNB())),
    Case("multinomial_nb", "wine", numeric(MinMaxScaler(), MultinomialNB())),
    Case("bernoulli_nb", "breast_cancer", numeric(StandardScaler(), BernoulliNB())),
    Case("complement_nb", "iris", numeric(MinMaxScaler(), ComplementNB())),
    Case("categorical_nb", "iris", numeric(KBinsDiscretizer(n_bins=4, encode="ordinal",
                                                            quantile_method="averaged_inverted_cdf"), CategoricalNB())),
    Case("lda", "wine", numeric(LinearDiscriminantAnalysis())),
    Case("qda", "iris", numeric(QuadraticDiscriminantAnalysis())),
    Case("decision_tree_classifier", "breast_cancer", numeric(DecisionTreeClassifier(max_depth=5, **SEED))),
    Case("extra_tree_classifier", "iris", numeric(ExtraTreeClassifier(**SEED))),
    Case("random_forest_classifier", "breast_cancer", numeric(RandomForestClassifier(n_estimators=20, **SEED))),
    Case("extra_trees_classifier", "wine", numeric(ExtraTreesClassifier(n_estimators=20, **SEED))),
    Case("gradient_boosting_classifier", "iris", numeric(GradientBoostingClassifier(n_estimators=20, **SEED))),
    Case("hist_gradient_boosting_classifier", "breast_cancer",
         numeric(HistGradientBoostingClassifier(max_iter=20, **SEED))),
    Case("adaboost_classifier", "wine", numeric(AdaBoostClassifier(n_estimators=20, **SEED))),
    Case("bagging_classifier", "breast_cancer", numeric(BaggingClassifier(n_estimators=10, **SEED))),
    Case("mlp_classifier", "iris", numeric(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=500,
                                                                          **SEED))),
    Case("voting_classifier", "wine", numeric(StandardScaler(), VotingClassifier(
        [("lr", LogisticRegression(max_iter=1000)), ("nb", GaussianNB())], voting="soft"))),
    Case("stacking_classifier", "iris", numeric(StandardScaler(), StackingClassifier(
        [("lr", LogisticRegression(max_iter=1000)), ("knn", KNeighborsClassifier())], cv=3))),
    Case("calibrated_classifier", "breast_cancer", numeric(StandardScaler(), CalibratedClassifierCV(LinearSVC(**SEED),
                                                                                                   cv=3))),
    Case("gaussian_process_classifier", "iris", numeric(StandardScaler(), GaussianProcessClassifier(**SEED))),
    Case("one_vs_rest", "wine", numeric(StandardScaler(), OneVsRestClassifier(LogisticRegression(max_iter=1000)))),
    # --- regressors on numbers
    Case("linear_regression", "diabetes", numeric(LinearRegression())),
    Case("ridge", "diabetes", numeric(StandardScaler(), Ridge())),
    Case("ridge_cv", "diabetes", numeric(RidgeCV())),
    Case("lasso", "diabetes", numeric(Lasso(alpha=0.1))),
    Case("elastic_net", "diabetes", numeric(StandardScaler(), ElasticNet(alpha=0.1))),
    Case("lars", "diabetes", numeric(Lars())),
    Case("lasso_lars", "diabetes", numeric(LassoLars(alpha=0.1))),
    Case("omp", "diabetes", numeric(OrthogonalMatchingPursuit())),
    Case("bayesian_ridge", "diabetes", numeric(BayesianRidge())),
    Case("ard", "diabetes", numeric(ARDRegression())),
    Case("huber", "diabetes", numeric(StandardScaler(), HuberRegressor(max_iter=500))),
    Case("sgd_regressor", "diabetes", numeric(StandardScaler(), SGDRegressor(**SEED))),
    Case("theil_sen", "diabetes", numeric(TheilSenRegressor(max_subpopulation=200, **SEED))),
    Case("quantile", "diabetes", numeric(QuantileRegressor(alpha=0.0))),
    Case("poisson", "diabetes", numeric(StandardScaler(), PoissonRegressor())),
    Case("gamma", "diabetes", numeric(StandardScaler(), GammaRegressor())),
    Case("tweedie", "diabetes", numeric(StandardScaler(), TweedieRegressor(power=1.5))),
    Case("linear_svr", "diabetes", numeric(StandardScaler(), LinearSVR(max_iter=5000, **SEED))),
    Case("svr", "diabetes", numeric(StandardScaler(), SVR(C=50.0))),
    Case("nu_svr", "diabetes", numeric(StandardScaler(), NuSVR(C=50.0))),
    Case("kernel_ridge", "diabetes", numeric(StandardScaler(), KernelRidge(kernel="rbf", alpha=0.5))),
    Case("k_neighbors_regressor", "diabetes", numeric(StandardScaler(), KNeighborsRegressor())),
    Case("decision_tree_regressor", "diabetes", numeric(DecisionTreeRegressor(max_depth=5, **SEED))),
    Case("extra_tree_regressor", "diabetes", numeric(ExtraTreeRegressor(max_depth=6, **SEED))),
    Case("random_forest_regressor", "diabetes", numeric(RandomForestRegressor(n_estimators=20, **SEED))),
    Case("extra_trees_regressor", "diabetes", numeric(ExtraTreesRegressor(n_estimators=20, **SEED))),
    Case("gradient_boosting_regressor", "diabetes", numeric(GradientBoostingRegressor(n_estimators=30, **SEED))),
    Case("hist_gradient_boosting_regressor", "diabetes", numeric(HistGradientBoostingRegressor(max_iter=30, **SEED))),
    Case("adaboost_regressor", "diabetes", numeric(AdaBoostRegressor(n_estimators=20, **SEED))),
    Case("bagging_regressor", "diabetes", numeric(BaggingRegressor(n_estimators=10, **SEED))),
    Case("mlp_regressor", "diabetes", numeric(StandardScaler(), MLPRegressor(hidden_layer_sizes=(16,), max_iter=300,
                                                                           **SEED))),
    Case("gaussian_process_regressor", "diabetes", numeric(StandardScaler(), GaussianProcessRegressor(**SEED))),
    Case("transformed_target", "diabetes", numeric(TransformedTargetRegressor(
        regressor=Ridge(), func=np.log1p, inverse_func=np.expm1))),
    Case("voting_regressor", "diabetes", numeric(VotingRegressor([("ridge", Ridge()),
                                                                  ("knn", KNeighborsRegressor())]))),
    Case("stacking_regressor", "diabetes", numeric(StackingRegressor(
        [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=3, **SEED))], cv=3))),
    Case("pls", "diabetes", numeric(PLSRegression(n_components=3))),
    # --- transformers in front
    Case("polynomial_ridge", "diabetes", numeric(PolynomialFeatures(2), StandardScaler(), Ridge())),
    Case("select_k_best", "breast_cancer", numeric(SelectKBest(f_classif, k=4), LogisticRegression(max_iter=1000))),
    Case("select_k_best_regression", "diabetes", numeric(SelectKBest(f_regression, k=5), LinearRegression())),
    Case("pca_logistic", "wine", numeric(StandardScaler(), PCA(n_components=5), LogisticRegression(max_iter=1000))),
    Case("truncated_svd", "diabetes", numeric(TruncatedSVD(n_components=5, **SEED), Ridge())),
    Case("kbins_onehot", "breast_cancer", numeric(KBinsDiscretizer(n_bins=5, quantile_method="averaged_inverted_cdf"),
                                                  LogisticRegression(max_iter=1000))),
    Case("kbins_tree", "diabetes", numeric(KBinsDiscretizer(n_bins=6, encode="ordinal",
                                                            quantile_method="averaged_inverted_cdf"),
                                           DecisionTreeRegressor(max_depth=4, **SEED))),
    Case("function_log1p", "wine", numeric(FunctionTransformer(np.log1p), StandardScaler(),
                                           LogisticRegression(max_iter=1000))),
    Case("function_sqrt", "iris", numeric(FunctionTransformer(np.sqrt), KNeighborsClassifier())),
    Case("quantile_transformer", "iris", numeric(QuantileTransformer(n_quantiles=20),
                                                          LogisticRegression(max_iter=1000))),
    Case("power_transformer", "diabetes", numeric(PowerTransformer(), Ridge())),
    Case("robust_scaler", "diabetes", numeric(RobustScaler(), Ridge())),
    Case("max_abs_scaler", "wine", numeric(MaxAbsScaler(), LogisticRegression(max_iter=2000))),
    Case("min_max_scaler", "diabetes", numeric(MinMaxScaler(), LinearRegression())),
    Case("normalizer", "iris", numeric(Normalizer(), LogisticRegression(max_iter=1000))),
    Case("spline", "diabetes", numeric(SplineTransformer(n_knots=4), Ridge())),
    Case("nystroem", "breast_cancer", numeric(StandardScaler(), Nystroem(n_components=20, **SEED),
                                              LogisticRegression(max_iter=1000))),
    Case("variance_threshold", "wine", numeric(VarianceThreshold(0.1), StandardScaler(),
                                               LogisticRegression(max_iter=1000))),
    Case("select_from_model", "diabetes", numeric(SelectFromModel(Lasso(alpha=0.5)), LinearRegression())),
    Case("feature_union", "wine", numeric(StandardScaler(), FeatureUnion([("pca", PCA(n_components=3)),
                                                                         ("best", SelectKBest(f_classif, k=3))]),
                                          LogisticRegression(max_iter=1000))),
    Case("knn_imputer", "breast_cancer", lambda impute: make_pipeline(KNNImputer(), StandardScaler(),
                                                                      LogisticRegression(max_iter=1000))),
    Case("iterative_imputer", "diabetes", lambda impute: make_pipeline(IterativeImputer(max_iter=5, **SEED), Ridge())),
    Case("imputer_with_indicator", "breast_cancer", lambda impute: make_pipeline(
        SimpleImputer(add_indicator=True), StandardScaler(), LogisticRegression(max_iter=1000))),
    Case("median_imputer_tree", "iris", lambda impute: make_pipeline(SimpleImputer(strategy="median"),
                                                                     DecisionTreeClassifier(max_depth=4, **SEED))),
    Case("missing_indicator_union", "diabetes", lambda impute: make_pipeline(
        FeatureUnion([("filled", SimpleImputer()), ("flags", MissingIndicator(features="all"))]), Ridge())),
    # --- mixed numbers and text: ColumnTransformer with every remainder
    Case("mixed_onehot_logistic", "iris_mixed", mixed([StandardScaler()], [OneHotEncoder(handle_unknown="ignore")],
                                                      LogisticRegression(max_iter=1000))),
    Case("mixed_onehot_ridge", "diabetes_mixed", mixed([StandardScaler()], [OneHotEncoder(handle_unknown="ignore")],
                                                       Ridge())),
    Case("mixed_onehot_drop_first", "diabetes_mixed", mixed([], [OneHotEncoder(drop="first")], LinearRegression())),
    Case("mixed_ordinal_forest", "iris_mixed", mixed([], [OrdinalEncoder(handle_unknown="use_encoded_value",
                                                                         unknown_value=-1)],
                                                     RandomForestClassifier(n_estimators=20, **SEED))),
    Case("mixed_ordinal_hgb", "diabetes_mixed", mixed([], [OrdinalEncoder()], HistGradientBoostingRegressor(
        max_iter=30, **SEED))),
    Case("mixed_target_encoder", "diabetes_mixed", mixed([StandardScaler()], [TargetEncoder(**SEED)], Ridge())),
    Case("mixed_remainder_passthrough", "iris_mixed", mixed([], [OneHotEncoder(handle_unknown="ignore")],
                                                            LogisticRegression(max_iter=1000),
                                                            numbers_names=[], remainder="passthrough")),
    Case("mixed_remainder_scaler", "diabetes_mixed", mixed([], [OneHotEncoder(handle_unknown="ignore")], Ridge(),
                                                           numbers_names=["age", "bmi"], remainder=StandardScaler())),
    Case("mixed_remainder_drop", "diabetes_mixed", mixed([StandardScaler()], [OneHotEncoder(handle_unknown="ignore")],
                                                         Ridge(), numbers_names=["bmi", "bp", "s5"],
                                                         texts_names=["sex"])),
    Case("numbers_remainder_passthrough", "wine", lambda impute: make_pipeline(
        *([SimpleImputer().set_output(transform="pandas")] if impute else []),
        ColumnTransformer([("scaled", StandardScaler(), ["alcohol", "malic_acid", "ash"])], remainder="passthrough"),
        LogisticRegression(max_iter=300))),
    Case("numbers_remainder_drop", "diabetes", lambda impute: make_pipeline(
        *([SimpleImputer().set_output(transform="pandas")] if impute else []),
        ColumnTransformer([("scaled", StandardScaler(), ["bmi", "bp", "s5"])]), LinearRegression())),
    Case("mixed_mlp", "iris_mixed", mixed([StandardScaler()], [OneHotEncoder(handle_unknown="ignore")],
                                          MLPClassifier(hidden_layer_sizes=(8,), max_iter=500, **SEED))),
    # --- XGBoost, LightGBM, CatBoost
    Case("xgb_classifier", "breast_cancer", _booster(_xgb_classifier), "xgboost"),
    Case("xgb_regressor", "diabetes", _booster(_xgb_regressor), "xgboost"),
    Case("xgb_scaled", "wine", _scaled_booster(_xgb_classifier), "xgboost"),
    Case("xgb_mixed", "diabetes_mixed", _mixed_booster(_xgb_regressor), "xgboost"),
    Case("lgbm_classifier", "wine", _booster(_lgbm_classifier), "lightgbm"),
    Case("lgbm_regressor", "diabetes", _booster(_lgbm_regressor), "lightgbm"),
    Case("lgbm_scaled", "breast_cancer", _scaled_booster(_lgbm_classifier), "lightgbm"),
    Case("lgbm_mixed", "iris_mixed", _mixed_booster(_lgbm_classifier), "lightgbm"),
    Case("catboost_classifier", "iris", _booster(lambda: _catboost("classifier")), "catboost"),
    Case("catboost_regressor", "diabetes", _booster(lambda: _catboost("regressor")), "catboost"),
    Case("catboost_scaled", "breast_cancer", _scaled_booster(lambda: _catboost("classifier")), "catboost"),
]

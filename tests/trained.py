"""Models the tests upload, trained once per session on datasets that ship with scikit-learn."""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


@cache
def breast_cancer() -> tuple[pd.DataFrame, pd.Series]:
    """30 float features, with SQL-friendly column names."""
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    X.columns = [name.replace(" ", "_") for name in X.columns]
    return X, y


@cache
def linear_breast_cancer():
    X, y = breast_cancer()
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)


@cache
def forest_breast_cancer():
    X, y = breast_cancer()
    return RandomForestClassifier(n_estimators=20, random_state=0).fit(X, y)


@cache
def hgb_breast_cancer():
    """Accepts missing values natively."""
    X, y = breast_cancer()
    return HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y)


@cache
def iris_text_labels():
    """Fitted on a bare array, with string class labels."""
    data = load_iris()
    labels = np.asarray(data.target_names)[data.target]
    return LogisticRegression(max_iter=1000).fit(data.data, labels), data.data


@cache
def diabetes():
    return load_diabetes(return_X_y=True, as_frame=True)


@cache
def diabetes_ridge():
    X, y = diabetes()
    return Ridge(alpha=0.5).fit(X, y)


@cache
def diabetes_mixed() -> tuple[pd.DataFrame, pd.Series]:
    """The diabetes data with two text columns, for pipelines over mixed dtypes."""
    X, y = diabetes()
    frame = X[["age", "bmi", "bp", "s1", "s5"]].copy()
    frame["sex"] = np.where(X["sex"] > 0, "male", "female")
    frame["bmi_band"] = pd.cut(X["bmi"], bins=[-1, -0.03, 0.03, 1], labels=["low", "mid", "high"]).astype(str)
    return frame, y


@cache
def mixed_pipeline():
    X, y = diabetes_mixed()
    encode = ColumnTransformer([
        ("text", OneHotEncoder(handle_unknown="ignore"), ["sex", "bmi_band"]),
        ("numbers", StandardScaler(), ["age", "bmi", "bp", "s1", "s5"]),
    ])
    return make_pipeline(encode, LinearRegression()).fit(X, y)


# --- Gradient-boosting libraries (pgml_trigger/uploader/frameworks/): small models, so that the tests stay quick. ---

IRIS_NAMES = ["setosa", "versicolor", "virginica"]


@cache
def iris_frame() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Iris with SQL-friendly column names, its class indexes, and the same classes as text labels."""
    data = load_iris()
    frame = pd.DataFrame(data.data, columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
    return frame, data.target, np.asarray(IRIS_NAMES, dtype=object)[data.target]


@cache
def xgb_classifier():
    import xgboost

    X, y = breast_cancer()
    return xgboost.XGBClassifier(n_estimators=15, max_depth=3, random_state=0).fit(X, y)


@cache
def xgb_regressor():
    import xgboost

    X, y = diabetes()
    return xgboost.XGBRegressor(n_estimators=15, max_depth=3, random_state=0).fit(X, y)


@cache
def xgb_booster_iris():
    """A native booster (xgboost.train) on class indexes: its labels are given at upload."""
    import xgboost

    X, y, _ = iris_frame()
    return xgboost.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "seed": 0},
                         xgboost.DMatrix(X, label=y), num_boost_round=10)


@cache
def xgb_scaled_pipeline():
    """StandardScaler then XGBClassifier: its ONNX graph scales in float32 and disagrees near split thresholds."""
    import xgboost

    X, y, _ = iris_frame()
    return make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=10, max_depth=3,
                                                                 random_state=0)).fit(X, y)


@cache
def lgbm_iris_text_labels():
    import lightgbm

    X, _, labels = iris_frame()
    return lightgbm.LGBMClassifier(n_estimators=10, min_child_samples=5, random_state=0, verbose=-1).fit(X, labels)


@cache
def lgbm_pipeline_regressor():
    import lightgbm

    X, y = diabetes()
    return make_pipeline(StandardScaler(), lightgbm.LGBMRegressor(n_estimators=15, random_state=0,
                                                                  verbose=-1)).fit(X, y)


@cache
def lgbm_booster_breast_cancer():
    """A native booster (lightgbm.train) on a bare array: its feature names are given at upload."""
    import lightgbm

    X, y = breast_cancer()
    return lightgbm.train({"objective": "binary", "num_leaves": 8, "verbose": -1, "seed": 0},
                          lightgbm.Dataset(X.to_numpy(), label=y.to_numpy()), num_boost_round=10)


def _catboost_options() -> dict:
    return {"iterations": 15, "depth": 4, "random_seed": 0, "verbose": 0, "allow_writing_files": False,
            "thread_count": 1}


@cache
def catboost_iris_text_labels():
    import catboost

    X, _, labels = iris_frame()
    return catboost.CatBoostClassifier(**_catboost_options()).fit(X, labels)


@cache
def catboost_regressor():
    import catboost

    X, y = diabetes()
    return catboost.CatBoostRegressor(**_catboost_options()).fit(X, y)


@cache
def catboost_native_breast_cancer():
    """The base catboost.CatBoost class with a classification loss."""
    import catboost

    X, y = breast_cancer()
    return catboost.CatBoost({**_catboost_options(), "loss_function": "Logloss"}).fit(X, y)


@cache
def catboost_pipeline():
    """CatBoost's tree ensemble goes into the pipeline's graph through a converter registered with skl2onnx."""
    import catboost

    X, _, labels = iris_frame()
    return make_pipeline(StandardScaler(), catboost.CatBoostClassifier(**_catboost_options())).fit(X, labels)


@cache
def lgbm_mixed_pipeline():
    """Text columns one-hot encoded by a ColumnTransformer, then LightGBM: converted as one graph."""
    import lightgbm

    X, y = diabetes_mixed()
    encode = ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), ["sex", "bmi_band"])],
                               remainder="passthrough")
    return make_pipeline(encode, lightgbm.LGBMRegressor(n_estimators=15, random_state=0, verbose=-1)).fit(X, y)

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

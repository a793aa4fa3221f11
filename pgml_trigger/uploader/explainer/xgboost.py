"""XGBoost: the trees of a gbtree booster from its JSON model (XGBClassifier/XGBRegressor or a native Booster).

XGBoost compares float32 features with float32 split conditions (``value < condition`` goes left) and weighs
its own TreeSHAP (``pred_contribs=True``) by each node's sum of hessians, which is the cover stored here."""

from __future__ import annotations

import json

import numpy as np

from . import Final, Unexplained, forest_arrays


def final(estimator, info) -> Final:
    import xgboost

    booster = estimator.booster if hasattr(estimator, "scores") else estimator.get_booster()
    model = json.loads(booster.save_raw(raw_format="json"))["learner"]
    if model["gradient_booster"]["name"] != "gbtree":
        raise Unexplained(f"explain() reads gbtree boosters; this one is {model['gradient_booster']['name']}")
    trees = model["gradient_booster"]["model"]["trees"]
    classes = model["gradient_booster"]["model"]["tree_info"]
    n_outputs = max(classes, default=0) + 1
    nodes = []
    for tree, k in zip(trees, classes):
        if any(tree["split_type"]) or int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise Unexplained("the XGBoost model splits on categories or has vector leaves")
        left = np.asarray(tree["left_children"])
        leaf = left < 0
        # A leaf's value is its split condition; both are float32.
        conditions = np.asarray(tree["split_conditions"], dtype=np.float32).astype(np.float64)
        value = np.zeros((len(left), n_outputs))
        value[leaf, k] = conditions[leaf]
        nodes.append({"left": left, "right": np.asarray(tree["right_children"]), "feature": tree["split_indices"],
                      "threshold": np.where(leaf, 0.0, conditions), "default_left": tree["default_left"],
                      "value": value, "cover": np.asarray(tree["sum_hessian"], dtype=np.float32)})

    def raw(X):
        matrix = xgboost.DMatrix(X, feature_names=booster.feature_names, missing=np.nan)
        return booster.predict(matrix, output_margin=True)

    outputs = "single" if info.task == "regression" else "binary" if n_outputs == 1 else "per_class"
    return Final("tree_shap", outputs, forest_arrays(nodes, n_outputs), raw, {"strict": True, "float32": True})

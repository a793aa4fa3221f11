"""scikit-learn final estimators: linear models, and decision trees, random forests, extra trees, gradient boosting
and histogram gradient boosting as node arrays. Anything else has no exact method (the package docstring says
why KernelSHAP is not offered instead)."""

from __future__ import annotations

import numpy as np

from . import Final, Unexplained, forest_arrays


def final(estimator, info) -> Final:
    kind = type(estimator).__name__
    module = type(estimator).__module__
    if module.startswith(("sklearn.linear_model", "sklearn.svm")) and hasattr(estimator, "coef_"):
        return _linear(estimator, info)
    if module.startswith("sklearn.tree") or kind.startswith(("RandomForest", "ExtraTrees")):
        return _forest(estimator, info)
    if kind in ("GradientBoostingClassifier", "GradientBoostingRegressor"):
        return _gradient_boosting(estimator, info)
    if kind in ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"):
        return _hist_gradient_boosting(estimator, info)
    raise Unexplained(f"explain() has no exact method for a {kind}: it explains linear models and tree ensembles "
                      "(SHAP values that approximate other models, e.g. KernelSHAP, cost hundreds of predictions a "
                      "row and change from run to run)")


def _linear(estimator, info) -> Final:
    coef = np.atleast_2d(np.asarray(estimator.coef_, dtype=np.float64))
    intercept = np.broadcast_to(np.asarray(estimator.intercept_, dtype=np.float64), (coef.shape[0],)).copy()
    if info.task == "regression" and coef.shape[0] != 1:
        raise Unexplained(f"the {type(estimator).__name__} has several outputs")
    outputs = "single" if info.task == "regression" else "binary" if coef.shape[0] == 1 else "per_class"
    raw = estimator.predict if info.task == "regression" else estimator.decision_function
    return Final("linear", outputs, {"coef": coef, "intercept": intercept, "mean": np.zeros(coef.shape[1])}, raw)


def _forest(estimator, info) -> Final:
    """A tree or a forest: the average of its trees' values, class probabilities for a classifier."""
    trees = getattr(estimator, "estimators_", [estimator])
    if estimator.n_outputs_ != 1:
        raise Unexplained(f"the {type(estimator).__name__} has several outputs")
    classifier = info.task == "classification"
    n_outputs = len(info.classes) if classifier else 1
    arrays = forest_arrays([_tree(tree.tree_, 1.0 / len(trees), normalize=classifier) for tree in trees], n_outputs)
    raw = estimator.predict_proba if classifier else estimator.predict
    return Final("tree_shap", "per_class" if classifier else "single", arrays, raw,
                 {"strict": False, "float32": True}, probability=classifier)


def _gradient_boosting(estimator, info) -> Final:
    stages = estimator.estimators_  # [stages, outputs] of regression trees, each weighed by the learning rate
    n_outputs = stages.shape[1]
    trees = []
    for stage in stages:
        for k, tree in enumerate(stage):
            nodes = _tree(tree.tree_, estimator.learning_rate)
            value = np.zeros((len(nodes["value"]), n_outputs))
            value[:, k] = nodes["value"][:, 0]
            trees.append(nodes | {"value": value})
    raw = estimator.predict if info.task == "regression" else estimator.decision_function
    return Final("tree_shap", _outputs(info, n_outputs), forest_arrays(trees, n_outputs), raw,
                 {"strict": False, "float32": True})


def _hist_gradient_boosting(estimator, info) -> Final:
    if getattr(estimator, "_preprocessor", None) is not None or (
            getattr(estimator, "is_categorical_", None) is not None and np.any(estimator.is_categorical_)):
        raise Unexplained(f"the {type(estimator).__name__} splits on categorical features")
    n_outputs = len(estimator._predictors[0])
    trees = []
    for iteration in estimator._predictors:
        for k, predictor in enumerate(iteration):
            nodes = predictor.nodes
            leaf = nodes["is_leaf"].astype(bool)
            value = np.zeros((len(nodes), n_outputs))
            value[leaf, k] = nodes["value"][leaf]
            trees.append({"left": np.where(leaf, -1, nodes["left"].astype(np.int64)),
                          "right": np.where(leaf, -1, nodes["right"].astype(np.int64)),
                          "feature": nodes["feature_idx"], "threshold": nodes["num_threshold"],
                          "default_left": nodes["missing_go_to_left"], "value": value, "cover": nodes["count"]})
    raw = estimator.predict if info.task == "regression" else estimator.decision_function
    return Final("tree_shap", _outputs(info, n_outputs), forest_arrays(trees, n_outputs), raw,
                 {"strict": False, "float32": False})


def _tree(tree, weight: float, normalize: bool = False) -> dict:
    """A fitted sklearn.tree's nodes; ``value``: [nodes, classes] probabilities when ``normalize``, else the
    value of its one output; times ``weight``. It compares its input in float32."""
    value = tree.value[:, 0, :]
    if normalize:
        value = value / value.sum(axis=1, keepdims=True)
    missing_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=np.uint8))
    return {"left": tree.children_left, "right": tree.children_right, "feature": tree.feature,
            "threshold": tree.threshold, "default_left": missing_left, "value": value * weight,
            "cover": tree.weighted_n_node_samples}


def _outputs(info, n_outputs: int) -> str:
    if info.task == "regression":
        return "single"
    return "binary" if n_outputs == 1 else "per_class"

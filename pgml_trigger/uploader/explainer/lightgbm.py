"""LightGBM: the trees of a booster from its dump (LGBMClassifier/LGBMRegressor or a native Booster).

LightGBM compares features in double (``value <= threshold`` goes left), its missing types say where NaN goes
(``NaN``: the default side; ``None``: taken as 0; ``Zero``: NaN and zero the default side), and its own
TreeSHAP (``pred_contrib=True``) weighs nodes by their training row counts, the cover stored here."""

from __future__ import annotations

import numpy as np

from ...server.treeshap import MISSING_AS_ZERO, MISSING_DEFAULT, MISSING_OR_ZERO
from . import Final, Unexplained, forest_arrays

_MISSING = {"NaN": MISSING_DEFAULT, "None": MISSING_AS_ZERO, "Zero": MISSING_OR_ZERO}


def final(estimator, info) -> Final:
    booster = estimator.booster if hasattr(estimator, "scores") else estimator.booster_
    dump = booster.dump_model()
    per_iteration = dump["num_tree_per_iteration"]
    if dump.get("average_output"):
        raise Unexplained("the LightGBM model averages its trees (boosting rf)")
    n_outputs = per_iteration
    trees = [_tree(tree["tree_structure"], index % per_iteration, n_outputs)
             for index, tree in enumerate(dump["tree_info"])]

    def raw(X):
        return booster.predict(np.asarray(X, dtype=np.float64), raw_score=True)

    outputs = "single" if info.task == "regression" else "binary" if n_outputs == 1 else "per_class"
    return Final("tree_shap", outputs, forest_arrays(trees, n_outputs), raw, {"strict": False, "float32": False})


def _tree(root: dict, output: int, n_outputs: int) -> dict:
    nodes, stack = [], [(root, None, False)]
    columns = {name: [] for name in ("left", "right", "feature", "threshold", "default_left", "missing", "cover")}
    values = []
    while stack:  # depth first, each node's children filled in when they are reached
        node, parent, is_left = stack.pop()
        index = len(nodes)
        nodes.append(node)
        if parent is not None:
            columns["left" if is_left else "right"][parent] = index
        leaf = "split_index" not in node
        if not leaf and node.get("decision_type", "<=") != "<=":
            raise Unexplained("the LightGBM model splits on categories")
        if "leaf_coeff" in node:
            raise Unexplained("the LightGBM model has linear leaves")
        columns["left"].append(-1)
        columns["right"].append(-1)
        columns["feature"].append(0 if leaf else node["split_feature"])
        columns["threshold"].append(0.0 if leaf else float(node["threshold"]))
        columns["default_left"].append(not leaf and bool(node["default_left"]))
        columns["missing"].append(MISSING_DEFAULT if leaf else _MISSING[node["missing_type"]])
        columns["cover"].append(node.get("leaf_count", 0) if leaf else node["internal_count"])
        value = np.zeros(n_outputs)
        value[output] = node.get("leaf_value", 0.0) if leaf else 0.0
        values.append(value)
        if not leaf:
            stack += [(node["right_child"], index, False), (node["left_child"], index, True)]
    return columns | {"value": np.array(values)}

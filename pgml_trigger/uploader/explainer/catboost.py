"""CatBoost: oblivious trees from the model's JSON, unfolded into binary trees.

An oblivious tree of depth d applies one split per level to every row; its leaf index has bit i set when the
row's value is above the border of split i. Unfolded with the tree's last split at the root (the order
CatBoost's own ShapValues weigh the levels in: the first split at the root gives other values), leaf k of the
unfolded tree is leaf k of CatBoost's. A node's cover is the sum of the leaf weights below it; CatBoost
compares float32 features with float32 borders, and a missing value goes the way nan_value_treatment says."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from . import Final, Unexplained, forest_arrays


def final(estimator, info) -> Final:
    model = estimator.booster if hasattr(estimator, "scores") else estimator
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.json")
        model.save_model(path, format="json")
        with open(path, encoding="utf-8") as stored:
            dump = json.load(stored)
    features = dump["features_info"]
    if any(features.get(kind) for kind in ("categorical_features", "text_features", "embedding_features")):
        raise Unexplained("the CatBoost model has categorical, text or embedding features")
    floats = {feature["feature_index"]: feature for feature in features["float_features"]}
    scale = dump["scale_and_bias"][0]
    trees = []
    for tree in dump["oblivious_trees"]:
        splits = tree["splits"]
        if any(split.get("split_type", "FloatFeature") != "FloatFeature" for split in splits):
            raise Unexplained("the CatBoost model splits on other than numeric features")
        trees.append(_unfolded(splits, floats, np.asarray(tree["leaf_values"]) * scale,
                               np.asarray(tree["leaf_weights"], dtype=np.float64)))
    n_outputs = trees[0]["value"].shape[1] if trees else 1

    def raw(X):
        return model.predict(np.asarray(X, dtype=np.float64), prediction_type="RawFormulaVal")

    outputs = "single" if info.task == "regression" else "binary" if n_outputs == 1 else "per_class"
    if info.task == "regression" and n_outputs != 1:
        raise Unexplained("the CatBoost model has several outputs")
    return Final("tree_shap", outputs, forest_arrays(trees, n_outputs), raw, {"strict": False, "float32": True})


def _unfolded(splits: list, floats: dict, leaf_values: np.ndarray, leaf_weights: np.ndarray) -> dict:
    """A binary tree in heap order (node i's children 2i + 1 and 2i + 2): level l splits by splits[depth - 1 - l],
    so that the heap's k-th leaf is CatBoost's leaf k."""
    depth = len(splits)
    n_leaves, internal = 1 << depth, (1 << depth) - 1
    n_outputs = len(leaf_values) // n_leaves
    nodes = internal + n_leaves
    left, right = np.full(nodes, -1), np.full(nodes, -1)
    feature, threshold, default_left = np.zeros(nodes, dtype=np.int64), np.zeros(nodes), np.zeros(nodes, dtype=bool)
    for node in range(internal):
        split = splits[depth - 1 - int(np.log2(node + 1))]
        described = floats[split["float_feature_index"]]
        left[node], right[node] = 2 * node + 1, 2 * node + 2
        feature[node] = described.get("flat_feature_index", split["float_feature_index"])
        threshold[node] = float(np.float32(split["border"]))
        default_left[node] = described.get("nan_value_treatment", "AsIs") != "AsTrue"
    value = np.zeros((nodes, n_outputs))
    value[internal:] = leaf_values.reshape(n_leaves, n_outputs)
    cover = np.zeros(nodes)
    cover[internal:] = leaf_weights
    for node in range(internal - 1, -1, -1):
        cover[node] = cover[left[node]] + cover[right[node]]
    return {"left": left, "right": right, "feature": feature, "threshold": threshold, "default_left": default_left,
            "value": value, "cover": cover}

"""LightGBM: LGBMClassifier/LGBMRegressor (alone or ending a Pipeline) and native ``lightgbm.Booster``s.

Converted to ONNX by onnxmltools: a Booster directly, the scikit-learn API through onnxmltools' converter
registered into skl2onnx, so that pipelines convert whole.
"""

from __future__ import annotations

import re
import warnings
from functools import cache

import numpy as np

from . import register_with_skl2onnx
from .native import BoosterFramework, BoosterReading, NativeModel, both_classes, split_bounds

_CLASSIFYING = ("binary", "multiclass", "multiclassova")
_NOT_REGRESSION = ("lambdarank", "rank_xendcg", "cross_entropy", "cross_entropy_lambda")
_UNNAMED = re.compile(r"^Column_\d+$")  # what LightGBM calls the features of a bare array


class LightGBMBooster(NativeModel):
    def scores(self, X: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.booster.predict(X), dtype=np.float64)
        if self.task == "classification" and scores.ndim == 1:
            return both_classes(scores)
        return scores


class LightGBMFramework(BoosterFramework):
    name = "lightgbm"
    library = "lightgbm"
    wrapper = LightGBMBooster

    def read(self, booster) -> BoosterReading:
        dump = booster.dump_model(num_iteration=0)
        objective = str(dump.get("objective", "regression")).split()[0]
        if objective in _CLASSIFYING:
            found, n_classes = "classification", 2 if objective == "binary" else int(dump["num_class"])
        else:
            found, n_classes = (None if objective in _NOT_REGRESSION else "regression"), 0
        names = booster.feature_name()
        return BoosterReading(f"lightgbm.Booster (objective {objective})", found, n_classes,
                              None if all(_UNNAMED.match(name) for name in names) else names, booster.num_feature())

    def booster_to_onnx(self, booster, info) -> bytes:
        from onnxmltools.convert import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = convert_lightgbm(booster, initial_types=[
                ("features", FloatTensorType([None, len(info.schema.names)]))], zipmap=False)
        for output in graph.graph.output:  # the converter declares a Booster's labels [1]; they are [N]
            dims = output.type.tensor_type.shape.dim
            if len(dims) == 1 and dims[0].dim_value == 1:
                dims[0].dim_param = "N"
        return graph.SerializeToString()

    def register_converters(self) -> None:
        _register_converters()

    def booster_of(self, estimator):
        return estimator.booster_

    def booster_bounds(self, booster, n_features: int):
        trees = booster.trees_to_dataframe()
        splits = trees[trees["split_feature"].notna()]
        return split_bounds(splits.groupby("split_feature")["threshold"], booster.feature_name())


@cache
def _register_converters() -> None:
    """onnxmltools' LightGBM converter, registered with skl2onnx for the scikit-learn API classes."""
    import lightgbm
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    register_with_skl2onnx("LightGbm", lightgbm.LGBMClassifier, lightgbm.LGBMRegressor, convert_lightgbm,
                           regressor_options={"split": None})


FRAMEWORK = LightGBMFramework()

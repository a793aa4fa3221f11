"""XGBoost: XGBClassifier/XGBRegressor (alone or ending a Pipeline) and native ``xgboost.Booster``s.

Converted to ONNX by onnxmltools: a Booster directly, the scikit-learn API through onnxmltools' converter
registered into skl2onnx, so that pipelines convert whole.
"""

from __future__ import annotations

import copy
import json
import warnings
from functools import cache

import numpy as np

from . import final_step, register_with_skl2onnx
from .native import BoosterFramework, BoosterReading, NativeModel, both_classes, split_bounds


class XGBoostBooster(NativeModel):
    def scores(self, X: np.ndarray) -> np.ndarray:
        import xgboost

        matrix = xgboost.DMatrix(X, feature_names=self.booster.feature_names)
        scores = self.booster.predict(matrix)
        if self.task == "regression":
            return np.asarray(scores, dtype=np.float64).reshape(-1)
        return both_classes(scores) if scores.ndim == 1 else np.asarray(scores, dtype=np.float64)


class XGBoostFramework(BoosterFramework):
    name = "xgboost"
    library = "xgboost"
    wrapper = XGBoostBooster

    def read(self, booster) -> BoosterReading:
        learner = json.loads(booster.save_config())["learner"]
        objective = learner["objective"]["name"]
        n_classes = int(learner["learner_model_param"].get("num_class", "0"))
        if objective == "binary:logistic":
            found, n_classes = "classification", 2
        elif objective == "multi:softprob":
            found = "classification"
        elif objective.startswith(("reg:", "count:")) and objective != "reg:logistic":
            found = "regression"
        else:
            found = None
        return BoosterReading(f"xgboost.Booster (objective {objective})", found, n_classes, booster.feature_names,
                              booster.num_features())

    def booster_to_onnx(self, booster, info) -> bytes:
        """onnxmltools reads the trees' dump, where features must be called f0, f1, ...: it converts a copy whose
        booster has no feature names (the graph takes the features by position anyway)."""
        from onnxmltools.convert import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        booster = copy.deepcopy(booster)
        booster.feature_names = None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = convert_xgboost(booster, initial_types=[
                ("features", FloatTensorType([None, len(info.schema.names)]))])
        return graph.SerializeToString()

    def estimator_to_onnx(self, model, info) -> bytes:
        model = copy.deepcopy(model)  # its booster without feature names, for the reason booster_to_onnx() gives
        final_step(model).get_booster().feature_names = None
        return super().estimator_to_onnx(model, info)

    def register_converters(self) -> None:
        _register_converters()

    def booster_of(self, estimator):
        return estimator.get_booster()

    def booster_bounds(self, booster, n_features: int):
        trees = booster.trees_to_dataframe()
        splits = trees[trees["Feature"] != "Leaf"]
        names = booster.feature_names or [f"f{i}" for i in range(n_features)]
        return split_bounds(splits.groupby("Feature")["Split"], names)


@cache
def _register_converters() -> None:
    """onnxmltools' XGBoost converters, registered with skl2onnx for the scikit-learn API classes."""
    import xgboost
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

    register_with_skl2onnx("XGBoost", xgboost.XGBClassifier, xgboost.XGBRegressor, convert_xgboost)


FRAMEWORK = XGBoostFramework()

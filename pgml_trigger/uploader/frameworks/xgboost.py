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

from . import Framework, final_step, register_with_skl2onnx
from .native import NativeModel, both_classes, resolve, split_bounds

# onnxmltools' tree converters write ai.onnx.ml operators of this version; skl2onnx must not ask for newer.
ML_OPSET = 3


class XGBoostBooster(NativeModel):
    def scores(self, X: np.ndarray) -> np.ndarray:
        import xgboost

        matrix = xgboost.DMatrix(X, feature_names=self.booster.feature_names)
        scores = self.booster.predict(matrix)
        if self.task == "regression":
            return np.asarray(scores, dtype=np.float64).reshape(-1)
        return both_classes(scores) if scores.ndim == 1 else np.asarray(scores, dtype=np.float64)


class XGBoostFramework(Framework):
    name = "xgboost"
    library = "xgboost"

    def prepare(self, model, *, feature_names=None, classes=None, task=None):
        import xgboost

        if not isinstance(model, xgboost.Booster):
            return super().prepare(model, feature_names=feature_names, classes=classes, task=task)
        learner = json.loads(model.save_config())["learner"]
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
        task, classes, names = resolve(f"xgboost.Booster (objective {objective})", task, found, n_classes, classes,
                                       model.feature_names, model.num_features(), feature_names)
        return XGBoostBooster(model, task, classes, names)

    def describe(self, model, feature_names=None, sample=None):
        if isinstance(model, XGBoostBooster):
            return model.info()
        return super().describe(model, feature_names, sample)

    def to_onnx(self, model, info) -> bytes:
        from onnxmltools.convert import convert_xgboost
        from onnxmltools.convert.common.data_types import FloatTensorType

        # onnxmltools reads the trees' dump, where features must be called f0, f1, ...: convert a copy whose
        # booster has no feature names (the graph takes the features by position anyway).
        model = copy.deepcopy(model)
        if isinstance(model, XGBoostBooster):
            model.booster.feature_names = None
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = convert_xgboost(model.booster, initial_types=[
                    ("features", FloatTensorType([None, len(info.schema.names)]))])
            return graph.SerializeToString()
        from skl2onnx import get_latest_tested_opset_version

        from ..compile import convert_sklearn

        final_step(model).get_booster().feature_names = None
        _register_converters()
        opsets = {"": get_latest_tested_opset_version(), "ai.onnx.ml": ML_OPSET}
        return convert_sklearn(model, info, target_opset=opsets, classifier=final_step(model))

    def feature_bounds(self, model, n_features: int):
        if isinstance(model, XGBoostBooster):
            booster = model.booster
        elif final_step(model) is model:
            booster = model.get_booster()
        else:  # in a pipeline the thresholds are in the space of its last transform: a leading scaler's ranges
            return super().feature_bounds(model, n_features)
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

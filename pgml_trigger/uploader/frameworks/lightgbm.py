"""LightGBM: LGBMClassifier/LGBMRegressor (alone or ending a Pipeline) and native ``lightgbm.Booster``s.

Converted to ONNX by onnxmltools: a Booster directly, the scikit-learn API through onnxmltools' converter
registered into skl2onnx, so that pipelines convert whole.
"""

from __future__ import annotations

import re
import warnings
from functools import cache

import numpy as np

from . import Framework, final_step, register_with_skl2onnx
from .native import NativeModel, both_classes, resolve, split_bounds
from .xgboost import ML_OPSET

_CLASSIFYING = ("binary", "multiclass", "multiclassova")
_NOT_REGRESSION = ("lambdarank", "rank_xendcg", "cross_entropy", "cross_entropy_lambda")
_UNNAMED = re.compile(r"^Column_\d+$")  # what LightGBM calls the features of a bare array


class LightGBMBooster(NativeModel):
    def scores(self, X: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.booster.predict(X), dtype=np.float64)
        if self.task == "classification" and scores.ndim == 1:
            return both_classes(scores)
        return scores


class LightGBMFramework(Framework):
    name = "lightgbm"
    library = "lightgbm"

    def prepare(self, model, *, feature_names=None, classes=None, task=None):
        import lightgbm

        if not isinstance(model, lightgbm.Booster):
            return super().prepare(model, feature_names=feature_names, classes=classes, task=task)
        dump = model.dump_model(num_iteration=0)
        objective = str(dump.get("objective", "regression")).split()[0]
        if objective in _CLASSIFYING:
            found, n_classes = "classification", 2 if objective == "binary" else int(dump["num_class"])
        else:
            found, n_classes = (None if objective in _NOT_REGRESSION else "regression"), 0
        names = model.feature_name()
        task, classes, names = resolve(f"lightgbm.Booster (objective {objective})", task, found, n_classes, classes,
                                       None if all(_UNNAMED.match(name) for name in names) else names,
                                       model.num_feature(), feature_names)
        return LightGBMBooster(model, task, classes, names)

    def describe(self, model, feature_names=None, sample=None):
        if isinstance(model, LightGBMBooster):
            return model.info()
        return super().describe(model, feature_names, sample)

    def to_onnx(self, model, info) -> bytes:
        from onnxmltools.convert import convert_lightgbm
        from onnxmltools.convert.common.data_types import FloatTensorType

        if isinstance(model, LightGBMBooster):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = convert_lightgbm(model.booster, initial_types=[
                    ("features", FloatTensorType([None, len(info.schema.names)]))], zipmap=False)
            for output in graph.graph.output:  # the converter declares a Booster's labels [1]; they are [N]
                dims = output.type.tensor_type.shape.dim
                if len(dims) == 1 and dims[0].dim_value == 1:
                    dims[0].dim_param = "N"
            return graph.SerializeToString()
        from skl2onnx import get_latest_tested_opset_version

        from ..compile import convert_sklearn

        _register_converters()
        opsets = {"": get_latest_tested_opset_version(), "ai.onnx.ml": ML_OPSET}
        return convert_sklearn(model, info, target_opset=opsets, classifier=final_step(model))

    def feature_bounds(self, model, n_features: int):
        if isinstance(model, LightGBMBooster):
            booster = model.booster
        elif final_step(model) is model:
            booster = model.booster_
        else:  # in a pipeline the thresholds are in the space of its last transform: a leading scaler's ranges
            return super().feature_bounds(model, n_features)
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

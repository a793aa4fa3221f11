"""CatBoost: CatBoostClassifier/CatBoostRegressor (alone or ending a Pipeline) and native ``catboost.CatBoost``.

Converted to ONNX by CatBoost's own exporter (what ``save_model(format="onnx")`` writes). A model on its own
is that graph; in a pipeline, its tree-ensemble operator goes into skl2onnx's graph of the pipeline through
a converter registered for the two scikit-learn API classes.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from . import final_step, register_with_skl2onnx
from .native import BoosterFramework, BoosterReading, NativeModel

_CLASSIFYING = ("Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll")


class CatBoostModel(NativeModel):
    def scores(self, X: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return np.asarray(self.booster.predict(X, prediction_type="Probability"), dtype=np.float64)
        return np.asarray(self.booster.predict(X), dtype=np.float64).reshape(-1)


class CatBoostFramework(BoosterFramework):
    """A model alone, of the scikit-learn API too, is converted by CatBoost's own exporter; its split borders
    are not read for check rows."""

    name = "catboost"
    library = "catboost"
    wrapper = CatBoostModel

    def is_native(self, model) -> bool:
        import catboost

        # The scikit-learn API classes are CatBoost subclasses.
        return isinstance(model, catboost.CatBoost) and not isinstance(
            model, (catboost.CatBoostClassifier, catboost.CatBoostRegressor))

    def read(self, booster) -> BoosterReading:
        loss = str(booster.get_all_params()["loss_function"]).split(":")[0]
        found = "classification" if loss in _CLASSIFYING else "regression"
        fitted_classes = getattr(booster, "classes_", None)
        own_classes = [] if fitted_classes is None else list(fitted_classes)
        n_classes = len(own_classes) if found == "classification" else 0
        return BoosterReading(f"catboost.CatBoost (loss {loss})", found, n_classes, _named(booster),
                              len(booster.feature_names_), own_classes or None)

    def describe(self, model, feature_names=None, sample=None):
        if feature_names is None and not isinstance(model, NativeModel) and not hasattr(model, "feature_names_in_"):
            # CatBoost keeps a DataFrame's column names in feature_names_, not feature_names_in_: they are the
            # model's where nothing comes before it (a pipeline of it alone).
            feature_names = _named(final_step(model))
        return super().describe(model, feature_names, sample)

    def booster_to_onnx(self, booster, info) -> bytes:
        from catboost.utils import convert_to_onnx_object

        graph = convert_to_onnx_object(booster)
        _bare_outputs(graph, info)
        return graph.SerializeToString()

    def estimator_to_onnx(self, model, info) -> bytes:
        if final_step(model) is model:
            return self.booster_to_onnx(model, info)
        return super().estimator_to_onnx(model, info)

    def register_converters(self) -> None:
        _register_converters()


def _named(model) -> list[str] | None:
    """The feature names CatBoost was fitted with, unless it made them up ("0", "1", ...)."""
    names = [str(name) for name in model.feature_names_]
    return None if names == [str(i) for i in range(len(names))] else names


def _bare_outputs(graph, info) -> None:
    """CatBoost's graph in the shape the server scores: probabilities as a [N, n_classes] tensor where the
    exporter wraps them in a ZipMap, and a regression value declared [N, 1] as onnxruntime computes it."""
    from onnx import TensorProto, helper

    outputs = graph.graph.output
    zipmaps = [node for node in graph.graph.node if node.op_type == "ZipMap"]
    for node in zipmaps:
        graph.graph.node.remove(node)
        position = next(i for i, output in enumerate(outputs) if output.name == node.output[0])
        outputs.remove(outputs[position])
        outputs.insert(position, helper.make_tensor_value_info(node.input[0], TensorProto.FLOAT,
                                                               [None, len(info.classes)]))
    if info.task == "regression":
        dims = outputs[0].type.tensor_type.shape.dim
        if len(dims) == 1:
            dims.add().dim_value = 1


def _convert_in_pipeline(scope, operator, container) -> None:
    """skl2onnx converter: the tree ensemble of CatBoost's own export, wired to the operator's inputs and outputs."""
    from catboost.utils import convert_to_onnx_object
    from onnx.helper import get_attribute_value

    nodes = convert_to_onnx_object(operator.raw_operator).graph.node
    trees = [node for node in nodes if node.op_type in ("TreeEnsembleClassifier", "TreeEnsembleRegressor")]
    others = [node.op_type for node in nodes if node not in trees and node.op_type != "ZipMap"]
    if len(trees) != 1 or others:
        raise NotImplementedError(f"CatBoost's ONNX export is {[node.op_type for node in nodes]}; only one tree "
                                  "ensemble operator (and a ZipMap) is taken into a pipeline")
    tree = trees[0]
    container.add_node(tree.op_type, [operator.inputs[0].full_name], [output.full_name for output in operator.outputs],
                       op_domain=tree.domain, op_version=1, name=scope.get_unique_operator_name("CatBoost"),
                       **{attribute.name: get_attribute_value(attribute) for attribute in tree.attribute})


@cache
def _register_converters() -> None:
    import catboost
    from skl2onnx._supported_operators import sklearn_classifier_list

    # skl2onnx gives a classifier its label and probability outputs when it is a ClassifierMixin, which
    # CatBoostClassifier is not, or in this list.
    sklearn_classifier_list.append(catboost.CatBoostClassifier)
    register_with_skl2onnx("CatBoost", catboost.CatBoostClassifier, catboost.CatBoostRegressor, _convert_in_pipeline)


FRAMEWORK = CatBoostFramework()

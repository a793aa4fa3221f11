"""SimpleImputers as the compiled graph needs them, where skl2onnx's own converter does not serve.

skl2onnx writes a SimpleImputer as the ai.onnx.ml Imputer operator, which onnxruntime runs in float32 only: a
pipeline starting with one could not have a graph in double, and its values came out float32's (a linear model
behind an imputer 1e-7 off instead of 1e-15). Nor does skl2onnx convert a SimpleImputer of text columns looking
for NaN (pandas' missing text) at all, so a mixed pipeline imputing its text columns stayed on scikit-learn.

``ready_for_graph(model)`` gives a copy of the model in which such imputers are of two subclasses converted here:
a numeric one as "where a value is NaN, the statistic" in standard operators, which run in double as in float32
(with the columns it drops and the indicator it adds, as scikit-learn does); a text one as the identity, since no
row with a missing text value ever reaches the graph (compile.py sends them to the model's own library). Only the
copy is converted; the model itself is stored as it is.
"""

from __future__ import annotations

import copy
import math
from functools import cache

import numpy as np
from sklearn.impute import SimpleImputer


class NumericImputer(SimpleImputer):
    """A fitted SimpleImputer of numbers looking for NaN, converted by _convert_numeric."""


class TextImputer(SimpleImputer):
    """A fitted SimpleImputer of text looking for NaN or None, converted as the identity."""


def ready_for_graph(model):
    """A copy of ``model`` whose SimpleImputers that skl2onnx cannot write in double (or at all) are of the
    classes above; ``model`` itself when it has none."""
    if not any(_kind(imputer) for imputer in _imputers(model)):
        return model
    _register()
    ready = copy.deepcopy(model)
    for imputer in _imputers(ready):
        kind = _kind(imputer)
        if kind is not None:
            imputer.__class__ = kind
    return ready


def _imputers(estimator):
    """The fitted SimpleImputers along the data's way: in Pipelines, ColumnTransformer branches, FeatureUnions."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(estimator, Pipeline):
        for _, step in estimator.steps:
            yield from _imputers(step)
    elif isinstance(estimator, ColumnTransformer):
        for _, transformer, _ in estimator.transformers_:
            yield from _imputers(transformer)
    elif isinstance(estimator, FeatureUnion):
        for _, part in estimator.transformer_list:
            yield from _imputers(part)
    elif type(estimator) is SimpleImputer:
        yield estimator


def _kind(imputer: SimpleImputer):
    missing = imputer.missing_values
    if not (missing is None or (isinstance(missing, float) and math.isnan(missing))):
        return None  # it fills a value a row may hold: no identity, and skl2onnx's converter serves
    statistics = np.asarray(imputer.statistics_, dtype=object)
    if all(isinstance(value, str) for value in statistics):
        return TextImputer if not imputer.add_indicator else None
    if all(isinstance(value, (int, float, np.number)) for value in statistics) and missing is not None:
        return NumericImputer
    return None


def _kept(imputer: SimpleImputer) -> np.ndarray:
    """The input columns the imputer keeps: scikit-learn drops those that were empty in training."""
    statistics = np.asarray(imputer.statistics_, dtype=np.float64)
    return np.arange(len(statistics)) if imputer.keep_empty_features else np.flatnonzero(~np.isnan(statistics))


def _indicated(imputer: SimpleImputer) -> np.ndarray:
    return np.asarray(imputer.indicator_.features_, dtype=np.int64) if imputer.add_indicator else np.array([], int)


def _numeric_shape(operator) -> None:
    imputer = operator.raw_operator
    width = len(_kept(imputer)) + len(_indicated(imputer))
    operator.outputs[0].type = operator.inputs[0].type.__class__([operator.inputs[0].get_first_dimension(), width])


def _same_shape(operator) -> None:
    operator.outputs[0].type = operator.inputs[0].type.__class__(operator.inputs[0].type.shape)


def _convert_numeric(scope, operator, container) -> None:
    from skl2onnx.common.data_types import guess_numpy_type, guess_proto_type

    imputer = operator.raw_operator
    source = operator.inputs[0]
    dtype, proto = guess_numpy_type(source.type), guess_proto_type(source.type)
    kept, indicated = _kept(imputer), _indicated(imputer)
    statistics = np.nan_to_num(np.asarray(imputer.statistics_, dtype=np.float64))  # an empty column's is dropped

    def name(what: str) -> str:
        return scope.get_unique_variable_name(what)

    holes, values, filled = name("holes"), name("statistics"), name("filled")
    container.add_node("IsNaN", [source.full_name], [holes], name=scope.get_unique_operator_name("IsNaN"))
    container.add_initializer(values, proto, [len(statistics)], statistics.astype(dtype).tolist())
    container.add_node("Where", [holes, values, source.full_name], [filled],
                       name=scope.get_unique_operator_name("Where"))
    parts = [_columns(scope, container, filled, kept, len(statistics))]
    if len(indicated):
        flags = name("flags")
        container.add_node("Cast", [_columns(scope, container, holes, indicated, len(statistics))], [flags],
                           to=proto, name=scope.get_unique_operator_name("Cast"))
        parts.append(flags)
    output = operator.outputs[0].full_name
    if len(parts) == 1:
        container.add_node("Identity", parts, [output], name=scope.get_unique_operator_name("Identity"))
    else:
        container.add_node("Concat", parts, [output], axis=1, name=scope.get_unique_operator_name("Concat"))


def _columns(scope, container, tensor: str, columns: np.ndarray, width: int) -> str:
    """The tensor's columns ``columns`` (the tensor itself when they are all of them, in order)."""
    from onnx import TensorProto

    if len(columns) == width and np.array_equal(columns, np.arange(width)):
        return tensor
    indexes, taken = scope.get_unique_variable_name("columns"), scope.get_unique_variable_name("taken")
    container.add_initializer(indexes, TensorProto.INT64, [len(columns)], columns.tolist())
    container.add_node("Gather", [tensor, indexes], [taken], axis=1, name=scope.get_unique_operator_name("Gather"))
    return taken


def _convert_identity(scope, operator, container) -> None:
    container.add_node("Identity", [operator.inputs[0].full_name], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Identity"))


@cache
def _register() -> None:
    from skl2onnx import update_registered_converter

    update_registered_converter(NumericImputer, "PgmlTriggerNumericImputer", _numeric_shape, _convert_numeric)
    update_registered_converter(TextImputer, "PgmlTriggerTextImputer", _same_shape, _convert_identity)

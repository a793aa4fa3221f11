"""A model's preprocessing as the program server/explain.py's Columns runs: one input column per transformed feature.

Follows the fitted steps before the model: Pipelines, ColumnTransformers (with passthrough and drop), and, per
column, SimpleImputer (NaN as the missing value), StandardScaler, MinMaxScaler (without clip), MaxAbsScaler,
RobustScaler, OneHotEncoder and OrdinalEncoder (without infrequent categories). Every transformed feature comes
from one input column, which is what lets its contribution go back to that column. Anything else (a
FunctionTransformer with a function, PCA, polynomial features, a custom step) mixes or hides columns, and the
version gets no explainer, with the step named as the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from . import Unexplained

_IDENTITY = (0.0, 1.0, 1.0, 0.0)  # center, scale, multiply, add: ((z - center) / scale) * multiply + add


@dataclass(frozen=True)
class _Output:
    """One transformed feature: its input column, the fill of a missing value, how it is encoded, its scalings."""

    source: int
    fill: object = None
    encoding: tuple | None = None  # ("onehot", category index, encoder spec) or ("ordinal", encoder spec)
    affine: tuple = ()


def program(steps: list, n_features: int) -> tuple[dict, np.ndarray]:
    """(the Columns spec, its affine layers [layers, 4, width]) of the fitted ``steps``."""
    outputs = [_Output(source=j) for j in range(n_features)]
    for step in steps:
        outputs = _apply(step, outputs)
    encoders, positions, fills = [], [], []
    for position, output in enumerate(outputs):
        if output.encoding is None:
            positions.append(position)
            fills.append(_json(output.fill))
        else:
            encoder = output.encoding[-1]
            if not any(e is encoder for e in encoders):
                encoders.append(encoder)
            encoder["outputs"][output.encoding[1] if output.encoding[0] == "onehot" else 0] = position
    layers = max((len(output.affine) for output in outputs), default=0)
    affine = np.array([[output.affine[layer] if layer < len(output.affine) else _IDENTITY for output in outputs]
                       for layer in range(layers)], dtype=np.float64).reshape(layers, len(outputs), 4)
    spec = {"width": len(outputs), "source": [output.source for output in outputs],
            "numbers": {"positions": positions, "fills": fills}, "encoders": encoders}
    return spec, affine.transpose(0, 2, 1).copy()


def _apply(step, outputs: list[_Output]) -> list[_Output]:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import (
        FunctionTransformer,
        MaxAbsScaler,
        MinMaxScaler,
        OneHotEncoder,
        OrdinalEncoder,
        RobustScaler,
        StandardScaler,
    )

    if step is None or (isinstance(step, str) and step == "passthrough"):
        return outputs
    kind = type(step)
    if kind is Pipeline:
        for _, inner in step.steps:
            outputs = _apply(inner, outputs)
        return outputs
    if kind is ColumnTransformer:
        return _column_transformer(step, outputs)
    if kind is FunctionTransformer and step.func is None and step.inverse_func is None:
        return outputs  # the identity: how ColumnTransformer keeps its remainder
    if kind is SimpleImputer:
        return _impute(step, outputs)
    if kind is StandardScaler:
        return _scale(outputs, center=step.mean_ if step.with_mean else None,
                      scale=step.scale_ if step.with_std else None)
    if kind is RobustScaler:
        return _scale(outputs, center=step.center_ if step.with_centering else None,
                      scale=step.scale_ if step.with_scaling else None)
    if kind is MaxAbsScaler:
        return _scale(outputs, scale=step.scale_)
    if kind is MinMaxScaler and not step.clip:
        return _scale(outputs, multiply=step.scale_, add=step.min_)
    if kind is OneHotEncoder:
        return _one_hot(step, outputs)
    if kind is OrdinalEncoder:
        return _ordinal(step, outputs)
    raise Unexplained(f"its {kind.__name__} step does not map each input column to features of its own; "
                      "explain() follows imputers, scalers and one-hot and ordinal encoders")


def _column_transformer(step, outputs: list[_Output]) -> list[_Output]:
    result = []
    for name, transformer, _ in step.transformers_:
        chosen = [outputs[i] for i in step._transformer_to_input_indices[name]]
        if chosen and not (isinstance(transformer, str) and transformer == "drop"):
            result += _apply(transformer, chosen)
    return result


def _impute(step, outputs: list[_Output]) -> list[_Output]:
    if not _is_nan(step.missing_values) or step.add_indicator:
        raise Unexplained("its SimpleImputer takes another missing value than NaN, or adds indicator columns")
    statistics = list(step.statistics_)
    if len(statistics) != len(outputs) or any(_is_nan(value) for value in statistics):
        raise Unexplained("its SimpleImputer drops columns it saw no value of")
    result = []
    for output, fill in zip(outputs, statistics):
        encoder = output.encoding[-1] if output.encoding is not None else None
        may_be_missing = output.fill is None and (encoder is None or (
            encoder["kind"] == "ordinal" and (encoder["missing"] is None or encoder["unknown"] is None)))
        if may_be_missing and (encoder is not None or output.affine):
            raise Unexplained("its SimpleImputer fills values that earlier steps scaled or encoded")
        result.append(replace(output, fill=_scalar(fill)) if may_be_missing else output)
    return result


def _scale(outputs: list[_Output], center=None, scale=None, multiply=None, add=None) -> list[_Output]:
    width = len(outputs)

    def values(array, default):
        return np.full(width, default) if array is None else np.asarray(array, dtype=np.float64)

    layer = zip(values(center, 0.0), values(scale, 1.0), values(multiply, 1.0), values(add, 0.0))
    return [replace(output, affine=(*output.affine, tuple(map(float, op)))) for output, op in zip(outputs, layer)]


def _one_hot(step, outputs: list[_Output]) -> list[_Output]:
    _check_encoder(step, outputs)
    result = []
    for j, (output, categories) in enumerate(zip(outputs, step.categories_)):
        dropped = None if step.drop_idx_ is None or step.drop_idx_[j] is None else int(step.drop_idx_[j])
        encoder = _encoder(output, "onehot", categories, "error" if step.handle_unknown == "error" else "ignore")
        encoder["outputs"] = [None] * len(categories)
        result += [replace(output, encoding=("onehot", index, encoder))
                   for index in range(len(categories)) if index != dropped]
    return result


def _ordinal(step, outputs: list[_Output]) -> list[_Output]:
    _check_encoder(step, outputs)
    result = []
    for output, categories in zip(outputs, step.categories_):
        encoder = _encoder(output, "ordinal", categories,
                           "error" if step.handle_unknown == "error" else "encode")
        encoder.update(outputs=[None], unknown=_json(getattr(step, "unknown_value", None)),
                       missing=_json(step.encoded_missing_value))
        result.append(replace(output, encoding=("ordinal", encoder)))
    return result


def _check_encoder(step, outputs: list[_Output]) -> None:
    if getattr(step, "_infrequent_enabled", False):
        raise Unexplained(f"its {type(step).__name__} groups infrequent categories")
    if any(output.encoding is not None or output.affine for output in outputs):
        raise Unexplained(f"its {type(step).__name__} encodes columns that earlier steps encoded or scaled")


def _encoder(output: _Output, kind: str, categories, on_unknown: str) -> dict:
    return {"source": output.source, "kind": kind, "fill": _json(output.fill), "on_unknown": on_unknown,
            "values": [_json(value) for value in categories]}


def _is_nan(value) -> bool:
    return isinstance(value, (float, np.floating)) and math.isnan(value)


def _scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def _json(value):
    """A category, fill or code as JSON: NaN and None (a missing value) as null."""
    value = _scalar(value)
    return None if value is None or _is_nan(value) else value

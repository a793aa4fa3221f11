"""explain(): what each input column contributed to a prediction, as SHAP values.

An explanation is of one output of the model, in the space the model adds things up in (``output``):

* ``value``: a regressor's prediction;
* ``log_odds``: a binary classifier whose probability is the logistic of a sum (logistic regression, gradient
  boosting with log loss), seen from the predicted class: its log-odds against the other class;
* ``probability``: a forest classifier's probability of the predicted class (its trees' average), as shap
  explains scikit-learn's forests;
* ``margin``: any other sum: a multiclass model's score of the predicted class before the softmax, a linear
  SVM's decision function, a boosted regressor whose prediction is the exponential of its sum.

``base`` is that output's expected value and ``prediction`` its value for the row; the contributions add up to
``prediction - base``, one per input column (the model's features), largest first.

Two exact methods, chosen at upload (pgml_trigger/uploader/explainer/) and stored with the version as arrays
(``models.explainer``, an npz read without pickle, checked against ``explainer_sha256``):

* ``linear``: a linear model's coefficient times the feature's distance from its mean over the background
  the upload saw (the ``sample``, or the mean a leading StandardScaler or mean SimpleImputer learned):
  the SHAP values of a linear model under feature independence, what shap.LinearExplainer computes;
* ``tree_shap``: path-dependent TreeSHAP over the trees (server/treeshap.py), what shap.TreeExplainer
  computes with feature_perturbation="tree_path_dependent" and what XGBoost, LightGBM and CatBoost give as
  their own SHAP values.

Preprocessing before the model (scalers, imputers, one-hot and ordinal encoders, in a Pipeline or a
ColumnTransformer) is stored as a program over the input columns (``Columns``): the row goes through it here,
the model's method explains the transformed features, and each transformed feature's contribution goes to
the input column it came from, so a one-hot encoded text column gets one contribution, the sum over its
categories. A missing value is explained as the model treats it: filled by the imputer, or sent down each
split's default branch.
"""

from __future__ import annotations

import io
import json
import math
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from .. import formats
from ..errors import InvalidArgument, ModelCorrupted, ModelRejectedInput, NoExplainer, NotSupported
from .treeshap import Forest

try:  # writes an explanation several times faster than json.dumps
    from orjson import dumps as _dumps
except ImportError:  # a server environment installed before orjson was a dependency
    def _dumps(value) -> bytes:
        return json.dumps(value).encode()

FORMAT = 1
_FOREST_ARRAYS = ("left", "right", "feature", "threshold", "default_left", "missing", "value", "cover", "offset")


def pack(meta: dict, arrays: dict) -> bytes:
    """The stored form: an npz of numeric arrays, ``meta`` (JSON) among them as bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.frombuffer(json.dumps({"format": FORMAT, **meta}).encode(), dtype=np.uint8), **arrays)
    return buffer.getvalue()


def unpack(payload: bytes) -> tuple[dict, dict]:
    with np.load(io.BytesIO(payload), allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    return json.loads(arrays.pop("meta").tobytes()), arrays


class Columns:
    """The model's preprocessing as a program over its input columns: every transformed feature comes from one
    input column, as the column itself (numbers), or one of its categories (one-hot), or its category's code
    (ordinal), a missing value first replaced by the imputer's fill when there is one; then through layers of
    ``((z - center) / scale) * multiply + add``, computed in that order as scikit-learn's scalers do."""

    def __init__(self, spec: dict, affine: np.ndarray):
        self.width = spec["width"]
        self.source = np.asarray(spec["source"], dtype=np.intp)
        numbers = spec["numbers"]
        self._positions = np.asarray(numbers["positions"], dtype=np.intp)
        self._sources = np.asarray([self.source[p] for p in numbers["positions"]], dtype=np.intp)
        self._fills = np.asarray([math.nan if fill is None else fill for fill in numbers["fills"]], dtype=np.float64)
        self._encoders = [_Encoder(encoder) for encoder in spec["encoders"]]
        self._affine = affine  # [layers, 4, width]

    def transform(self, rows) -> np.ndarray:
        Z = np.zeros((len(rows), self.width))
        if len(self._positions):
            if isinstance(rows, np.ndarray):
                values = rows[:, self._sources].astype(np.float64)
            else:
                values = np.array([[row[s] for s in self._sources] for row in rows], dtype=np.float64)
            Z[:, self._positions] = np.where(np.isnan(values), self._fills, values)
        for encoder in self._encoders:
            encoder.encode(rows, Z)
        for center, scale, multiply, add in self._affine:
            Z = (Z - center) / scale * multiply + add
        return Z


class _Encoder:
    """One input column's one-hot block or ordinal code (Columns)."""

    def __init__(self, spec: dict):
        self.source, self.kind, self.fill = spec["source"], spec["kind"], spec["fill"]
        self.categories = {value: index for index, value in enumerate(spec["values"])}
        self.outputs = spec["outputs"]  # one-hot: the output of each category; ordinal: [its output]
        self.on_unknown = spec["on_unknown"]  # "error", "ignore" (one-hot: zeros) or "encode" (ordinal)
        self.unknown = math.nan if spec.get("unknown") is None else spec["unknown"]
        self.missing = math.nan if spec.get("missing") is None else spec["missing"]

    def encode(self, rows, Z: np.ndarray) -> None:
        for r, row in enumerate(rows):
            value = row[self.source]
            missing = value is None or (isinstance(value, float) and value != value)
            if missing and self.fill is not None:
                value, missing = self.fill, False
            index = self.categories.get(None if missing else value)
            if self.kind == "onehot":
                if index is not None:
                    if self.outputs[index] is not None:  # None: the category the encoder drops
                        Z[r, self.outputs[index]] = 1.0
                elif self.on_unknown == "error":
                    raise ModelRejectedInput(f"found unknown category {value!r} in column {self.source}")
            elif index is not None:
                Z[r, self.outputs[0]] = self.missing if missing else index
            elif self.on_unknown == "error":
                raise ModelRejectedInput(f"found unknown category {value!r} in column {self.source}")
            else:
                Z[r, self.outputs[0]] = self.unknown


class Explainer:
    """A version's stored explainer, ready to explain rows (``explain``) or score them (``raw``, for the upload's
    check against the model)."""

    def __init__(self, meta: dict, arrays: dict, nbytes: int = 0):
        self.method, self.output, self.outputs = meta["method"], meta["output"], meta["outputs"]
        self.n_features = meta["n_features"]
        self.nbytes = nbytes
        self.columns = Columns(meta["columns"], arrays["affine"]) if meta.get("columns") else None
        source = self.columns.source if self.columns is not None else np.arange(self.n_features)
        self._by_column = np.zeros((len(source), self.n_features))  # a transformed feature -> its input column
        self._by_column[np.arange(len(source)), source] = 1.0
        if self.method == "tree_shap":
            self.forest = Forest(**{name: arrays[name] for name in _FOREST_ARRAYS}, strict=meta["strict"],
                                 float32=meta["float32"])
        else:
            self.coef, self.intercept, self.mean = arrays["coef"], arrays["intercept"], arrays["mean"]

    def transformed(self, rows) -> np.ndarray:
        if self.columns is not None:
            return self.columns.transform(rows)
        return np.asarray(rows, dtype=np.float64).reshape(-1, self.n_features)

    def raw(self, rows) -> np.ndarray:
        """[rows, outputs]: the sums the model outputs, which the upload checks against the model's own."""
        Z = self.transformed(rows)
        if self.method == "tree_shap":
            return self.forest.predict(Z)
        return Z @ self.coef.T + self.intercept

    def explain(self, rows, classes: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(base [rows], prediction [rows], contributions [rows, input columns]) of the output explained for each
        row: ``classes[r]``'s (the index of its predicted class; None for a regressor)."""
        outputs, signs = self._outputs(classes)
        Z = self.transformed(rows)
        if self.method == "tree_shap":
            phi, prediction = self.forest.shap_values(Z, outputs, signs)
            base = self.forest.expected[outputs] * signs
        else:
            coef = self.coef[outputs] * signs[:, None]
            intercept = self.intercept[outputs] * signs
            phi = coef * (Z - self.mean)
            base = coef @ self.mean + intercept
            prediction = (coef * Z).sum(axis=1) + intercept
        return base, prediction, phi @ self._by_column

    def _outputs(self, classes: list) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the output that holds its class's score and its sign."""
        n = len(classes)
        if self.outputs == "per_class":
            return np.array(classes, dtype=np.intp), np.ones(n)
        if self.outputs == "binary":  # one output, the second class's; the first's is its negative
            return np.zeros(n, dtype=np.intp), np.array([1.0 if c == 1 else -1.0 for c in classes])
        return np.zeros(n, dtype=np.intp), np.ones(n)


def load(label: str, payload: bytes | None, sha256: str | None, info: dict | None) -> Explainer:
    """The explainer of a version, after checking its bytes against their sha256; or, for a version stored without
    one, the error saying why (the reason recorded at upload)."""
    if payload is None:
        if info is not None and info.get("sqlstate") == NotSupported.sqlstate:
            raise NotSupported(f"model {label} cannot be explained: {info['reason']}")
        reason = info["reason"] if info is not None else "it was uploaded without an explainer"
        raise NoExplainer(f"model {label} cannot be explained: {reason}",
                          hint="upload the model again (with sample=, rows like its training data)")
    if formats.sha256(payload) != sha256:
        raise ModelCorrupted(f"model {label}: the stored explainer does not match its sha256 {sha256}; "
                             "refusing to load it", hint="upload the model again")
    meta, arrays = unpack(payload)
    return Explainer(meta, arrays, nbytes=len(payload))


class Explainers:
    """Explainers loaded in this backend, least recently used first out within ``max_bytes`` of stored bytes (the
    tables TreeSHAP builds at first use come on top: a few MB for a 100-tree forest)."""

    def __init__(self, fetch, max_bytes):
        self._fetch = fetch  # (name, version) -> (payload, sha256, info), as Catalog.explainer
        # () -> bytes: asked at a load, not at import, which a parallel query's processes do without the catalog
        self._max_bytes = max_bytes
        self._loaded: OrderedDict[tuple, Explainer] = OrderedDict()

    def get(self, model) -> Explainer:
        explainer = self._loaded.get(model.key)
        if explainer is None:
            explainer = load(model.label, *self._fetch(model.name, model.version))
            self._loaded[model.key] = explainer
            while sum(e.nbytes for e in self._loaded.values()) > self._max_bytes() and len(self._loaded) > 1:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(model.key)
        return explainer


def explain(model, explainer: Callable[[], Explainer], rows, top_k: int | None) -> list[str]:
    """The explanation of each row's prediction (JSON text): the predicted class's output for a classifier. The
    model itself scores the rows first, so that a row it refuses is refused as predict() refuses it, and the
    class explained is the one predict_label() gives. ``explainer()``: the model's (loaded when needed)."""
    if top_k is not None and top_k < 1:
        raise InvalidArgument(f"top_k must be at least 1, not {top_k}", hint="leave it NULL for every contribution")
    if len(rows) == 0:
        return []
    explainer = explainer()
    one = len(rows) == 1  # the engine's one-row path, as predict() and a row trigger take it
    if model.task == "classification":
        index = {str(label): position for position, label in enumerate(model.classes)}
        classes = [index[label] for label in ([model.predict_label(rows[0])] if one else
                                               model.predict_label_many(rows))]
    else:
        if one:  # scored all the same: a row predict() refuses is refused
            model.predict(rows[0])
        else:
            model.predict_many(rows)
        classes = [None] * len(rows)
    base, prediction, phi = explainer.explain(rows, classes)
    names = model.schema.names
    order = np.argsort(-np.abs(phi), axis=1, kind="stable")
    if top_k is not None:
        order = order[:, :top_k]
    explanations = []
    for r, row in enumerate(rows):
        explanations.append(_dumps({
            "model": model.label, "class": None if classes[r] is None else model.classes[classes[r]],
            "output": explainer.output, "base": float(base[r]), "prediction": float(prediction[r]),
            "method": explainer.method,
            "contributions": [{"feature": names[j], "value": _json_value(row[j]), "contribution": float(phi[r, j])}
                              for j in order[r].tolist()]}).decode())
    return explanations


def _json_value(value):
    """A feature's value as given: a missing one as null, a whole number without its .0."""
    if isinstance(value, (float, np.floating)):
        if value != value:
            return None
        return int(value) if float(value).is_integer() and abs(value) < 2**53 else float(value)
    return value

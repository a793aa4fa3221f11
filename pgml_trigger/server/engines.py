"""The two ways a model scores rows: its ONNX graph in onnxruntime, or the scikit-learn object itself.

Both take validated feature values (see features.py) in model order, one
row (``predict_row``, ``predict_proba_row``) or many (``predict_rows``,
``predict_proba_rows``), and answer class labels or regression values, and
class probabilities. The per-row methods are
the hot path of SQL predict() and the scoring triggers, so they avoid
anything that costs more than the model itself: the ONNX engine copies the
row into a float32 buffer allocated once, the scikit-learn engine skips
pandas and scikit-learn's input validation where that is safe.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..schema import NUMBER, FeatureSchema

# Class probabilities closer than this are a tie for the compiled path: float32 sums cannot order them
# (a 20-tree forest's 10/20 comes out as 0.49999994 against 0.50000006), and scikit-learn, computing
# them exactly, sees an exact tie and takes the first class.
TIE = 1e-6

# What an estimator or onnxruntime raises when it refuses input (onnxruntime's errors are RuntimeErrors).
REJECTED_INPUT = (ValueError, TypeError, KeyError, IndexError, RuntimeError)

_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
# Of a graph's inputs when it takes one per feature (compiled models with text features, uploaded graphs).
_COLUMN_DTYPES = {**_ONNX_DTYPES, "tensor(int64)": np.int64, "tensor(string)": object}


def onnx_session(payload: bytes):
    """An onnxruntime session that scores on the calling thread only (a backend must not start thread pools)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # The default level (all) adds rewrites for neural networks' layouts, which tree ensembles and the graphs
    # skl2onnx writes for pipelines do not use, and they cost session creation time without scoring rows any
    # faster (README, Big models). Basic keeps the rewrites any graph can use (constant folding, redundant nodes).
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    session = onnxruntime.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    # onnxruntime's Python session keeps the bytes it was made from, only to make itself again when its
    # providers change, which never happens here: a big graph's bytes would stay in memory for as long as the
    # model stays cached in the backend.
    session._model_bytes = None
    return session


def most_probable(proba: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Per row, the first class whose probability is within TIE of the largest."""
    top = proba.max(axis=1, keepdims=True)
    return classes[np.argmax(proba >= top - TIE, axis=1)]


def model_frame(names, types, rows):
    """The DataFrame a model fitted on one is given: numbers as float64 columns, text as object columns that keep
    a missing value as what features.py made it (None or NaN; pandas' own string columns would make every None a
    NaN), as the training frame held it."""
    import pandas as pd

    if isinstance(rows, np.ndarray):  # a batch of numbers, already a matrix
        columns = rows.reshape(-1, len(names)).T
    else:
        columns = zip(*rows) if len(rows) else ([] for _ in names)
    return pd.DataFrame({name: np.array(values, dtype=np.float64) if kind == NUMBER else pd.Series(values, dtype=object)
                         for name, kind, values in zip(names, types, columns)}, copy=False)


def normalized_proba(scores: np.ndarray) -> np.ndarray:
    """Probabilities within [0, 1] and summing to 1 per row, in double: a float32 graph's stray a little outside
    (a forest's -3.6e-7 and 1.0000004) and sum to 1 within float32's precision only."""
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    totals = scores.sum(axis=1, keepdims=True)
    return np.divide(scores, totals, out=scores, where=totals > 0)


def onnx_inputs(schema: FeatureSchema, rows, name: str = "features", dtype=np.float32,
                column_dtypes: dict | None = None) -> dict:
    """onnxruntime feeds for a sequence of rows, as the uploader's conversion declared them (compile.py).

    ``name`` and ``dtype``: of the one input of an all-numeric graph (an uploaded ONNX model names its own).
    ``column_dtypes``: of each input of a graph taking one input per feature, named like it (by default
    float32 for numbers, as compile.py declares them, and str objects for text).
    """
    if not schema.string_features and column_dtypes is None:
        return {name: np.asarray(rows, dtype=dtype).reshape(-1, len(schema.names))}
    table = np.asarray(rows, dtype=object).reshape(-1, len(schema.names))
    feeds = {}
    for position, (feature, column_dtype) in enumerate(feed_dtypes(schema, column_dtypes)):
        column = table[:, [position]]
        feeds[feature] = _whole_numbers(feature, column) if column_dtype is np.int64 else column.astype(column_dtype)
    return feeds


def feed_dtypes(schema: FeatureSchema, column_dtypes: dict | None) -> list[tuple[str, type]]:
    """Each feature's input of a graph taking one input per feature, and its dtype (see onnx_inputs)."""
    dtypes = column_dtypes or {}
    return [(feature, dtypes.get(feature, np.float32 if kind == NUMBER else object))
            for feature, kind in zip(schema.names, schema.types)]


def _row_feeds(row_inputs: list, values) -> dict:
    """onnx_inputs for one row of a graph taking one input per feature: a [1, 1] array each, made directly (taking
    each column out of a one-row table costs a row of 32 features about 70 µs, several times the model)."""
    return {feature: _whole_numbers(feature, np.array([[value]], dtype=np.float64)) if dtype is np.int64
            else np.array([[value]], dtype=dtype) for (feature, dtype), value in zip(row_inputs, values)}


def _whole_numbers(feature: str, column: np.ndarray) -> np.ndarray:
    values = column.astype(np.float64)
    if not np.array_equal(values, np.trunc(values)):
        raise ValueError(f"feature {feature!r} takes whole numbers (the graph's input is int64)")
    return values.astype(np.int64)


class OnnxEngine:
    scoring_path = "onnx"
    has_proba = True  # only models with predict_proba are compiled

    def __init__(self, payload: bytes, schema: FeatureSchema, classes: list | None, output: str | None = None):
        """``output``: the graph's output to read (an uploaded graph's, see onnx_graph.scoring_graph); by
        default a compiled graph's, the probabilities (its second) or the values (its first)."""
        import onnxruntime

        self.schema = schema
        self.session = onnx_session(payload)
        outputs = self.session.get_outputs()
        # A classifier's label is its most probable class, first on a tie like scikit-learn (the graph's
        # own label output breaks ties otherwise); compile.py checked that this is the model's predict().
        self._classes = classes
        self._class_array = np.asarray(classes, dtype=object) if classes is not None else None
        if output is not None:
            scored = next(item for item in outputs if item.name == output)
        else:
            scored = outputs[1] if classes is not None else outputs[0]  # probabilities, or the values
        self._output = [scored.name]
        self._binding = None
        graph_inputs = self.session.get_inputs()
        self._column_dtypes = None
        if len(graph_inputs) > 1 or schema.string_features or graph_inputs[0].type not in _ONNX_DTYPES:
            self._column_dtypes = {item.name: _COLUMN_DTYPES.get(item.type, object) for item in graph_inputs}
            self._row_inputs = feed_dtypes(schema, self._column_dtypes)  # for one row's feeds (_row_feeds)
        else:
            # Compiled graphs take "features" as float32; an uploaded graph names its input and may take doubles.
            graph_input = graph_inputs[0]
            self._input, self._dtype = graph_input.name, _ONNX_DTYPES.get(graph_input.type, np.float32)
            # One row at a time: the row goes into a buffer that onnxruntime reads in place, and the scores
            # come back in another, both allocated once (measured: about half of run()'s time). A regressor's
            # output may be [N] or [N, 1]: the buffer has the graph's rank and is read through a 2-D view.
            self._row = np.empty((1, len(schema.names)), dtype=self._dtype)
            width = len(classes) if classes is not None else 1
            shape = [1] if len(scored.shape) == 1 else [1, width]
            # onnxruntime holds a bound buffer to the output's declared shape, which a converter may get wrong
            # (skl2onnx declares PLSRegression's [N, 1] values [N, n_features]): such a graph runs unbound.
            if len(scored.shape) == 1 or not isinstance(scored.shape[1], int) or scored.shape[1] == width:
                buffer = np.empty(shape, dtype=_ONNX_DTYPES.get(scored.type, np.float32))
                self._scores = buffer.reshape(1, width)
                self._binding = self.session.io_binding()
                self._binding.bind_ortvalue_input(self._input, onnxruntime.OrtValue.ortvalue_from_numpy(self._row))
                self._binding.bind_output(scored.name, "cpu", 0, buffer.dtype, shape, buffer.ctypes.data)

    def predict_row(self, values):
        scores = self._row_scores(values)
        if self._classes is None:
            return scores[0]
        threshold = max(scores) - TIE
        for label, score in zip(self._classes, scores):  # a loop: a third of what next(generator) costs
            if score >= threshold:
                return label

    def predict_proba_row(self, values) -> list[float]:
        scores = self._row_scores(values)
        if self._classes is not None and (sum(scores) != 1.0 or min(scores) < 0.0 or max(scores) > 1.0):
            return normalized_proba([scores])[0].tolist()
        return scores

    def predict_rows(self, rows) -> np.ndarray:
        scores = self._run(rows)
        return scores.ravel() if self._classes is None else most_probable(scores, self._class_array)

    def predict_proba_rows(self, rows) -> np.ndarray:
        scores = self._run(rows)
        return scores if self._classes is None else normalized_proba(scores)

    def _run(self, rows) -> np.ndarray:
        if self._column_dtypes is not None:
            return self.session.run(self._output, onnx_inputs(self.schema, rows, column_dtypes=self._column_dtypes))[0]
        return self.session.run(self._output, onnx_inputs(self.schema, rows, self._input, self._dtype))[0]

    def _row_scores(self, values) -> list[float]:
        if self._binding is not None:
            self._row[0] = values
            self.session.run_with_iobinding(self._binding)
            return self._scores[0].tolist()
        if self._column_dtypes is not None:
            feeds = _row_feeds(self._row_inputs, values)
        else:
            feeds = {self._input: np.array([values], dtype=self._dtype)}
        return np.asarray(self.session.run(self._output, feeds)[0]).reshape(1, -1)[0].tolist()


class SklearnEngine:
    scoring_path = "sklearn"

    def __init__(self, estimator, schema: FeatureSchema):
        self.estimator = estimator
        self.schema = schema
        self.has_proba = hasattr(estimator, "predict_proba")
        self._names = list(schema.names)
        # A model fitted on an all-numeric DataFrame scores the same from an array in the same column
        # order, and building a one-row DataFrame costs several times the prediction (measured: 1.8 ms
        # vs 0.3 ms per row for StandardScaler+LogisticRegression). Only when nothing in the model can
        # look at column names: no ColumnTransformer, no user code.
        self._frame = schema.input_kind == "frame" and (bool(schema.string_features) or not _array_safe(estimator))
        self._quiet = schema.input_kind == "frame" and not self._frame

    def predict_row(self, values):
        return np.ravel(self._call("predict", self._matrix([values])))[0]  # CatBoost's classifiers give [1, 1]

    def predict_proba_row(self, values) -> list[float]:
        return self._call("predict_proba", self._matrix([values]))[0].tolist()

    def predict_rows(self, rows) -> np.ndarray:
        return np.ravel(self._call("predict", self._matrix(rows)))

    def predict_proba_rows(self, rows) -> np.ndarray:
        return self._call("predict_proba", self._matrix(rows))

    def _matrix(self, rows):
        if self._frame:
            return model_frame(self._names, self.schema.types, rows)
        return np.asarray(rows, dtype=np.float64).reshape(-1, len(self._names))

    def _call(self, method: str, X):
        import sklearn

        # features.py already rejected what the model cannot take (NaN where not accepted, infinity),
        # so scikit-learn's own checks only cost time.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            if not self._quiet:
                return getattr(self.estimator, method)(X)
            with warnings.catch_warnings():
                # Deliberate: the array holds the fitted columns in the fitted order (see __init__).
                warnings.filterwarnings("ignore", message="X does not have valid feature names")
                return getattr(self.estimator, method)(X)


def _array_safe(estimator) -> bool:
    """True when no part of the model selects columns by name or runs code outside scikit-learn."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline
    from sklearn.preprocessing import FunctionTransformer

    if isinstance(estimator, Pipeline):
        return all(_array_safe(step) for _, step in estimator.steps if step not in (None, "passthrough"))
    if isinstance(estimator, FeatureUnion):
        return all(_array_safe(part) for _, part in estimator.transformer_list if part != "drop")
    if isinstance(estimator, (ColumnTransformer, FunctionTransformer)):
        return False
    return type(estimator).__module__.startswith("sklearn.")

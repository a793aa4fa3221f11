"""Upload a fitted model into pgml_trigger.models (runs in the data scientist's process)."""

from __future__ import annotations

import os
import platform
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from .. import formats
from ..errors import InvalidModel, ModelTooLarge, UploadRefused
from ..libraries import installed_version
from ..profile import training_profile
from ..schema import NUMBER
from ..sqlfiles import query
from . import frameworks, mlflow_source
from .compile import Compiled, NotCompiled, check_rows
from .describe import ModelInfo, describe_onnx
from .explainer import explainer_columns
from .linear import linear_form

_REQUIRED = {"name", "version", "format", "payload", "sha256", "task", "classes", "feature_names", "feature_types",
             "feature_inputs", "input_kind", "python_version", "sklearn_version", "numpy_version", "joblib_version"}
# An older schema without these scores the joblib payload (or records less); anything else it lacks is refused.
_COMPILED = {"compiled_format", "compiled_payload", "compiled_sha256", "compiled_handles_nan", "agreement",
             "skops_version", "onnxruntime_version", "linear_form", "library_versions"}
# Rows the server scores before an upload commits (upload_check.sql): enough to run every code path once.
PROBE_ROWS = 5
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")


def upload(conn, name: str, model, *, feature_names=None, alias: str | None = None,
           description: str | None = None, sample=None, metrics: dict | None = None,
           compile: bool = True, format: str | None = None, classes=None, task: str | None = None,
           hmac_key: bytes | None = None, progress=None) -> int:
    """Store ``model`` as the next version of ``name`` and return that version.

    ``conn`` is a psycopg connection or a conninfo string. ``model`` is a
    fitted scikit-learn estimator or pipeline, or a model of another library
    pgml_trigger/uploader/frameworks/ knows (XGBoost, LightGBM, CatBoost, their native
    boosters too), saved as joblib unless ``format="skops"``; or an ONNX model
    (its bytes, an ``onnx.ModelProto``, or the path of a .onnx file), stored
    as it is and scored by onnxruntime; or an MLflow model, given as a
    ``models:/`` or ``runs:/`` URI or a model directory, read through its
    flavor (see mlflow_source.py: its signature names the features and gives
    their types, its run's metrics are kept under ``metrics``' own, and the
    URI and MLflow version are recorded). ``classes`` and ``task`` override
    what an ONNX graph says (describe.describe_onnx), and name the classes of
    a native booster trained on class indexes. ``feature_names`` names the features of a model
    fitted on a bare array (a model fitted on a DataFrame brings its own).
    ``alias`` points that alias at the new version in the same transaction.
    ``sample``, training rows (a DataFrame with the feature columns, or an
    array in feature order), fixes the feature dtypes when the fitted model
    does not reveal them, is profiled for drift(), and is what the compiled
    (ONNX) payload is checked against: see pgml_trigger/uploader/compile.py for what
    happens without it. A linear model is also kept as SQL arithmetic for row
    triggers (pgml_trigger/uploader/linear.py). ``compile=False`` keeps the model on
    the scikit-learn path. ``metrics`` is a JSON-able dict of evaluation figures kept with the
    version. ``hmac_key`` (default: the contents of the file
    ``$PGML_TRIGGER_HMAC_KEY_FILE`` names, if set) signs the upload, as
    databases with ``pgml_trigger.hmac_key_file`` require.

    Before the transaction commits, the server loads the new version the way
    predict() will and scores a few of the sample (or check) rows with it; if
    it cannot, UploadRefused says why and nothing is stored.

    Each stage, as it ends, is logged (logger ``pgml_trigger.upload``, INFO)
    and handed to ``progress(stage, seconds, nbytes)`` when given: read (an
    MLflow model), describe, serialize, compile, linear form, explainer, send,
    server check, commit; ``nbytes`` is the payload's size where the stage made
    or moved it (the explainer's for explainer), else None. A big forest spends
    its time in compile and send.
    """
    _check_name(name)
    stages = _Stages(name, progress)
    source = _read(model, format, feature_names, metrics, stages)
    if source.format == "onnx":
        built = _graph_payloads(source, classes, task, sample, stages)
    else:
        built = _model_payloads(source, classes, task, sample, compile, stages)
    _check_size(name, source.format, built)
    row = _row(name, source, built, description, hmac_key)
    with _connected(conn) as connection:
        return _store(connection, row, alias, built.probe, stages)


@dataclass(frozen=True)
class _Source:
    """The model as upload() reads it, and how it is to be stored."""

    model: object  # the fitted object, or an ONNX graph's bytes
    format: str
    feature_names: list | None
    metrics: dict | None
    mlflow: mlflow_source.MlflowModel | None  # a model read from MLflow: its signature types, URI, version


@dataclass(frozen=True)
class _Payloads:
    """What the upload made of the model: what the new version stores besides upload()'s arguments, and the
    rows the server checks it with."""

    info: ModelInfo
    payload: bytes
    compiled: Compiled
    linear_form: dict | None
    library_versions: dict[str, str]
    probe: list[dict] | None  # rows the server scores before the upload commits
    training_profile: dict | None
    explainer: dict  # the explainer columns: what explain() reads, or why the version has none (explainer/)


def _check_name(name) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidModel(f"invalid model name {name!r}: start with a letter or _, then letters, digits, _ . -; "
                           "at most 63 characters")


def _read(model, format: str | None, feature_names, metrics: dict | None, stages: _Stages) -> _Source:
    """The model behind what upload() was given: an MLflow model's flavor (its signature naming the features,
    its run's metrics under the caller's own), an ONNX graph's bytes (from a file, bytes or a ModelProto), or
    the fitted object itself."""
    mlflow = None
    if mlflow_source.is_mlflow_source(model):
        with stages("read"):
            mlflow = mlflow_source.resolve(model)
        model = mlflow.model
        feature_names = feature_names if feature_names is not None else mlflow.feature_names
        metrics = {**(mlflow.metrics or {}), **(metrics or {})} or None
    fmt = format or ("onnx" if _is_onnx(model) else "joblib")
    if fmt not in formats.FORMATS:
        raise InvalidModel(f"unknown format {fmt!r}; known: {', '.join(formats.FORMATS)}")
    if fmt == "onnx":
        model = _onnx_payload(model)
    return _Source(model, fmt, feature_names, metrics, mlflow)


def _graph_payloads(source: _Source, classes, task: str | None, sample, stages: _Stages) -> _Payloads:
    """An ONNX graph is stored as it is and scored by itself: described, and run here once."""
    with stages("describe"):
        info = describe_onnx(source.model, feature_names=source.feature_names, classes=classes, task=task)
        _check_onnx_runs(source.model, info)
    compiled = Compiled(None, None, None, {"compiled": False, "reason": "an onnx model is scored by its own graph"})
    return _Payloads(info, source.model, compiled, linear_form=None, library_versions={}, probe=None,
                     training_profile=_profile(sample, info), explainer=_explainer(None, source.model, info, sample,
                                                                                   stages))


def _model_payloads(source: _Source, classes, task: str | None, sample, compile: bool,
                    stages: _Stages) -> _Payloads:
    """A fitted model, through its library's framework: described, serialized, and unless compile=False
    converted to ONNX (kept where it agrees with the model) and, if linear, to SQL arithmetic."""
    framework = frameworks.for_model(source.model)
    with stages("describe"):
        model = framework.prepare(source.model, feature_names=source.feature_names, classes=classes, task=task)
        info = framework.describe(model, feature_names=source.feature_names, sample=sample)
        if source.mlflow is not None:
            info = _signature_types(info, source.mlflow)
    with stages("serialize") as stage:
        payload = stage.nbytes(framework.serialize(model, source.format))
    if compile:
        with stages("compile") as stage:
            compiled = framework.compile(model, info, sample)
            stage.nbytes(compiled.payload)
        with stages("linear form"):
            form = linear_form(model, info, sample)
    else:
        compiled, form = Compiled(None, None, None, {"compiled": False, "reason": "upload(compile=False)"}), None
    # The framework found for the model as given: prepare() wraps a native booster in an adapter that would
    # look like a plain scikit-learn model.
    explainer = _explainer(framework, model, info, sample, stages)
    return _Payloads(info, payload, compiled, form, framework.library_versions(),
                     probe=_probe_rows(framework, model, info, sample), training_profile=_profile(sample, info),
                     explainer=explainer)


def _explainer(framework, model, info: ModelInfo, sample, stages: _Stages) -> dict:
    with stages("explainer") as stage:
        columns = explainer_columns(framework, model, info, sample)
        stage.nbytes(columns.get("explainer"))
    return columns


def _check_size(name: str, fmt: str, built: _Payloads) -> None:
    """Refuse, before sending anything, a version larger than the server stores."""
    payload, compiled = built.payload, built.compiled.payload
    stored = len(payload) + len(compiled or b"")
    if stored > formats.MAX_STORED_BYTES:
        compressed = " compressed" if formats.compression(payload, fmt) else ""
        compiled_size = f" and {len(compiled):,} of compiled ONNX" if compiled is not None else ""
        raise ModelTooLarge(f"model {name!r} is {stored:,} bytes ({len(payload):,} of{compressed} {fmt} payload"
                            f"{compiled_size}); pgml_trigger stores at most {formats.MAX_STORED_BYTES:,} bytes "
                            "(500 MiB) per version",
                            hint=f"joblib and skops payloads over {formats.COMPRESS_ABOVE // 2**20} MiB are already "
                                 "stored compressed. Upload with compile=False to store only the model's own "
                                 "payload (scored by its library, not onnxruntime), or make the model smaller: "
                                 "fewer trees, shallower ones (max_depth, min_samples_leaf)")


def _row(name: str, source: _Source, built: _Payloads, description: str | None, hmac_key: bytes | None) -> dict:
    """The new version's models row, by column (the server numbers the version)."""
    import joblib
    import numpy
    import sklearn
    from psycopg.types.json import Jsonb

    fmt, info, compiled, mlflow = source.format, built.info, built.compiled, source.mlflow
    sha256 = formats.sha256(built.payload)
    compiled_sha256 = formats.sha256(compiled.payload) if compiled.payload is not None else None
    key = hmac_key if hmac_key is not None else _key_from_environment()
    return {
        "name": name, "version": 0, "format": fmt, "payload": built.payload, "sha256": sha256,
        "task": info.task, "classes": Jsonb(info.classes) if info.classes is not None else None,
        "feature_names": list(info.schema.names), "feature_types": list(info.schema.types),
        "feature_inputs": Jsonb([feature.to_json() for feature in compiled.schema(info.schema).inputs]),
        "input_kind": info.schema.input_kind,
        "python_version": platform.python_version(), "sklearn_version": sklearn.__version__,
        "numpy_version": numpy.__version__, "joblib_version": joblib.__version__, "description": description,
        "metrics": Jsonb(source.metrics) if source.metrics is not None else None,
        "training_profile": Jsonb(built.training_profile) if built.training_profile is not None else None,
        "compiled_format": compiled.format, "compiled_payload": compiled.payload,
        "compiled_sha256": compiled_sha256,
        "compiled_handles_nan": compiled.handles_nan, "agreement": Jsonb(compiled.agreement),
        "linear_form": Jsonb(built.linear_form) if built.linear_form is not None else None,
        "library_versions": Jsonb(built.library_versions) if built.library_versions else None,
        "skops_version": installed_version("skops") if fmt == "skops" else None,
        "onnxruntime_version": installed_version("onnxruntime") if "onnx" in (fmt, compiled.format) else None,
        "payload_hmac": formats.signature(key, fmt, sha256, compiled_sha256) if key is not None else None,
        "source_uri": mlflow.source_uri if mlflow is not None else None,
        "mlflow_version": mlflow.mlflow_version if mlflow is not None else None,
        **built.explainer,
    }


def _signature_types(info, source):
    """The MLflow signature's column types where they name the model's features: they are the training data's."""
    from dataclasses import replace

    types = source.feature_types or {}
    if not set(info.schema.names) <= set(types):
        return info
    return replace(info, schema=replace(info.schema, types=tuple(types[name] for name in info.schema.names)))


def _is_onnx(model) -> bool:
    if isinstance(model, (bytes, bytearray, memoryview)):
        return True
    if isinstance(model, (str, PathLike)):
        return str(model).lower().endswith(".onnx")
    return type(model).__name__ == "ModelProto" and type(model).__module__.startswith("onnx")


def _onnx_payload(model) -> bytes:
    if isinstance(model, (str, PathLike)):
        return Path(model).read_bytes()
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model)
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString()
    raise InvalidModel(f"a {type(model).__name__} is not an ONNX model; pass its bytes, an onnx.ModelProto "
                       "or the path of a .onnx file")


def _check_onnx_runs(payload: bytes, info) -> None:
    """onnxruntime here must run the graph on rows of zeros (and empty text), giving what describe_onnx() promised."""
    from ..server import onnx_graph
    from ..server.engines import OnnxEngine

    try:
        graph, output = onnx_graph.scoring_graph(payload, info.task)  # as the server will load it
        engine = OnnxEngine(graph, info.schema, info.classes, output)
        row = [0.0 if kind == NUMBER else "" for kind in info.schema.types]
        scores = engine.predict_proba_rows([row, row])
    except Exception as exc:  # onnxruntime's errors have no common base
        raise InvalidModel(f"onnxruntime cannot score the ONNX graph: {type(exc).__name__}: {exc}") from exc
    width = len(info.classes) if info.classes is not None else 1
    if scores.size != 2 * width:
        raise InvalidModel(f"the ONNX graph gives {scores.size // 2} values per row; expected {width}")


def _key_from_environment() -> bytes | None:
    path = os.environ.get("PGML_TRIGGER_HMAC_KEY_FILE")
    return Path(path).read_bytes().rstrip(b"\r\n") if path else None


def _profile(sample, info) -> dict | None:
    if sample is None:
        return None
    try:
        return training_profile(sample, info.schema.names, info.schema.types)
    except ValueError as exc:
        raise InvalidModel(f"cannot profile the sample: {exc}") from exc


def _probe_rows(framework, model, info, sample) -> list[dict] | None:
    """A few rows the server scores the new version with: the sample's first, or the check rows compile.py
    draws; None when there are neither (the server then only loads the version)."""
    try:
        rows, _ = check_rows(model, info, sample, framework.feature_bounds)
    except NotCompiled:
        return None
    return [{name: _json_value(value) for name, value in row.items()}
            for row in rows.head(PROBE_ROWS).to_dict("records")]


def _json_value(value):
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value  # NaN: a missing value, JSON null


class _Stages:
    """Times the stages of one upload; each, as it ends, is logged and handed to the caller's progress()."""

    def __init__(self, name: str, progress):
        import logging

        self._name, self._progress, self._log = name, progress, logging.getLogger("pgml_trigger.upload")

    def start(self, stage: str) -> _Stage:
        return _Stage(self, stage)

    @contextmanager
    def __call__(self, stage: str):
        timing = self.start(stage)
        yield timing
        timing.done()

    def report(self, stage: str, seconds: float, nbytes: int | None) -> None:
        size = "" if nbytes is None else f", {nbytes:,} bytes"
        self._log.info("upload of %s: %s took %.2f s%s", self._name, stage, seconds, size)
        if self._progress is not None:
            self._progress(stage, seconds, nbytes)


class _Stage:
    def __init__(self, stages: _Stages, name: str):
        self._stages, self._name, self._started, self.bytes = stages, name, time.perf_counter(), None

    def nbytes(self, *payloads):
        """Record the size of what this stage made or moved (None when nothing); returns the first payload."""
        sizes = [len(payload) for payload in payloads if payload is not None]
        self.bytes = sum(sizes) if sizes else None
        return payloads[0]

    def done(self) -> None:
        self._stages.report(self._name, time.perf_counter() - self._started, self.bytes)


@contextmanager
def _connected(conn):
    """``conn`` itself, or a connection of its own to the conninfo string ``conn``, closed at the end."""
    if not isinstance(conn, str):
        yield conn
        return
    import psycopg

    with psycopg.connect(conn) as own:
        yield own


def _store(conn, row: dict, alias: str | None, probe: list[dict] | None, stages: _Stages) -> int:
    """Insert the version, point ``alias`` at it and have the server check it: one transaction, all or nothing."""
    with conn.transaction():
        version = _insert(conn, row, stages)
        if alias is not None:
            conn.execute(query("upload_alias"), {"name": row["name"], "alias": alias, "version": version})
        _server_check(conn, row["name"], version, probe, stages)
        committing = stages.start("commit")  # the end of the upload's transaction, just below
    committing.done()
    return version


def _insert(conn, row: dict, stages: _Stages) -> int:
    """Insert the columns this database has (a missing required or unknown one refuses the upload); the version."""
    from psycopg import sql
    from psycopg.adapt import PyFormat

    known = {column for column, _ in conn.execute(query("models_columns"))}
    sent = {column: value for column, value in row.items()
            if (value is not None or column in _REQUIRED) and (column in known or column not in _COMPILED)}
    missing = [column for column in sent if column not in known]
    if missing:
        raise InvalidModel(f"this database's pgml_trigger has no models.{', models.'.join(missing)}; "
                           "upgrade it with pgml-trigger install")
    insert = sql.SQL(query("upload_insert")).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, sent)),
        values=sql.SQL(", ").join(
            sql.Placeholder(column, PyFormat.BINARY if isinstance(value, bytes) else PyFormat.AUTO)
            for column, value in sent.items()))
    send = stages.start("send")
    send.nbytes(row["payload"], row["compiled_payload"])
    version = conn.execute(insert, sent).fetchone()[0]
    send.done()
    return version


def _server_check(conn, name: str, version: int, probe: list[dict] | None, stages: _Stages) -> None:
    """The server loads the new version as predict() would and scores the rows, before anything commits:
    a version it cannot score (a library or module it lacks, an untrusted type) is never stored."""
    import psycopg
    from psycopg.types.json import Jsonb

    try:
        with stages("server check"):
            conn.execute(query("upload_check"), {"name": name, "version": version,
                                                 "rows": Jsonb(probe) if probe is not None else None})
    except psycopg.Error as exc:
        diag = exc.diag
        reason = (diag.message_primary or str(exc)).removeprefix("pgml_trigger: ")
        raise UploadRefused(f"upload of {name} refused: this server cannot score the new version: {reason}",
                            sqlstate=diag.sqlstate, hint=diag.message_hint) from None

"""Upload a fitted model into pgml_trigger.models (runs in the data scientist's process)."""

from __future__ import annotations

import os
import platform
import re
import time
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

from .. import formats
from ..errors import InvalidModel, ModelTooLarge, UploadRefused
from ..profile import training_profile
from ..schema import NUMBER
from ..sqlfiles import query
from . import frameworks, mlflow_source
from .compile import Compiled, NotCompiled, check_rows
from .describe import describe_onnx
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
    MLflow model), describe, serialize, compile, linear form, send, server
    check, commit; ``nbytes`` is the payload's size where the stage made or
    moved it, else None. A big forest spends its time in compile and send.
    """
    import joblib
    import numpy
    import psycopg
    import sklearn
    from psycopg.types.json import Jsonb

    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidModel(f"invalid model name {name!r}: start with a letter or _, then letters, digits, _ . -; "
                           "at most 63 characters")
    stages = _Stages(name, progress)
    source = None
    if mlflow_source.is_mlflow_source(model):
        with stages("read"):
            source = mlflow_source.resolve(model)
        model = source.model
        feature_names = feature_names if feature_names is not None else source.feature_names
        metrics = {**(source.metrics or {}), **(metrics or {})} or None
    fmt = format or ("onnx" if _is_onnx(model) else "joblib")
    if fmt not in formats.FORMATS:
        raise InvalidModel(f"unknown format {fmt!r}; known: {', '.join(formats.FORMATS)}")
    if fmt == "onnx":
        with stages("describe"):
            payload = _onnx_payload(model)
            info = describe_onnx(payload, feature_names=feature_names, classes=classes, task=task)
            _check_onnx_runs(payload, info)
        compiled = Compiled(None, None, None, {"compiled": False, "reason": "an onnx model is scored by its own graph"})
        form, library_versions, probe = None, {}, None
    else:
        framework = frameworks.for_model(model)
        with stages("describe"):
            model = framework.prepare(model, feature_names=feature_names, classes=classes, task=task)
            info = framework.describe(model, feature_names=feature_names, sample=sample)
            if source is not None:
                info = _signature_types(info, source)
        with stages("serialize") as stage:
            payload = stage.nbytes(framework.serialize(model, fmt))
        if compile:
            with stages("compile") as stage:
                compiled = framework.compile(model, info, sample)
                stage.nbytes(compiled.payload)
            with stages("linear form"):
                form = linear_form(model, info, sample)
        else:
            compiled = Compiled(None, None, None, {"compiled": False, "reason": "upload(compile=False)"})
            form = None
        library_versions = framework.library_versions()
        probe = _probe_rows(framework, model, info, sample)
    sha256 = formats.sha256(payload)
    compiled_sha256 = formats.sha256(compiled.payload) if compiled.payload is not None else None
    stored = len(payload) + len(compiled.payload or b"")
    if stored > formats.MAX_STORED_BYTES:
        compressed = " compressed" if formats.compression(payload, fmt) else ""
        compiled_size = f" and {len(compiled.payload):,} of compiled ONNX" if compiled.payload is not None else ""
        raise ModelTooLarge(f"model {name!r} is {stored:,} bytes ({len(payload):,} of{compressed} {fmt} payload"
                            f"{compiled_size}); pgml_trigger stores at most {formats.MAX_STORED_BYTES:,} bytes "
                            "(500 MiB) per version",
                            hint=f"joblib and skops payloads over {formats.COMPRESS_ABOVE // 2**20} MiB are already "
                                 "stored compressed. Upload with compile=False to store only the model's own "
                                 "payload (scored by its library, not onnxruntime), or make the model smaller: "
                                 "fewer trees, shallower ones (max_depth, min_samples_leaf)")
    key = hmac_key if hmac_key is not None else _key_from_environment()
    params = {
        "name": name, "version": 0, "format": fmt, "payload": payload, "sha256": sha256,
        "task": info.task, "classes": Jsonb(info.classes) if info.classes is not None else None,
        "feature_names": list(info.schema.names), "feature_types": list(info.schema.types),
        "feature_inputs": Jsonb([feature.to_json() for feature in compiled.schema(info.schema).inputs]),
        "input_kind": info.schema.input_kind,
        "python_version": platform.python_version(), "sklearn_version": sklearn.__version__,
        "numpy_version": numpy.__version__, "joblib_version": joblib.__version__, "description": description,
        "metrics": Jsonb(metrics) if metrics is not None else None,
        "training_profile": Jsonb(_profile(sample, info)) if sample is not None else None,
        "compiled_format": compiled.format, "compiled_payload": compiled.payload,
        "compiled_sha256": compiled_sha256,
        "compiled_handles_nan": compiled.handles_nan, "agreement": Jsonb(compiled.agreement),
        "linear_form": Jsonb(form) if form is not None else None,
        "library_versions": Jsonb(library_versions) if library_versions else None,
        "skops_version": _version("skops") if fmt == "skops" else None,
        "onnxruntime_version": _version("onnxruntime") if "onnx" in (fmt, compiled.format) else None,
        "payload_hmac": formats.signature(key, fmt, sha256, compiled_sha256) if key is not None else None,
        "source_uri": source.source_uri if source is not None else None,
        "mlflow_version": source.mlflow_version if source is not None else None,
    }
    if isinstance(conn, str):
        with psycopg.connect(conn) as own:
            return _store(own, params, alias, probe, stages)
    return _store(conn, params, alias, probe, stages)


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
        graph, output = onnx_graph.scoring_graph(payload, info.task)  # as the server will load it (cache.py)
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


def _version(distribution: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _profile(sample, info) -> dict:
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


def _store(conn, params: dict, alias: str | None, probe: list[dict] | None, stages: _Stages) -> int:
    import psycopg
    from psycopg import sql
    from psycopg.adapt import PyFormat
    from psycopg.types.json import Jsonb

    with conn.transaction():
        known = {column for column, _ in conn.execute(query("models_columns"))}
        sent = {column: value for column, value in params.items()
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
        send.nbytes(params["payload"], params["compiled_payload"])
        version = conn.execute(insert, sent).fetchone()[0]
        send.done()
        if alias is not None:
            conn.execute(query("upload_alias"), {"name": params["name"], "alias": alias, "version": version})
        # The server loads the new version as predict() would and scores the rows, before anything commits:
        # a version it cannot score (a library or module it lacks, an untrusted type) is never stored.
        try:
            with stages("server check"):
                conn.execute(query("upload_check"), {"name": params["name"], "version": version,
                                                     "rows": Jsonb(probe) if probe is not None else None})
        except psycopg.Error as exc:
            diag = exc.diag
            reason = (diag.message_primary or str(exc)).removeprefix("pgml_trigger: ")
            raise UploadRefused(f"upload of {params['name']} refused: this server cannot score the new version: "
                                f"{reason}", sqlstate=diag.sqlstate, hint=diag.message_hint) from None
        committing = stages.start("commit")  # the end of the upload's transaction, just below
    committing.done()
    return version

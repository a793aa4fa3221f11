"""Upload a fitted model into pgml_trigger.models (runs in the data scientist's process)."""

from __future__ import annotations

import platform
import re

from . import formats
from .compile import Compiled, compile_model
from .describe import describe
from .errors import InvalidModel
from .profile import training_profile
from .sqlfiles import query

_REQUIRED = {"name", "version", "format", "payload", "sha256", "task", "classes", "feature_names", "feature_types",
             "accepts_nan", "input_kind", "python_version", "sklearn_version", "numpy_version", "joblib_version"}
# An older schema without these scores the joblib payload; anything else it lacks is refused.
_COMPILED = {"compiled_format", "compiled_payload", "compiled_sha256", "compiled_handles_nan", "agreement"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")


def upload(conn, name: str, model, *, feature_names=None, alias: str | None = None,
           description: str | None = None, sample=None, metrics: dict | None = None,
           compile: bool = True) -> int:
    """Store ``model`` as the next version of ``name`` and return that version.

    ``conn`` is a psycopg connection or a conninfo string. ``feature_names``
    names the features of a model fitted on a bare array (a model fitted on a
    DataFrame brings its own). ``alias`` points that alias at the new version
    in the same transaction. ``sample``, training rows (a DataFrame with the
    feature columns, or an array in feature order), fixes the feature dtypes
    when the fitted model does not reveal them, is profiled for drift(), and
    is what the compiled (ONNX) payload is checked against: see
    pgml_trigger/compile.py for what happens without it. ``compile=False``
    keeps the model on the scikit-learn path. ``metrics`` is a JSON-able dict
    of evaluation figures kept with the version.
    """
    import joblib
    import numpy
    import psycopg
    import sklearn
    from psycopg.types.json import Jsonb

    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidModel(f"invalid model name {name!r}: start with a letter or _, then letters, digits, _ . -; "
                           "at most 63 characters")
    info = describe(model, feature_names=feature_names, sample=sample)
    payload = formats.dump(model, "joblib")
    compiled = (compile_model(model, info, sample) if compile
                else Compiled(None, None, None, {"compiled": False, "reason": "upload(compile=False)"}))
    params = {
        "name": name, "version": 0, "format": "joblib", "payload": payload, "sha256": formats.sha256(payload),
        "task": info.task, "classes": Jsonb(info.classes) if info.classes is not None else None,
        "feature_names": list(info.schema.names), "feature_types": list(info.schema.types),
        "accepts_nan": info.schema.accepts_nan, "input_kind": info.schema.input_kind,
        "python_version": platform.python_version(), "sklearn_version": sklearn.__version__,
        "numpy_version": numpy.__version__, "joblib_version": joblib.__version__, "description": description,
        "metrics": Jsonb(metrics) if metrics is not None else None,
        "training_profile": Jsonb(_profile(sample, info)) if sample is not None else None,
        "compiled_format": compiled.format, "compiled_payload": compiled.payload,
        "compiled_sha256": formats.sha256(compiled.payload) if compiled.payload is not None else None,
        "compiled_handles_nan": compiled.handles_nan, "agreement": Jsonb(compiled.agreement),
    }
    if isinstance(conn, str):
        with psycopg.connect(conn) as own:
            return _store(own, params, alias)
    return _store(conn, params, alias)


def _profile(sample, info) -> dict:
    try:
        return training_profile(sample, info.schema.names, info.schema.types)
    except ValueError as exc:
        raise InvalidModel(f"cannot profile the sample: {exc}") from exc


def _store(conn, params: dict, alias: str | None) -> int:
    from psycopg import sql
    from psycopg.adapt import PyFormat

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
        version = conn.execute(insert, sent).fetchone()[0]
        if alias is not None:
            conn.execute(query("upload_alias"), {"name": params["name"], "alias": alias, "version": version})
    return version

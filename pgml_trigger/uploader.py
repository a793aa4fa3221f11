"""Upload a fitted model into pgml_trigger.models (runs in the data scientist's process)."""

from __future__ import annotations

import platform
import re

from . import formats
from .describe import describe
from .errors import InvalidModel
from .profile import training_profile
from .sqlfiles import query

_REQUIRED = {"name", "version", "format", "payload", "sha256", "task", "classes", "feature_names", "feature_types",
             "accepts_nan", "input_kind", "python_version", "sklearn_version", "numpy_version", "joblib_version"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,62}$")


def upload(conn, name: str, model, *, feature_names=None, alias: str | None = None,
           description: str | None = None, sample=None, metrics: dict | None = None) -> int:
    """Store ``model`` as the next version of ``name`` and return that version.

    ``conn`` is a psycopg connection or a conninfo string. ``feature_names``
    names the features of a model fitted on a bare array (a model fitted on a
    DataFrame brings its own). ``alias`` points that alias at the new version
    in the same transaction. ``sample``, training rows (a DataFrame with the
    feature columns, or an array in feature order), fixes the feature dtypes
    when the fitted model does not reveal them and is profiled for drift().
    ``metrics`` is a JSON-able dict of evaluation figures kept with the version.
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
    params = {
        "name": name, "version": 0, "format": "joblib", "payload": payload, "sha256": formats.sha256(payload),
        "task": info.task, "classes": Jsonb(info.classes) if info.classes is not None else None,
        "feature_names": list(info.schema.names), "feature_types": list(info.schema.types),
        "accepts_nan": info.schema.accepts_nan, "input_kind": info.schema.input_kind,
        "python_version": platform.python_version(), "sklearn_version": sklearn.__version__,
        "numpy_version": numpy.__version__, "joblib_version": joblib.__version__, "description": description,
        "metrics": Jsonb(metrics) if metrics is not None else None,
        "training_profile": Jsonb(_profile(sample, info)) if sample is not None else None,
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

    sent = {column: value for column, value in params.items() if value is not None or column in _REQUIRED}
    insert = sql.SQL(query("upload_insert")).format(
        columns=sql.SQL(", ").join(map(sql.Identifier, sent)),
        values=sql.SQL(", ").join(
            sql.Placeholder(column, PyFormat.BINARY if column == "payload" else PyFormat.AUTO)
            for column in sent))
    with conn.transaction():
        version = conn.execute(insert, sent).fetchone()[0]
        if alias is not None:
            conn.execute(query("upload_alias"), {"name": params["name"], "alias": alias, "version": version})
    return version

"""The functions the SQL bodies in sql/ call, and the only module that imports plpy.

Each SQL function body is two lines: bootstrap once per backend
(``pgml_trigger._bootstrap()`` puts this module in GD), then call one
function here. Errors leave as PostgreSQL errors carrying the SQLSTATE of
their class in pgml_trigger.errors.
"""

from __future__ import annotations

import os

# A backend must not start BLAS/OpenMP thread pools: set before numpy loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import functools  # noqa: E402
import json  # noqa: E402

import plpy  # noqa: E402  (PL/Python's built-in module)

from .. import __version__  # noqa: E402
from ..errors import AttachmentStale, FeatureOutOfRange, FeatureTypeMismatch, PgmlTriggerError  # noqa: E402
from . import drift as _drift  # noqa: E402
from .cache import ModelCache  # noqa: E402
from .catalog import Catalog  # noqa: E402
from .features import from_array_send, from_mapping, from_positional, in_row  # noqa: E402

# Raised to PostgreSQL as "pgml_trigger: <message>": PL/Python prefixes an
# error with its class's module and name, except for __main__.
SqlError = type("pgml_trigger", (plpy.Error,), {"__module__": "__main__"})

_DEFAULT_CACHE_MB = 1024


def _cache_limit_bytes() -> int:
    setting = plpy.execute("SELECT current_setting('pgml_trigger.model_cache_mb', true) AS mb")[0]["mb"]
    try:
        return int(setting) * 1024 * 1024 if setting else _DEFAULT_CACHE_MB * 1024 * 1024
    except ValueError:
        raise SqlError(f"pgml_trigger.model_cache_mb must be a whole number of megabytes, not {setting!r}") from None


_cache = ModelCache(Catalog(plpy), _cache_limit_bytes())


def _sql_errors(function):
    @functools.wraps(function)
    def wrapper(*args):
        try:
            return function(*args)
        except PgmlTriggerError as exc:
            _raise(exc.message, exc.sqlstate, exc.detail, exc.hint)
        except plpy.SPIError as exc:  # re-raise without PL/Python's "spiexceptions.X:" prefix
            _, detail, hint = (getattr(exc, "spidata", None) or (None, None, None))[:3]
            _raise(exc.args[0] if exc.args else str(exc), exc.sqlstate, detail, hint)

    return wrapper


def _raise(message, sqlstate, detail, hint):
    error = SqlError(message)
    error.sqlstate, error.detail, error.hint = sqlstate, detail, hint
    raise error from None


def _inputs(model, features, columns=None):
    """jsonb arrives as its text (json.loads is the fastest way to a dict), float8[] as a list."""
    if isinstance(features, str):
        try:
            mapping = json.loads(features)
        except RecursionError:  # jsonb nests deeper than Python's parser goes: no feature can be that
            raise FeatureTypeMismatch(f"features for model {model.label} are nested too deeply; give a JSON object "
                                      "of numbers and strings") from None
        except ValueError as exc:  # valid jsonb, so an integer of more digits than Python parses
            raise FeatureOutOfRange(f"features for model {model.label} hold a number too large: {exc}") from None
        return from_mapping(model.schema, mapping, model.label, columns)
    return from_positional(model.schema, features, model.label, columns)


def version() -> str:
    return __version__


@_sql_errors
def predict(model_ref, features, clock):
    _cache.sync(clock)
    model = _cache.model(model_ref)
    return model.predict(_inputs(model, features))


@_sql_errors
def predict_label(model_ref, features, clock):
    _cache.sync(clock)
    model = _cache.model(model_ref)
    return model.predict_label(_inputs(model, features))


@_sql_errors
def predict_proba(model_ref, features, clock):
    _cache.sync(clock)
    model = _cache.model(model_ref)
    return model.predict_proba(_inputs(model, features))


@_sql_errors
def predict_batch(model_ref, features, clock):
    """``features``: a double precision[][] as array_send() bytes, or a jsonb[] as a list of texts."""
    _cache.sync(clock)
    model = _cache.model(model_ref)
    return _score_batch(model, features, model.predict_many)


@_sql_errors
def predict_label_batch(model_ref, features, clock):
    _cache.sync(clock)
    model = _cache.model(model_ref)
    return _score_batch(model, features, model.predict_label_many)


def _score_batch(model, features, score):
    if isinstance(features, bytes):
        return score(from_array_send(model.schema, features, model.label))
    rows, present = [], []
    for index, item in enumerate(features):
        if item is None:  # a NULL row scores as NULL; a NULL inside a row follows the missing-value policy
            continue
        try:
            rows.append(_inputs(model, item))
        except PgmlTriggerError as exc:
            raise in_row(exc, index) from None
        present.append(index)
    scored = score(rows)
    if len(present) == len(features):
        return scored
    result = [None] * len(features)
    for index, value in zip(present, scored):
        result[index] = value
    return result


def _attached_model(attachment_id, clock):
    _cache.sync(clock)
    attachment = _cache.attachment(attachment_id)
    model = _cache.model(attachment.model_ref)
    if model.schema.names != attachment.feature_names:
        raise AttachmentStale(
            f"the scoring trigger on {attachment.target} feeds model {attachment.model_ref} the features "
            f"({', '.join(attachment.feature_names)}) but {model.label} expects ({', '.join(model.schema.names)})",
            hint=f"detach and attach {attachment.model_ref} again")
    return attachment, model


@_sql_errors
def score_row(attachment_id, features, clock):
    attachment, model = _attached_model(attachment_id, clock)
    return model.predict(_inputs(model, features, attachment.columns))


@_sql_errors
def label_row(attachment_id, features, clock):
    attachment, model = _attached_model(attachment_id, clock)
    return model.predict_label(_inputs(model, features, attachment.columns))


@_sql_errors
def fetch_payload(name, version, compiled):
    return _cache.catalog.fetch_payload(name, version, compiled)


def catalog_changed() -> None:
    _cache.catalog_changed()


def cache_info():
    return [(m.name, m.version, m.sha256, m.payload_bytes, _cache.load_counts[m.name, m.version])
            for m in _cache.entries()]


@_sql_errors
def loaded_scoring_path(model_ref, clock):
    """Which engine this backend scores the model with: 'onnx', or 'sklearn' (e.g. without onnxruntime)."""
    _cache.sync(clock)
    return _cache.model(model_ref).scoring_path


@_sql_errors
def drift(model_ref, source, since):
    return _drift.drift(_cache.catalog, plpy.quote_ident, model_ref, source, since)

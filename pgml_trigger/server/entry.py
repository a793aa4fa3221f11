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

import contextlib  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import plpy  # noqa: E402  (PL/Python's built-in module)

from .. import __version__  # noqa: E402
from ..errors import AttachmentStale, FeatureOutOfRange, FeatureTypeMismatch, PgmlTriggerError  # noqa: E402
from . import counters as _counters  # noqa: E402
from . import drift as _drift  # noqa: E402
from . import explain as _explain  # noqa: E402
from . import generation as _generation  # noqa: E402
from .cache import ModelCache  # noqa: E402
from .catalog import Catalog  # noqa: E402
from .features import (  # noqa: E402
    distinct_columns,
    from_array_send,
    from_mapping,
    from_positional,
    from_typed_arrays,
    in_row,
    matrix_from_mappings,
)

try:  # parses a row of 30 numbers by name in about a fifth of json.loads's time
    from orjson import loads as _fast_json  # noqa: E402
except ImportError:  # a server environment installed before orjson was a dependency
    _fast_json = json.loads

# Raised to PostgreSQL as "pgml_trigger: <message>": PL/Python prefixes an
# error with its class's module and name, except for __main__.
SqlError = type("pgml_trigger", (plpy.Error,), {"__module__": "__main__"})

_DEFAULT_CACHE_MB = 1024


def _cache_limit_bytes(catalog: Catalog) -> int:
    setting = catalog.setting("pgml_trigger.model_cache_mb")
    try:
        return int(setting) * 1024 * 1024 if setting else _DEFAULT_CACHE_MB * 1024 * 1024
    except ValueError:
        raise SqlError(f"pgml_trigger.model_cache_mb must be a whole number of megabytes, not {setting!r}") from None


_catalog = Catalog(plpy)
_database_oid, _in_recovery = _catalog.database()
_cache = ModelCache(_catalog, _cache_limit_bytes(_catalog), _database_oid,
                    _generation.GenerationSignal(_database_oid, usable=not _in_recovery))


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
    """One row's features: jsonb and json (a table row, row_to_json() in SQL) arrive as their text (json.loads is
    the fastest way to a dict), float8[] as a list; a dict is an element of a batch already parsed."""
    with _counted_as_error(model):
        if isinstance(features, str):
            return from_mapping(model.schema, _parsed(model, features), model.label, columns)
        if isinstance(features, dict):
            return from_mapping(model.schema, features, model.label, columns)
        return from_positional(model.schema, features, model.label, columns)


def _typed_inputs(model, numbers, texts, columns):
    """One row as a scoring trigger hands over a row with text columns: its numeric features as a float8[], its
    text ones as a text[] (sql/triggers.sql, _features_by_kind)."""
    with _counted_as_error(model):
        return from_typed_arrays(model.schema, numbers, texts, model.label, columns)


@contextlib.contextmanager
def _counted_as_error(model):
    """A row the model refuses counts as an error of that model (counters())."""
    try:
        yield
    except PgmlTriggerError:
        model.usage.errors += 1
        raise


def _parsed(model, text):
    """A row (or rows) by name from its JSON text; one naming a feature twice is refused (features.py)."""
    return distinct_columns(model.schema, text, _json(model, text), model.label)


def _json(model, text):
    try:
        return _fast_json(text)
    except ValueError:  # what orjson refuses and json takes: integers beyond 64 bits, nesting beyond 1024, ...
        pass
    try:
        return json.loads(text)
    except RecursionError:  # jsonb nests deeper than Python's parser goes: no feature can be that
        raise FeatureTypeMismatch(f"features for model {model.label} are nested too deeply; give a JSON "
                                  "object of numbers and strings") from None
    except ValueError as exc:  # valid jsonb, so an integer of more digits than Python parses
        raise FeatureOutOfRange(f"features for model {model.label} hold a number too large: {exc}") from None


def version() -> str:
    return __version__


def _model(model_ref, clock):
    _cache.sync(clock)
    return _cache.model(model_ref)


@_sql_errors
def predict(model_ref, features, clock):
    model = _model(model_ref, clock)
    return model.predict(_inputs(model, features))


@_sql_errors
def predict_label(model_ref, features, clock):
    model = _model(model_ref, clock)
    return model.predict_label(_inputs(model, features))


@_sql_errors
def predict_proba(model_ref, features, clock):
    model = _model(model_ref, clock)
    return model.predict_proba(_inputs(model, features))


@_sql_errors
def predict_batch(model_ref, features, clock):
    """``features``: a double precision[][] as array_send() bytes, a jsonb[] as a list of texts, or table rows as
    the text of a JSON array."""
    model = _model(model_ref, clock)
    return _score_batch(model, features, model.predict_many)


@_sql_errors
def predict_label_batch(model_ref, features, clock):
    model = _model(model_ref, clock)
    return _score_batch(model, features, model.predict_label_many)


def _score_batch(model, features, score):
    if isinstance(features, str):
        features = _parsed(model, features)
    rows, present = _batch_rows(model, features)
    scored = score(rows)
    if present is None:
        return scored
    result = [None] * len(features)
    for index, value in zip(present, scored):
        result[index] = value
    return result


def _batch_rows(model, features, columns=None):
    """Rows from a double precision[][] (array_send() bytes), a jsonb[] (texts) or table rows (dicts, from the
    JSON array _score_batch parsed), and, when a NULL row was left out (it scores as NULL), the indexes the others
    came from (else None). Errors name their row.
    """
    if isinstance(features, bytes):
        return from_array_send(model.schema, features, model.label), None
    matrix = _numbers_by_name(model, features)
    if matrix is not None:
        return matrix, None
    rows, present = [], []
    for index, item in enumerate(features):
        if item is None:
            continue
        try:
            rows.append(_inputs(model, item, columns))
        except PgmlTriggerError as exc:
            raise in_row(exc, index) from None
        present.append(index)
    return rows, None if len(present) == len(features) else present


def _numbers_by_name(model, features):
    """All rows of a batch by name at once (features.matrix_from_mappings), when nothing in them needs a
    closer look: jsonb[] texts are parsed first. None sends the batch through the row-by-row path."""
    try:
        mappings = [_fast_json(item) if isinstance(item, str) else item for item in features]
    except ValueError:
        return None
    return matrix_from_mappings(model.schema, mappings)


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
    return [(m.name, m.version, m.sha256, m.payload_bytes, _cache.counters.loads[m.name, m.version], m.scoring_path,
             m.load_seconds, json.dumps(m.load_stages)) for m in _cache.entries()]


@_sql_errors
def warm_up(model_refs, clock):
    """Load models into this backend before its first request (e.g. a pool's new connection): per reference,
    what it resolved to, how it scores, and the seconds this call spent loading it (0 when it was loaded)."""
    _cache.sync(clock)
    result = []
    for model_ref in model_refs:
        started = time.perf_counter()
        model = _cache.model(model_ref, build_graph=True)
        result.append((model_ref, model.name, model.version, model.scoring_path, time.perf_counter() - started))
    return result


def counters():
    _cache.counters.publish()
    return _counters.totals(_cache.counters.directory)


# --- Scoring that writes pgml_trigger.prediction_log (the callers are SECURITY DEFINER functions).

@_sql_errors
def score_row_logged(attachment_id, features, clock, row_key):
    attachment, model = _attached_model(attachment_id, clock)
    row = _inputs(model, features, attachment.columns)
    return _score_and_log(attachment, model, [row_key], [row])[0]


@_sql_errors
def score_statement(attachment_id, keys, features, clock):
    attachment, model = _attached_model(attachment_id, clock)
    rows, _ = _batch_rows(model, features, attachment.columns)  # jsonb_build_object() is never NULL
    _score_and_log(attachment, model, keys, rows)


@_sql_errors
def predict_logged(model_ref, features, log_key, clock):
    model = _model(model_ref, clock)
    row = _inputs(model, features)
    prediction = model.predict(row)
    _log(model, "call", None, [log_key], [prediction], "value", [row])
    return prediction


def _score_and_log(attachment, model, keys, rows) -> list:
    """The attachment's output for each row; logs it, and a challenger's, as the attachment asks."""
    outputs = _outputs(attachment, model, rows)
    logged_features = rows if attachment.log else None
    if attachment.log or attachment.challenger or attachment.mode == "statement":
        reasons = _explained(model, rows, attachment.explain_top_k) if attachment.explain_column else None
        _log(model, "champion", attachment, keys, outputs, attachment.output, logged_features, reasons)
    if attachment.challenger:
        challenger = _cache.model(attachment.challenger)
        if challenger.schema.names != model.schema.names:
            raise AttachmentStale(f"challenger {challenger.label} on {attachment.target} no longer takes the features "
                                  f"of {model.label}", hint="detach and attach again with another challenger")
        _log(challenger, "challenger", attachment, keys, _outputs(attachment, challenger, rows), attachment.output,
             logged_features)
    return outputs


def _outputs(attachment, model, rows) -> list:
    if attachment.output == "label":
        return model.predict_label_many(rows)
    return model.predict_many(rows)


def _log(model, role, attachment, keys, outputs, output, rows, reasons=None) -> None:
    """Rows of the prediction log; ``rows`` are the features to keep, or None; ``reasons``: explain() of each."""
    labels = outputs if output == "label" else [None] * len(outputs)
    values = [None] * len(outputs) if output == "label" else outputs
    features = ([None] * len(outputs) if rows is None
                else [json.dumps(dict(zip(model.schema.names, _json_safe(row)))) for row in rows])
    _cache.catalog.log_predictions(model.name, model.version, role, attachment and attachment.target,
                                   attachment and attachment.output_column, list(keys), values, labels, features,
                                   reasons)


def _json_safe(row) -> list:
    """Feature values for JSON: NaN (a missing value) becomes null."""
    values = row.tolist() if hasattr(row, "tolist") else row
    return [None if isinstance(v, float) and v != v else v for v in values]


@_sql_errors
def loaded_scoring_path(model_ref, clock):
    """Which engine this backend scores the model with: 'onnx', or 'sklearn' (e.g. without onnxruntime)."""
    _cache.sync(clock)
    return _cache.model(model_ref, build_graph=False).scoring_path


@_sql_errors
def drift(model_ref, source, since):
    return _drift.drift(_cache.catalog, plpy.quote_ident, plpy.quote_literal, model_ref, source, since)


@_sql_errors
def check_version(name, version, rows):
    from .doctor import check_version as check

    return check(_cache, name, version, rows)


@_sql_errors
def doctor():
    from .doctor import doctor as diagnose

    return diagnose(_cache)


# --- Rows with text columns, as scoring triggers hand them over (_typed_inputs).


@_sql_errors
def score_typed_row(attachment_id, numbers, texts, clock):
    attachment, model = _attached_model(attachment_id, clock)
    return model.predict(_typed_inputs(model, numbers, texts, attachment.columns))


@_sql_errors
def label_typed_row(attachment_id, numbers, texts, clock):
    attachment, model = _attached_model(attachment_id, clock)
    return model.predict_label(_typed_inputs(model, numbers, texts, attachment.columns))


@_sql_errors
def score_typed_row_logged(attachment_id, numbers, texts, clock, row_key):
    attachment, model = _attached_model(attachment_id, clock)
    row = _typed_inputs(model, numbers, texts, attachment.columns)
    return _score_and_log(attachment, model, [row_key], [row])[0]


@_sql_errors
def score_typed_statement(attachment_id, keys, numbers, texts, kinds, clock):
    """``numbers`` and ``texts``: one list per inserted row (a double precision[][] and a text[][]); ``kinds``: the
    feature types the trigger split them by, which the model's version must still have."""
    attachment, model = _attached_model(attachment_id, clock)
    if kinds != ",".join(model.schema.types):
        raise AttachmentStale(
            f"the scoring trigger on {attachment.target} hands model {attachment.model_ref} features of the types "
            f"({kinds.replace(',', ', ')}) but {model.label} takes ({', '.join(model.schema.types)})",
            hint=f"detach and attach {attachment.model_ref} again")
    rows = []
    for index, (row_numbers, row_texts) in enumerate(zip(numbers, texts)):
        try:
            rows.append(_typed_inputs(model, row_numbers, row_texts, attachment.columns))
        except PgmlTriggerError as exc:
            raise in_row(exc, index) from None
    _score_and_log(attachment, model, keys, rows)


# --- explain(): each input column's SHAP value in a prediction (server/explain.py), and the reasons triggers write.

_explainers = _explain.Explainers(_cache.catalog.explainer, lambda: _cache.max_bytes)


@_sql_errors
def fetch_explainer(name, version):
    return _cache.catalog.fetch_explainer(name, version)


@_sql_errors
def explain(model_ref, features, top_k, clock):
    if model_ref is None or features is None:
        return None
    model = _model(model_ref, clock)
    return _explained(model, [_inputs(model, features)], top_k)[0]


@_sql_errors
def explain_batch(model_ref, features, top_k, clock):
    """``features`` as for predict_batch(); a NULL row explains as NULL."""
    if model_ref is None or features is None:
        return None
    model = _model(model_ref, clock)
    return _score_batch(model, features, lambda rows: _explained(model, rows, top_k))


@_sql_errors
def explain_row(attachment_id, features, clock):
    """The reasons a row trigger writes beside its prediction: explain() of the same row, as many as it keeps."""
    attachment, model = _attached_model(attachment_id, clock)
    return _explained(model, [_inputs(model, features, attachment.columns)], attachment.explain_top_k)[0]


@_sql_errors
def explain_typed_row(attachment_id, numbers, texts, clock):
    attachment, model = _attached_model(attachment_id, clock)
    row = _typed_inputs(model, numbers, texts, attachment.columns)
    return _explained(model, [row], attachment.explain_top_k)[0]


def _explained(model, rows, top_k) -> list[str]:
    return _explain.explain(model, lambda: _explainers.get(model), rows, top_k)

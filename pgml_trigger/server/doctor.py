"""pgml_trigger.doctor(): would each model version load in this database, under which libraries, and is
what it stores intact?

Each version is loaded the way scoring would load it (policy, HMAC, checksums, deserialization, the
strict_versions setting), one at a time and outside the backend's cache, so that nothing stays in memory.
A load reads one payload; the sha256 of both, the original and the compiled one, is checked for every
version, and a mismatch is reported as corruption of that version.
"""

from __future__ import annotations

import json

from .. import formats
from ..errors import ModelLoadFailed, PgmlTriggerError
from .cache import ModelCache, defers_graph, recorded_libraries, server_version
from .features import from_mapping


def doctor(cache: ModelCache) -> list[tuple]:
    import numpy
    import sklearn

    rows = []
    for name, version, payload_intact, compiled_intact in cache.catalog.stored_payloads():
        meta = cache.catalog.resolve(f"{name}@{version}")
        checks = cache.catalog.load_checks(name, version)
        allowed_formats = formats.parse_allowed(checks["allowed_formats"])
        onnx_scores = meta.format == "onnx" or (meta.compiled_format == "onnx" and "onnx" in allowed_formats)
        allowed = meta.format in allowed_formats or (meta.format != "onnx" and onnx_scores)
        try:
            loaded = cache.load_uncached(meta)
            loads, error, path = True, None, loaded.scoring_path
        except PgmlTriggerError as exc:
            loads, error, path = False, exc.message, None
        deserialized = meta.format != "onnx" and (path == "sklearn" or loaded_with_fallback(meta, path)
                                                  or (path == "onnx" and defers_graph(meta, checks)))
        differing = [f"loads under {library} {server_version(library)}, saved with {recorded}"
                     for library, recorded in recorded_libraries(checks).items()
                     if deserialized and server_version(library) != recorded]
        damaged = [what for what, intact in (("payload", payload_intact), ("compiled payload", compiled_intact))
                   if not intact]
        if damaged:
            verdict = (f"corrupted: the stored {' and '.join(damaged)} of {name}@{version} no longer "
                       f"match{'es' if len(damaged) == 1 else ''} the sha256 recorded at upload")
            error = error or verdict
        elif not loads:
            verdict = "will not load"
        elif differing:
            verdict = "; ".join(differing) + ": predictions may differ"
        elif meta.format not in allowed_formats and loaded_with_fallback(meta, path):
            verdict = f"ok, on ONNX; rows with a missing value are refused ({meta.format} is not allowed)"
        else:
            verdict = "ok"
        server_sklearn = sklearn.__version__ if meta.format != "onnx" else None
        rows.append((name, version, meta.format, path, allowed, loads, error, checks["sklearn_version"],
                     server_sklearn, checks["numpy_version"], numpy.__version__, verdict))
    return rows


def loaded_with_fallback(meta, path) -> bool:
    """Scored by ONNX, but rows with a missing value go to the deserialized payload."""
    return path == "onnx" and meta.format != "onnx" and meta.schema.accepts_nan and not meta.compiled_handles_nan


def check_version(cache: ModelCache, name: str, version: int, rows_json: str | None) -> str:
    """Load a version as predict() would (uncached) and score ``rows_json`` (a JSON array of objects keyed by
    feature name) on every engine it may use; the scoring path, or the error that stops the upload."""
    meta = cache.catalog.resolve(f"{name}@{version}")
    model = cache.load_uncached(meta)
    engines = [model.engine]
    if model.missing_value_engine is not None:  # rows with a missing value will need the deserialized payload
        engines.append(model.missing_value_engine())
    elif model.scoring_path == "onnx" and defers_graph(meta, cache.catalog.load_checks(name, version)):
        engines.append(cache.own_engine(meta))  # a backend's first predictions come from it
    rows = [from_mapping(meta.schema, row, model.label) for row in json.loads(rows_json or "[]")]
    for engine in engines:
        # The graph never sees a row with a hole when the model's own engine scores those (scoring.py).
        given = [row for row in rows if not meta.schema.has_hole(row)] \
            if engine is model.engine and model.missing_value_engine is not None else rows
        if not given:
            continue
        try:
            engine.predict_rows(given)
            engine.predict_row(given[0])
            if meta.task == "classification" and engine.has_proba:
                engine.predict_proba_rows(given)
        except Exception as exc:  # whatever the model raises: it cannot score here, and that is the answer
            raise ModelLoadFailed(f"model {model.label} loads in this server but cannot score the sample rows "
                                  f"({engine.scoring_path}): {type(exc).__name__}: {exc}") from None
    return model.scoring_path

"""pgml_trigger.doctor(): would each model version load in this database, under which libraries, and is
what it stores intact?

Each version is loaded the way scoring would load it (policy, HMAC, checksums, deserialization, the
strict_versions setting), one at a time and outside the backend's cache, so that nothing stays in memory.
A load reads one payload; the sha256 of both, the original and the compiled one, is checked for every
version, and a mismatch is reported as corruption of that version. Which engines a backend scores a
version with, and so whose library versions matter, is load_plan's answer, the one the cache acts on.
"""

from __future__ import annotations

import json

from ..errors import ModelLoadFailed, PgmlTriggerError
from ..libraries import installed_version
from . import load_plan
from .cache import ModelCache
from .features import from_mapping
from .load_plan import LoadPolicy


def doctor(cache: ModelCache) -> list[tuple]:
    import numpy
    import sklearn

    rows = []
    for name, version, payload_intact, compiled_intact in cache.catalog.stored_payloads():
        meta = cache.catalog.resolve(f"{name}@{version}")
        policy = LoadPolicy.read(cache.catalog, meta)
        try:
            path = cache.load_uncached(meta).scoring_path
            plan = load_plan.plan(meta, policy)  # as a backend's scoring loads it: a big graph waits
            loads, error = True, None
        except PgmlTriggerError as exc:
            loads, error, path, plan = False, exc.message, None, None
        differing = [f"loads under {library} {installed_version(library)}, saved with {recorded}"
                     for library, recorded in (plan.libraries if plan else {}).items()
                     if installed_version(library) != recorded]
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
        elif plan.missing_values_to_own and not policy.allows(meta.format):
            verdict = f"ok, on ONNX; rows with a missing value are refused ({meta.format} is not allowed)"
        else:
            verdict = "ok"
        server_sklearn = sklearn.__version__ if meta.format != "onnx" else None
        rows.append((name, version, meta.format, path, load_plan.allowed(meta, policy), loads, error,
                     policy.recorded.sklearn_version, server_sklearn, policy.recorded.numpy_version,
                     numpy.__version__, verdict))
    return rows


def check_version(cache: ModelCache, name: str, version: int, rows_json: str | None) -> str:
    """Load a version as predict() would (uncached) and score ``rows_json`` (a JSON array of objects keyed by
    feature name) on every engine it may use; the scoring path, or the error that stops the upload."""
    meta = cache.catalog.resolve(f"{name}@{version}")
    model = cache.load_uncached(meta)
    engines = [model.engine]
    if load_plan.plan(meta, LoadPolicy.read(cache.catalog, meta)).own_payload_too:
        engines.append(cache.own_engine(meta))  # a backend's first predictions, or its rows with a missing value
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

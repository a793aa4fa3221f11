"""Serialized model payloads: how a fitted model becomes bytea and back.

Only ``joblib`` exists so far. Loading a joblib payload runs pickle, which can
execute code as the database server's OS user: only a checksum-verified
payload written by a trusted uploader is ever loaded (see server/cache.py).
"""

from __future__ import annotations

import hashlib
import io

FORMATS = ("joblib",)


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def dump(model, fmt: str = "joblib") -> bytes:
    import joblib

    if fmt != "joblib":
        raise ValueError(f"unknown model format {fmt!r}; known: {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


def load(payload: bytes, fmt: str):
    import joblib

    if fmt != "joblib":
        raise ValueError(f"unknown model format {fmt!r}; known: {', '.join(FORMATS)}")
    return joblib.load(io.BytesIO(payload))

"""Serialized model payloads: how a fitted model becomes bytea and back, and which formats are trusted.

Three formats:

* ``joblib``: a pickle. Loading it can execute any code as the database
  server's OS user, so only a checksum-verified payload (and, with a key
  configured, an HMAC-verified one) written by a trusted uploader is loaded.
* ``skops``: scikit-learn's objects rebuilt by skops.io from a description
  of their types and arrays, without pickle. A payload is loaded only when
  every type in it is trusted: the types skops itself trusts (builtins,
  numpy, scipy and scikit-learn estimators) plus ``SKOPS_TRUSTED``, a few
  scikit-learn internals that fitted trees, boosted ensembles and MLPs hold.
  Anything else (a user's own transformer, a FunctionTransformer's function)
  is refused and named.
* ``onnx``: an ONNX graph from any framework, run by onnxruntime; no Python
  object is ever deserialized. The payload is the graph's bytes.

Which of them a database loads at all is the DBA's ``pgml_trigger.allowed_formats``
(server/cache.py enforces it at load time).
"""

from __future__ import annotations

import hashlib
import hmac
import io

FORMATS = ("joblib", "skops", "onnx")
DEFAULT_ALLOWED = "joblib,skops,onnx"
# The most a model version stores, payload and compiled payload together. pg_dump writes a row as text,
# a bytea as hex (twice its size), and PostgreSQL holds at most 1 GB in one value: 500 MiB keeps every
# dump, restore and export of a version within that. The server refuses more (sql/catalog.sql).
MAX_STORED_BYTES = 500 * 1024 * 1024
# A joblib or skops payload larger than this is stored compressed, with the library's own compression
# (joblib.dump(compress=("zlib", 1)), skops.io.dumps(compression=ZIP_DEFLATED)), which their loaders read
# as they are: nothing changes in the server, and the sha256 and HMAC cover the stored bytes. A forest's
# arrays compress about 3.3x at level 1 (a 300-tree forest's 546 MB pickle to 166 MB), which is what brings
# such a model and its ONNX graph under MAX_STORED_BYTES. It costs a load on the scikit-learn path (the
# compiled path never reads this payload but for rows with missing values) about 1 ms per MB of pickle:
# inflating the 546 MB took 1.2 s more than joblib.load of the plain pickle, and not fetching 380 MB saves
# about 0.7 s (the server fetched 309 MB in 0.58 s; bench/big_model.py). Below an eighth of the cap the
# space does not matter, and small models load as fast as they can.
COMPRESS_ABOVE = 64 * 1024 * 1024
COMPRESSION_LEVEL = 1  # level 3 gains 6% of size for 10% more time: big payloads are what upload waits on

# Beyond what skops trusts by default: scikit-learn types whose skops loaders rebuild them from arrays and
# plain values (no user code runs), found in fitted DecisionTree*/RandomForest*/ExtraTrees*/GradientBoosting*,
# HistGradientBoosting* and MLP* models.
SKOPS_TRUSTED = (
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)


def sha256(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def signature(key: bytes, fmt: str, sha256_hex: str, compiled_sha256_hex: str | None) -> str:
    """HMAC-SHA256, in hex, over the format and the digests of the payload and the compiled payload.

    The digests are checked against the payloads themselves before the HMAC is, so this authenticates
    both payloads, and a row cannot be relabelled to another format.
    """
    message = f"pgml_trigger-hmac/1\n{fmt}\n{sha256_hex}\n{compiled_sha256_hex or ''}\n".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def signature_matches(key: bytes, expected_hex: str | None, fmt: str, sha256_hex: str,
                      compiled_sha256_hex: str | None) -> bool:
    return expected_hex is not None and hmac.compare_digest(
        signature(key, fmt, sha256_hex, compiled_sha256_hex), expected_hex)


def parse_allowed(setting: str | None) -> frozenset[str]:
    """The formats a pgml_trigger.allowed_formats value names ('onnx, skops'); unset means every format."""
    text = DEFAULT_ALLOWED if setting is None or not setting.strip() else setting
    return frozenset(part.strip().lower() for part in text.split(",") if part.strip())


def dump(model, fmt: str = "joblib") -> bytes:
    """The payload of ``model``: compressed when it is larger than COMPRESS_ABOVE uncompressed."""
    if fmt == "joblib":
        payload = _joblib_dump(model)
        return _joblib_dump(model, compress=("zlib", COMPRESSION_LEVEL)) if len(payload) > COMPRESS_ABOVE else payload
    if fmt == "skops":
        import zipfile

        import skops.io

        payload = skops.io.dumps(model)
        if len(payload) > COMPRESS_ABOVE:
            return skops.io.dumps(model, compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESSION_LEVEL)
        return payload
    raise ValueError(f"cannot save a Python object as {fmt!r}; known: joblib, skops (onnx payloads are graphs)")


def _joblib_dump(model, compress=0) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=compress)
    return buffer.getvalue()


def compression(payload: bytes, fmt: str) -> str | None:
    """How a joblib or skops payload was compressed ("zlib", "deflate"), or None."""
    if fmt == "joblib":
        return "zlib" if payload[:1] == b"\x78" else None  # joblib's own zlib stream; a pickle starts with 0x80
    if fmt == "skops":
        import zipfile

        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            return "deflate" if any(item.compress_type == zipfile.ZIP_DEFLATED for item in archive.infolist()) else None
    return None


def untrusted_types(payload: bytes) -> list[str]:
    """The types in a skops payload that neither skops nor SKOPS_TRUSTED trusts."""
    import skops.io

    return sorted(set(skops.io.get_untrusted_types(data=payload)) - set(SKOPS_TRUSTED))


def load(payload: bytes, fmt: str):
    """The Python object in a joblib or skops payload (the caller checked its integrity and the policy)."""
    if fmt == "joblib":
        import joblib

        return joblib.load(io.BytesIO(payload))
    if fmt == "skops":
        import skops.io

        from .errors import UntrustedContent

        refused = untrusted_types(payload)
        if refused:
            raise UntrustedContent(f"the skops payload holds types outside the allow-list: {', '.join(refused)}",
                                   hint="pgml_trigger loads skops payloads made only of numpy, scipy and "
                                        "scikit-learn types; upload such a model as onnx (or joblib, where allowed)")
        return skops.io.loads(payload, trusted=list(SKOPS_TRUSTED))
    raise ValueError(f"a {fmt!r} payload is not a Python object; known: joblib, skops")

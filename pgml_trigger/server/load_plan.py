"""How a model version loads and scores in this database: the policy in, a plan out.

The cache carries out the plan (fetches and checks the payloads, builds the engines) and doctor() reports
it; neither decides what this module decides. A load obeys the DBA's database-level settings, never the
session's, so that a session cannot loosen them, and what the version's row records of how it was saved:

- ``pgml_trigger.allowed_formats``: a payload in a format it leaves out is never deserialized. Where a
  compiled ONNX graph can score instead it does, and the model's own payload is then loaded, under the same
  check, only for the rows the graph cannot score.
- ``pgml_trigger.hmac_key_file``: a row whose HMAC does not verify under that file's key is refused.
- ``pgml_trigger.strict_versions``: a model saved with another scikit-learn, or another version of a library
  it records (models.library_versions, e.g. xgboost), is refused; otherwise that is a warning. A payload
  needing a library this server lacks is refused, naming it.
- ``pgml_trigger.defer_graph_mb``: how big a compiled graph must be to wait (DEFER_GRAPH_MB).
"""

from __future__ import annotations

import enum
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import formats
from ..errors import FormatNotAllowed, LibraryVersionMismatch, ModelLoadFailed, ModelSignatureInvalid
from ..libraries import installed_version
from .catalog import Catalog, ModelMeta

# A big compiled graph is not built on a backend's first use of its model: onnxruntime builds a big forest's
# trees more slowly than the model's own payload loads and scores the first requests. The own payload scores
# first, and the graph is built once the model has spent as long scoring as building the graph is expected to
# take (GRAPH_SECONDS_PER_MB), so a backend pays at most about twice what the better engine alone would have
# cost (buying late, as in ski rental); a pool's warm_up() builds it at once. A smaller graph is built at once.
# The figures: README, Big models (bench/big_model.py).
DEFER_GRAPH_MB = 32
GRAPH_SECONDS_PER_MB = 0.025


class Engine(enum.Enum):
    """What scores a version's rows."""

    UPLOADED_GRAPH = "uploaded graph"  # the payload is an ONNX graph, run by onnxruntime
    COMPILED_GRAPH = "compiled graph"  # the ONNX graph compiled from the model at upload, run by onnxruntime
    OWN_PAYLOAD = "own payload"  # the model itself, deserialized from its joblib or skops payload


@dataclass(frozen=True)
class Recorded:
    """What a version's row records of how it was saved."""

    payload_hmac: str | None
    sklearn_version: str | None
    numpy_version: str | None
    libraries: Mapping[str, str | None]  # distribution -> version: scikit-learn's and models.library_versions'


@dataclass(frozen=True)
class LoadPolicy:
    """The database's load settings, as ALTER DATABASE set them, and the version's record."""

    allowed_formats: frozenset[str]
    allowed_formats_setting: str | None  # as set, for messages
    hmac_key_file: str | None
    strict_versions: bool
    # As set: parsed where a graph may wait (defers_graph), so that a bad value fails only the loads it concerns.
    defer_graph_mb: str | None
    recorded: Recorded

    @classmethod
    def read(cls, catalog: Catalog, meta: ModelMeta) -> LoadPolicy:
        """The policy of this moment (not yet checked against the row's HMAC: verify_signature)."""
        row = catalog.load_checks(meta.name, meta.version)
        recorded = Recorded(payload_hmac=row["payload_hmac"], sklearn_version=row["sklearn_version"],
                            numpy_version=row["numpy_version"], libraries=recorded_libraries(row))
        return cls(allowed_formats=formats.parse_allowed(row["allowed_formats"]),
                   allowed_formats_setting=row["allowed_formats"], hmac_key_file=row["hmac_key_file"],
                   strict_versions=_setting_on(row["strict_versions"]), defer_graph_mb=row["defer_graph_mb"],
                   recorded=recorded)

    def allows(self, fmt: str) -> bool:
        return fmt in self.allowed_formats


@dataclass(frozen=True)
class LoadPlan:
    """How a version loads and scores in a backend."""

    engine: Engine  # what scores its rows once it is loaded
    # The compiled graph waits (defers_graph): the own payload scores until the model has scored this many
    # seconds more in the backend, and then the graph is built; where the own payload cannot load (e.g. a
    # library missing), the graph is built at once. None: the graph, if any, is built at load.
    graph_after: float | None = None
    # Rows with a missing value go to the own payload, loaded the first time one comes: the compiled graph
    # would score them unlike the model.
    missing_values_to_own: bool = False
    # Versions the own payload was saved with, to compare with this server's: empty when it is never loaded.
    libraries: Mapping[str, str | None] = field(default_factory=dict)

    @property
    def own_payload_too(self) -> bool:
        """The graph scores, and the own payload scores some rows too: the first ones, or those with a missing
        value."""
        return self.graph_after is not None or self.missing_values_to_own


@functools.cache
def onnxruntime_available() -> bool:
    """A server environment without onnxruntime still scores compiled models, on their own payload."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def plan(meta: ModelMeta, policy: LoadPolicy, graph_may_wait: bool = True,
         has_onnxruntime: Callable[[], bool] = onnxruntime_available) -> LoadPlan:
    """How ``meta`` loads and scores under ``policy``; FormatNotAllowed when the policy leaves out the format
    of what would score. ``graph_may_wait`` False: a big compiled graph is built at once (warm_up(), doctor()).
    ``has_onnxruntime``: asked only for a compiled graph, as importing onnxruntime costs a backend time and
    memory."""
    if meta.format == "onnx":
        allow(meta, policy, Engine.UPLOADED_GRAPH)
        return LoadPlan(Engine.UPLOADED_GRAPH)
    if meta.compiled_format == "onnx" and policy.allows("onnx") and has_onnxruntime():
        waits = graph_may_wait and defers_graph(meta, policy)
        missing_values_to_own = meta.schema.accepts_nan and not meta.compiled_handles_nan
        return LoadPlan(Engine.COMPILED_GRAPH, graph_after=graph_seconds(meta) if waits else None,
                        missing_values_to_own=missing_values_to_own,
                        libraries=policy.recorded.libraries if waits or missing_values_to_own else {})
    allow(meta, policy, Engine.OWN_PAYLOAD)
    return LoadPlan(Engine.OWN_PAYLOAD, libraries=policy.recorded.libraries)


def allow(meta: ModelMeta, policy: LoadPolicy, engine: Engine) -> None:
    """Refuse to load the payload ``engine`` needs when pgml_trigger.allowed_formats leaves out its format."""
    if engine is Engine.OWN_PAYLOAD:
        fmt = meta.format
        what = "payload" if meta.compiled_format is None else \
            "payload (needed where its compiled ONNX graph cannot score)"
    else:
        fmt, what = "onnx", "compiled payload" if engine is Engine.COMPILED_GRAPH else "payload"
    if not policy.allows(fmt):
        raise FormatNotAllowed(
            f"model {_label(meta)} cannot be loaded: its {what} is {fmt}, which this database does not allow "
            f"(pgml_trigger.allowed_formats = '{policy.allowed_formats_setting}')",
            hint="the DBA allows formats with ALTER DATABASE ... SET pgml_trigger.allowed_formats; "
                 "or upload the model as onnx or skops")


def allowed(meta: ModelMeta, policy: LoadPolicy) -> bool:
    """Whether the policy lets the version score at all: its payload's format, or its compiled graph's."""
    return policy.allows(meta.format) or (meta.compiled_format == "onnx" and policy.allows("onnx"))


def verify_signature(meta: ModelMeta, policy: LoadPolicy) -> None:
    """Refuse a row whose HMAC does not verify under the key pgml_trigger.hmac_key_file names, when it names one."""
    label = _label(meta)
    key = _hmac_key(label, policy.hmac_key_file)
    payload_hmac = policy.recorded.payload_hmac
    if key is not None and not formats.signature_matches(key, payload_hmac, meta.format, meta.sha256,
                                                         meta.compiled_sha256):
        problem = "has no HMAC" if payload_hmac is None else "has an HMAC that does not match"
        raise ModelSignatureInvalid(f"model {label} {problem} under this database's key "
                                    f"(pgml_trigger.hmac_key_file); refusing to load it",
                                    hint="upload the model again with the database's key")


def check_versions(meta: ModelMeta, policy: LoadPolicy) -> str | None:
    """scikit-learn's and each recorded model library's version (e.g. xgboost's), against this server's, before
    the own payload is deserialized: refuses a library this server lacks, and any difference under
    strict_versions; otherwise the difference to warn about, or None."""
    label = _label(meta)
    differing = []
    for library, recorded in policy.recorded.libraries.items():
        have = installed_version(library)
        if have is None:
            raise ModelLoadFailed(f"model {label} needs the Python package {library} (saved with {recorded}), "
                                  "which this server's environment lacks",
                                  hint=f"pgml-trigger install --with {library} puts it there")
        if have != recorded:
            differing.append(f"{library} {recorded}; this server has {have}")
    if not differing:
        return None
    message = f"model {label} was saved with {', '.join(differing)}"
    if policy.strict_versions:
        raise LibraryVersionMismatch(message + "; refusing to load it (pgml_trigger.strict_versions is on)",
                                     hint="upload it again from the server's library versions, or as onnx")
    return message


def recorded_libraries(row: Mapping) -> dict[str, str | None]:
    """Distribution -> version the model was saved with: scikit-learn's, and those in models.library_versions."""
    extra = row.get("library_versions")
    return {"scikit-learn": row["sklearn_version"], **(json.loads(extra) if isinstance(extra, str) else extra or {})}


def defers_graph(meta: ModelMeta, policy: LoadPolicy) -> bool:
    """Whether a compiled model's own payload scores first (DEFER_GRAPH_MB; the database's
    pgml_trigger.defer_graph_mb: megabytes, or -1 never)."""
    setting = policy.defer_graph_mb
    try:
        limit = DEFER_GRAPH_MB if setting is None or not setting.strip() else float(setting)
    except ValueError:
        raise ModelLoadFailed(f"pgml_trigger.defer_graph_mb must be a number of megabytes (or -1), not "
                              f"{setting!r}") from None
    return limit >= 0 and meta.payload_bytes >= limit * 2**20 and policy.allows(meta.format)


def graph_seconds(meta: ModelMeta) -> float:
    """How long building a compiled graph of this size is expected to take."""
    return meta.payload_bytes / 2**20 * GRAPH_SECONDS_PER_MB


def _label(meta: ModelMeta) -> str:
    return f"{meta.name}@{meta.version}"


def _hmac_key(label: str, path: str | None) -> bytes | None:
    """The key in the file pgml_trigger.hmac_key_file names; None when that is not set. Fails closed."""
    if path is None or not path.strip():
        return None
    try:
        with open(path, "rb") as key_file:
            key = key_file.read().rstrip(b"\r\n")
    except OSError as exc:
        raise ModelLoadFailed(f"model {label}: pgml_trigger.hmac_key_file is {path!r}, which the server cannot "
                              f"read ({exc.strerror}); refusing to load models unchecked",
                              hint="the key file must be readable by the database server's OS user") from None
    if not key:
        raise ModelLoadFailed(f"model {label}: the HMAC key file {path!r} is empty; refusing to load models unchecked")
    return key


def _setting_on(value: str | None) -> bool:
    return value is not None and value.strip().lower() in ("on", "true", "yes", "1")

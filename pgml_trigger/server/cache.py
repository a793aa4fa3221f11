"""The per-backend model cache.

A model is deserialized once per backend and kept, least recently used first
out, within ``max_bytes`` of payload. A big compiled graph is built only once
the model's own payload has scored for as long as building it takes
(defers_graph), or when warm_up() asks. What a reference ('churn',
'churn@staging') points to is remembered per catalog generation: the
generation is a counter bumped in the same transaction as every change to
models, aliases and attachments, and it is read at most once per SQL
statement (the callers pass ``statement_timestamp()``), so a new version, an
alias move or a deleted model is seen by every open session on its next
statement; and not even that while the writers' shared file says nothing
changed (generation.py).

Before anything is deserialized, a load reads the DBA's database-level
settings (never the session's) and refuses: a payload whose format
``pgml_trigger.allowed_formats`` leaves out (a compiled ONNX payload scores
instead when there is one, and then the original payload is only loaded,
under the same check, for rows the graph cannot score); a row whose HMAC
does not verify under ``pgml_trigger.hmac_key_file``'s key; a payload that
does not match its sha256; a skops payload with untrusted types; and, under
``pgml_trigger.strict_versions``, a model saved with another scikit-learn,
or another version of a library it records (models.library_versions, e.g.
xgboost; otherwise that is a WARNING once per model per backend). A payload
needing a library this server lacks is refused, naming it.
"""

from __future__ import annotations

import functools
import json
import time
from collections import OrderedDict

from .. import formats
from ..errors import (
    AttachmentStale,
    FormatNotAllowed,
    LibraryVersionMismatch,
    ModelCorrupted,
    ModelLoadFailed,
    ModelOutOfMemory,
    ModelSignatureInvalid,
    ModelTooLarge,
    PgmlTriggerError,
    UntrustedContent,
)
from . import onnx_graph
from .catalog import Attachment, Catalog, ModelMeta
from .counters import Counters
from .engines import OnnxEngine, SklearnEngine
from .generation import GenerationSignal
from .scoring import LoadedModel


class ModelCache:
    def __init__(self, catalog: Catalog, max_bytes: int, database_oid: int, signal: GenerationSignal):
        self.catalog = catalog
        self.signal = signal
        self.max_bytes = max_bytes
        self._clock = None
        self._generation = None
        self._refs: dict[str, LoadedModel] = {}
        self._attachments: dict[int, Attachment] = {}
        self._loaded: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._loaded_bytes = 0
        self.counters = Counters(database_oid)
        self._version_warned: set[tuple[str, int]] = set()
        self._stages: dict[str, float] = {}  # seconds per stage of the load under way (load_stages)

    def sync(self, clock) -> None:
        """Forget resolved references if the catalog changed since the last statement."""
        if clock == self._clock:
            return
        self.counters.publish_if_due()
        if self._generation is not None and self.signal.current() == self._generation:
            self._clock = clock
            return
        generation = self.catalog.generation()
        self._clock = clock
        if generation != self._generation:
            self._generation = generation
            self._refs.clear()
            self._attachments.clear()

    def catalog_changed(self) -> None:
        """This backend itself changed the catalog: look again on the next call, and through SPI from now on."""
        self._clock = None
        self.signal.distrust()

    def model(self, model_ref: str, build_graph: bool | None = None) -> LoadedModel:
        """The loaded model a reference points to. A deferred graph (defers_graph) is built when it is due
        before scoring, and ``build_graph`` True builds it now (warm_up()), False not (only looking)."""
        model = self._refs.get(model_ref)
        if model is None:
            # warm_up() wants the graph: no use loading the model's own payload first
            model = self._refs[model_ref] = self._fetch(self.catalog.resolve(model_ref), defer=not build_graph)
        self._loaded.move_to_end(model.key)
        if model.graph_later is not None and build_graph is not False and (
                build_graph or model.usage.seconds >= model.graph_after):
            self._build_graph(model)
        return model

    def attachment(self, attachment_id: int) -> Attachment:
        attachment = self._attachments.get(attachment_id)
        if attachment is None:
            attachment = self.catalog.attachment(attachment_id)
            if attachment is None:
                raise AttachmentStale(f"scoring trigger #{attachment_id} has no attachment record; "
                                       "detach and attach the model again")
            self._attachments[attachment_id] = attachment
        return attachment

    def entries(self) -> list[LoadedModel]:
        return list(self._loaded.values())

    def _fetch(self, meta: ModelMeta, defer: bool = True) -> LoadedModel:
        key = (meta.name, meta.version, meta.sha256)
        model = self._loaded.get(key)
        if model is None:
            self._stages = {}
            started = time.perf_counter()
            model = self._load(meta, defer=defer)
            model.load_seconds = time.perf_counter() - started
            model.load_stages, self._stages = self._stages, {}  # later loads (doctor(), fallbacks) count apart
            self.counters.loads[meta.name, meta.version] += 1  # into the cache: doctor's and upload checks' are not
            self.counters.load_seconds[meta.name, meta.version] += model.load_seconds
            self._loaded[key] = model
            self._loaded_bytes += model.payload_bytes
            self._evict(keep=key)
        return model

    def load_uncached(self, meta: ModelMeta) -> LoadedModel:
        """Load a model as scoring would, without keeping it or warning about versions (for doctor())."""
        return self._load(meta, quiet=True, defer=False)

    def own_engine(self, meta: ModelMeta) -> SklearnEngine:
        """The model's own payload loaded as scoring would load it first (defers_graph), uncached."""
        return self._sklearn_engine(meta, f"{meta.name}@{meta.version}", None, quiet=True)[0]

    def _load(self, meta: ModelMeta, quiet: bool = False, defer: bool = True) -> LoadedModel:
        """Deserialize a model, after the policy, HMAC and checksum checks (module docstring); ``defer``: a big
        compiled graph may wait (defers_graph)."""
        label = f"{meta.name}@{meta.version}"
        if meta.payload_bytes > self.max_bytes:
            raise ModelTooLarge(
                f"model {label} has a payload of {meta.payload_bytes / 2**20:.1f} MB, more than "
                f"a backend may hold (pgml_trigger.model_cache_mb = {self.max_bytes // 2**20})",
                hint="raise pgml_trigger.model_cache_mb for this database, or upload a smaller model")
        checks = self._checks(meta, label)
        allowed = formats.parse_allowed(checks["allowed_formats"])
        missing_value_engine, graph_later, graph_after = None, None, 0.0
        if meta.format == "onnx":
            _allow(label, "onnx", "payload", checks)
            payload = self._verified(label, self._timed("fetch", self.catalog.payload, meta.name, meta.version),
                                     meta.sha256, "payload")
            engine, payload_bytes = self._onnx_engine(label, payload, meta, "payload", uploaded=True), len(payload)
        elif meta.compiled_format == "onnx" and "onnx" in allowed and self._timed("import", _onnxruntime_available):
            if meta.schema.accepts_nan and not meta.compiled_handles_nan:
                # Loaded the first time a row with a missing value comes, under the policy of that moment.
                missing_value_engine = lambda: self._sklearn_engine(meta, label, None, quiet)[0]  # noqa: E731
            own = self._own_engine_first(meta, label, checks, quiet) if defer and defers_graph(meta, checks) else None
            if own is not None:
                engine, payload_bytes = own
                graph_later = lambda: self._graph_engine(meta, label, self._checks(meta, label))  # noqa: E731
                graph_after = self.counters.for_model(meta.name, meta.version)[3] + graph_seconds(meta)
            else:
                engine, payload_bytes = self._graph_engine(meta, label, checks)
        else:
            engine, payload_bytes = self._sklearn_engine(meta, label, checks, quiet)
        model = LoadedModel(name=meta.name, version=meta.version, sha256=meta.sha256, task=meta.task,
                            classes=meta.classes, schema=meta.schema, engine=engine, payload_bytes=payload_bytes,
                            usage=self.counters.for_model(meta.name, meta.version),
                            missing_value_engine=missing_value_engine, graph_later=graph_later,
                            graph_after=graph_after)
        if graph_later is not None and missing_value_engine is not None:
            model.keep_missing_value_engine(engine)  # the own payload is loaded already
        return model

    def _graph_engine(self, meta: ModelMeta, label: str, checks: dict) -> tuple[OnnxEngine, int]:
        """The compiled graph's engine, under the policy in ``checks``."""
        _allow(label, "onnx", "compiled payload", checks)
        payload = self._verified(label, self._timed("fetch", self.catalog.compiled_payload, meta.name, meta.version),
                                 meta.compiled_sha256, "compiled payload")
        return self._onnx_engine(label, payload, meta, "compiled payload"), len(payload)

    def _own_engine_first(self, meta: ModelMeta, label: str, checks: dict, quiet: bool):
        """The model's own payload, to score while its big graph waits (defers_graph); None when that payload
        cannot be used here (the policy, a missing library, strict versions), and the graph is built now."""
        try:
            return self._sklearn_engine(meta, label, checks, quiet)
        except PgmlTriggerError:
            return None

    def _build_graph(self, model: LoadedModel) -> None:
        """Build a deferred model's graph (it has scored for as long as that is expected to take, or warm_up()
        asks) and score with it from now on; the model's own engine stays for rows with a missing value where
        the graph cannot score those. When the graph cannot be built now, the model goes on as it was."""
        later, model.graph_later = model.graph_later, None
        self._stages = {}
        started = time.perf_counter()
        try:
            engine, payload_bytes = later()
        except PgmlTriggerError as exc:
            self.catalog.warn(f"pgml_trigger: {exc.message}; model {model.label} goes on scoring with its own "
                              "payload")
            return
        seconds = time.perf_counter() - started
        if model.missing_value_engine is not None:
            model.keep_missing_value_engine(model.engine)
        model.engine = engine
        self._loaded_bytes += payload_bytes - model.payload_bytes
        model.payload_bytes = payload_bytes
        model.load_seconds += seconds
        model.load_stages = {**model.load_stages, **{f"graph {stage}": spent for stage, spent in self._stages.items()}}
        self._stages = {}
        self.counters.load_seconds[model.name, model.version] += seconds
        self._evict(keep=model.key)

    def _checks(self, meta: ModelMeta, label: str) -> dict:
        """The load policy and the row's HMAC and versions; verifies the HMAC when a key is configured."""
        checks = self.catalog.load_checks(meta.name, meta.version)
        key = _hmac_key(label, checks["hmac_key_file"])
        if key is not None and not formats.signature_matches(key, checks["payload_hmac"], meta.format, meta.sha256,
                                                             meta.compiled_sha256):
            problem = "has no HMAC" if checks["payload_hmac"] is None else "has an HMAC that does not match"
            raise ModelSignatureInvalid(f"model {label} {problem} under this database's key "
                                        f"(pgml_trigger.hmac_key_file); refusing to load it",
                                        hint="upload the model again with the database's key")
        return checks

    def _onnx_engine(self, label: str, payload: bytes, meta: ModelMeta, what: str,
                     uploaded: bool = False) -> OnnxEngine:
        try:
            if uploaded:  # a graph as its converter emitted it: read once here which output holds the scores
                graph, output = onnx_graph.scoring_graph(payload, meta.task)
                return self._timed("onnxruntime session", OnnxEngine, graph, meta.schema, meta.classes, output)
            return self._timed("onnxruntime session", OnnxEngine, payload, meta.schema, meta.classes)
        except ImportError as exc:
            raise ModelLoadFailed(f"model {label} needs onnxruntime, which this server's environment lacks",
                                  hint="pgml-trigger install puts onnxruntime into it") from exc
        except Exception as exc:  # a graph this onnxruntime cannot run: report it, never crash the backend
            raise ModelLoadFailed(f"model {label}: onnxruntime cannot load its {what}: "
                                  f"{type(exc).__name__}: {exc}") from exc

    def _sklearn_engine(self, meta: ModelMeta, label: str, checks: dict | None,
                        quiet: bool = False) -> tuple[SklearnEngine, int]:
        checks = checks if checks is not None else self._checks(meta, label)
        _allow(label, meta.format, "payload" if meta.compiled_format is None else
               "payload (needed where its compiled ONNX graph cannot score)", checks)
        self._check_versions(meta, label, checks, quiet)
        payload = self._verified(label, self._timed("fetch", self.catalog.payload, meta.name, meta.version),
                                 meta.sha256, "payload")
        return SklearnEngine(self._deserialize(label, payload, meta.format), meta.schema), len(payload)

    def _check_versions(self, meta: ModelMeta, label: str, checks: dict, quiet: bool) -> None:
        """scikit-learn's and each recorded model library's version (e.g. xgboost's), against this server's."""
        differing = []
        for library, recorded in recorded_libraries(checks).items():
            have = server_version(library)
            if have is None:
                raise ModelLoadFailed(f"model {label} needs the Python package {library} (saved with {recorded}), "
                                      "which this server's environment lacks",
                                      hint=f"pgml-trigger install --with {library} puts it there")
            if have != recorded:
                differing.append(f"{library} {recorded}; this server has {have}")
        if not differing:
            return
        message = f"model {label} was saved with {', '.join(differing)}"
        if _setting_on(checks["strict_versions"]):
            raise LibraryVersionMismatch(message + "; refusing to load it (pgml_trigger.strict_versions is on)",
                                         hint="upload it again from the server's library versions, or as onnx")
        if not quiet and (meta.name, meta.version) not in self._version_warned:
            self._version_warned.add((meta.name, meta.version))
            self.catalog.warn(f"pgml_trigger: {message}; its predictions may differ from the ones checked "
                              "at upload")

    def _timed(self, stage: str, function, *args):
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            self._stages[stage] = self._stages.get(stage, 0.0) + time.perf_counter() - started

    def _verified(self, label: str, payload: bytes, sha256: str, what: str) -> bytes:
        if self._timed("sha256", formats.sha256, payload) != sha256:
            raise ModelCorrupted(f"model {label}: the stored {what} does not match its sha256 {sha256}; "
                                 "refusing to load it", hint="upload the model again")
        return payload

    def _deserialize(self, label: str, payload: bytes, fmt: str):
        try:
            return self._timed("deserialize", formats.load, payload, fmt)
        except UntrustedContent as exc:
            raise UntrustedContent(f"model {label}: {exc.message}; refusing to load it", hint=exc.hint) from None
        except MemoryError:
            raise ModelOutOfMemory(f"model {label} does not fit in this backend's memory",
                                   hint="the server's memory limit (e.g. ulimit -v) is lower than the model needs") \
                from None
        except ImportError as exc:
            raise ModelLoadFailed(f"model {label} cannot be loaded in this server: {exc}",
                                  hint="install the missing package into the server's Python environment "
                                       "(pgml-trigger install)") from exc
        except Exception as exc:  # unpickling can fail in any way; report it, never crash the backend
            raise ModelLoadFailed(f"model {label} cannot be deserialized: {type(exc).__name__}: {exc}") from exc

    def _evict(self, keep: tuple) -> None:
        while self._loaded_bytes > self.max_bytes and len(self._loaded) > 1:
            key, victim = next(iter(self._loaded.items()))
            if key == keep:
                break
            del self._loaded[key]
            self._loaded_bytes -= victim.payload_bytes
            self._refs = {ref: model for ref, model in self._refs.items() if model is not victim}


def recorded_libraries(checks: dict) -> dict[str, str]:
    """Distribution -> version the model was saved with: scikit-learn's, and those in models.library_versions."""
    extra = checks.get("library_versions")
    return {"scikit-learn": checks["sklearn_version"], **(json.loads(extra) if isinstance(extra, str) else extra or {})}


@functools.cache
def server_version(distribution: str) -> str | None:
    """The version of a distribution installed where this backend imports from; None when it has none."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


# A compiled graph this big (by default) is not built on a backend's first use of the model: onnxruntime takes
# about 25-30 ms per MB to build a forest's trees (a 300-tree forest's 309 MB graph: 7-10 s, first in a
# process), where a backend's first request scored by the same forest's own payload took 5.3 s, 4.5 of them
# inflating and unpickling its 546 MB (bench/big_model.py). The own payload scores first, and the graph is
# built once the model has spent as long scoring as building it is expected to take: about twice, at most,
# the time the better engine alone would have cost (buying late, as in ski rental); a pool's warm_up() builds
# it at once. Below this size a graph builds in well under a second.
DEFER_GRAPH_MB = 32
GRAPH_SECONDS_PER_MB = 0.025


def defers_graph(meta: ModelMeta, checks: dict) -> bool:
    """Whether a compiled model's own payload scores first (DEFER_GRAPH_MB; the database's
    pgml_trigger.defer_graph_mb: megabytes, or -1 never)."""
    setting = checks.get("defer_graph_mb")
    try:
        limit = DEFER_GRAPH_MB if setting is None or not setting.strip() else float(setting)
    except ValueError:
        raise ModelLoadFailed(f"pgml_trigger.defer_graph_mb must be a number of megabytes (or -1), not "
                              f"{setting!r}") from None
    return limit >= 0 and meta.payload_bytes >= limit * 2**20 and meta.format in formats.parse_allowed(
        checks["allowed_formats"])


def graph_seconds(meta: ModelMeta) -> float:
    """How long building a compiled graph of this size is expected to take."""
    return meta.payload_bytes / 2**20 * GRAPH_SECONDS_PER_MB


@functools.cache
def _onnxruntime_available() -> bool:
    """A server environment without onnxruntime still scores compiled models, on their scikit-learn payload."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _allow(label: str, fmt: str, what: str, checks: dict) -> None:
    """Refuse to deserialize a payload whose format the database's pgml_trigger.allowed_formats leaves out."""
    if fmt not in formats.parse_allowed(checks["allowed_formats"]):
        raise FormatNotAllowed(
            f"model {label} cannot be loaded: its {what} is {fmt}, which this database does not allow "
            f"(pgml_trigger.allowed_formats = '{checks['allowed_formats']}')",
            hint="the DBA allows formats with ALTER DATABASE ... SET pgml_trigger.allowed_formats; "
                 "or upload the model as onnx or skops")


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

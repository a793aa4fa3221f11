"""The per-backend model cache: what a reference points to, and the models loaded for it.

Deserializing a model costs far more than scoring with it, so each backend keeps what it loaded, least
recently used first out, within ``max_bytes`` of payload. How a version loads (which engine scores, what the
database's policy refuses, whether a big graph waits) is load_plan's answer; this module fetches the payloads
the plan names, checks them against their sha256 and builds the engines.

What a reference ('churn', 'churn@staging') points to is remembered per catalog generation, a counter bumped
in the same transaction as every change to models, aliases and attachments. Reading it at most once per SQL
statement (the callers pass ``statement_timestamp()``), and not at all while the writers' shared file says
nothing changed (generation.py), keeps the catalog out of the hot path while every open session still sees a
new version, an alias move or a deleted model on its next statement.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from .. import formats
from ..errors import (
    AttachmentStale,
    ModelCorrupted,
    ModelLoadFailed,
    ModelOutOfMemory,
    ModelTooLarge,
    PgmlTriggerError,
    UntrustedContent,
)
from . import load_plan, onnx_graph
from .catalog import Attachment, Catalog, ModelMeta
from .counters import Counters
from .engines import OnnxEngine, SklearnEngine
from .generation import GenerationSignal
from .load_plan import Engine, LoadPolicy
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
        """The loaded model a reference points to. A deferred graph (load_plan.defers_graph) is built when it is
        due before scoring, and ``build_graph`` True builds it now (warm_up()), False not (only looking)."""
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
        """The model's own payload loaded as scoring would load it besides its graph, uncached."""
        return self._engine_now(meta, Engine.OWN_PAYLOAD, quiet=True)[0]

    def _load(self, meta: ModelMeta, quiet: bool = False, defer: bool = True) -> LoadedModel:
        """Load a model as load_plan.plan() says, once its row's HMAC verifies; ``defer``: a big compiled graph
        may wait."""
        label = f"{meta.name}@{meta.version}"
        if meta.payload_bytes > self.max_bytes:
            raise ModelTooLarge(
                f"model {label} has a payload of {meta.payload_bytes / 2**20:.1f} MB, more than "
                f"a backend may hold (pgml_trigger.model_cache_mb = {self.max_bytes // 2**20})",
                hint="raise pgml_trigger.model_cache_mb for this database, or upload a smaller model")
        policy = self._policy(meta)
        plan = load_plan.plan(meta, policy, graph_may_wait=defer,
                              has_onnxruntime=lambda: self._timed("import", load_plan.onnxruntime_available))
        missing_value_engine, graph_later, graph_after = None, None, 0.0
        if plan.engine is Engine.UPLOADED_GRAPH:
            payload = self._payload(meta, label, compiled=False)
            engine, payload_bytes = self._onnx_engine(label, payload, meta, "payload", uploaded=True), len(payload)
        elif plan.engine is Engine.COMPILED_GRAPH:
            if plan.missing_values_to_own:
                # Loaded the first time a row with a missing value comes, under the policy of that moment.
                missing_value_engine = lambda: self._engine_now(meta, Engine.OWN_PAYLOAD, quiet)[0]  # noqa: E731
            own = self._own_engine_first(meta, label, policy, quiet) if plan.graph_after is not None else None
            if own is not None:
                engine, payload_bytes = own
                graph_later = lambda: self._engine_now(meta, Engine.COMPILED_GRAPH)  # noqa: E731
                graph_after = self.counters.for_model(meta.name, meta.version).seconds + plan.graph_after
            else:
                engine, payload_bytes = self._graph_engine(meta, label)
        else:
            engine, payload_bytes = self._own_engine(meta, label, policy, quiet)
        model = LoadedModel(name=meta.name, version=meta.version, sha256=meta.sha256, task=meta.task,
                            classes=meta.classes, schema=meta.schema, engine=engine, payload_bytes=payload_bytes,
                            usage=self.counters.for_model(meta.name, meta.version),
                            missing_value_engine=missing_value_engine, graph_later=graph_later,
                            graph_after=graph_after)
        if graph_later is not None and missing_value_engine is not None:
            model.keep_missing_value_engine(engine)  # the own payload is loaded already
        return model

    def _policy(self, meta: ModelMeta) -> LoadPolicy:
        """The load policy of this moment, once the row's HMAC verifies under it."""
        policy = LoadPolicy.read(self.catalog, meta)
        load_plan.verify_signature(meta, policy)
        return policy

    def _engine_now(self, meta: ModelMeta, engine: Engine, quiet: bool = False):
        """One engine of the plan, loaded after the model itself (a deferred graph, the own payload for a row
        with a missing value) under the policy of this moment."""
        label = f"{meta.name}@{meta.version}"
        policy = self._policy(meta)
        load_plan.allow(meta, policy, engine)
        if engine is Engine.COMPILED_GRAPH:
            return self._graph_engine(meta, label)
        return self._own_engine(meta, label, policy, quiet)

    def _own_engine_first(self, meta: ModelMeta, label: str, policy: LoadPolicy, quiet: bool):
        """The model's own payload, to score while its big graph waits; None when that payload cannot be used
        here (e.g. a missing library, strict versions), and the graph is built now."""
        try:
            return self._own_engine(meta, label, policy, quiet)
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

    def _graph_engine(self, meta: ModelMeta, label: str) -> tuple[OnnxEngine, int]:
        payload = self._payload(meta, label, compiled=True)
        return self._onnx_engine(label, payload, meta, "compiled payload"), len(payload)

    def _own_engine(self, meta: ModelMeta, label: str, policy: LoadPolicy, quiet: bool) -> tuple[SklearnEngine, int]:
        """The model's own payload deserialized, once the policy allows its format (load_plan.allow)."""
        difference = load_plan.check_versions(meta, policy)
        if difference is not None and not quiet and (meta.name, meta.version) not in self._version_warned:
            self._version_warned.add((meta.name, meta.version))
            self.catalog.warn(f"pgml_trigger: {difference}; its predictions may differ from the ones checked "
                              "at upload")
        payload = self._payload(meta, label, compiled=False)
        return SklearnEngine(self._deserialize(label, payload, meta.format), meta.schema), len(payload)

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

    def _timed(self, stage: str, function, *args):
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            self._stages[stage] = self._stages.get(stage, 0.0) + time.perf_counter() - started

    def _payload(self, meta: ModelMeta, label: str, compiled: bool) -> bytes:
        """The model's own payload or its compiled one, once it matches the sha256 recorded at upload."""
        sha256, what = (meta.compiled_sha256, "compiled payload") if compiled else (meta.sha256, "payload")
        payload = self._timed("fetch", self.catalog.payload, meta.name, meta.version, compiled)
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


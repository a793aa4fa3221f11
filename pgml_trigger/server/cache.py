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

In a parallel query no process may read the catalog through SPI (parallel.py): references resolve from the
newest snapshot of the catalog (snapshot.py) and payloads load from the server's files (model_files.py), which
every payload fetched through SPI is written to. A backend that reads the catalog through SPI keeps the
snapshot current where no writer wrote it (Catalog.save_snapshot).
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
from . import load_plan, memory, onnx_graph, parallel
from .arithmetic import LinearRows
from .catalog import Attachment, Catalog, ModelMeta
from .counters import DIRECTORY, Counters
from .engines import OnnxEngine, SklearnEngine
from .generation import GenerationSignal
from .load_plan import Engine, LoadPolicy
from .model_files import ModelFiles
from .scoring import LoadedModel
from .snapshot import Snapshots

DEFAULT_CACHE_MB = 1024
# How a parallel query's process gets what it may not read itself (snapshot.py says the same of the catalog).
_TOO_LARGE_HINT = "raise pgml_trigger.model_cache_mb for this database, or upload a smaller model"
_FILE_HINT = ("score the model once without parallel workers (SET max_parallel_workers_per_gather = 0), or call "
              "pgml_trigger.warm_up() for it: a backend that may read the payload writes it to the server's disk")


class ModelCache:
    def __init__(self, catalog: Catalog):
        self.catalog = catalog  # through SPI, outside parallel queries
        self._source: Catalog | object = catalog  # what this statement resolves from: catalog, or a snapshot
        database_oid = parallel.database_oid()
        if database_oid is None:  # parallel queries are never told apart here: SPI is always there
            database_oid = catalog.database()[0]
        self._database_oid = database_oid
        if not parallel.in_parallel_mode():
            parallel.prepare_workers(DIRECTORY, database_oid)
        self.files = ModelFiles(DIRECTORY / str(database_oid) / "models")
        self.snapshots = Snapshots(DIRECTORY / str(database_oid) / "catalog")
        self.signal: GenerationSignal | None = None  # set by the first statement outside a parallel query
        self._changed_catalog = False
        self._max_bytes: int | None = None  # pgml_trigger.model_cache_mb, read once
        self._clock = None
        self._generation = None  # as last read through SPI
        self._refs_generation = None  # of the catalog _refs were resolved from: through SPI or a snapshot
        self._snapshot_checked: tuple[int, int | None] | None = None
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
        if parallel.in_parallel_mode():
            self._source = self.snapshots.newest(self.catalog.warn)
            self._clock = clock
            self._resolve_at(self._source.generation())
            return
        self._source = self.catalog
        if self.signal is None:
            self._start()
        if self._generation is not None and self._refs_generation == self._generation \
                and self.signal.current() == self._generation:
            self._clock = clock
            return
        generation = self.catalog.generation()
        self._clock = clock
        self._generation = generation
        self._resolve_at(generation)
        newest = self.snapshots.newest_generation()
        if newest != generation and self._snapshot_checked != (generation, newest):
            self._snapshot_checked = (generation, newest)
            self.catalog.save_snapshot()

    def _start(self) -> None:
        """This backend's first statement outside a parallel query: what a parallel query's processes will read."""
        _, in_recovery = self.catalog.database()
        self.signal = GenerationSignal(self._database_oid, usable=not in_recovery and not self._changed_catalog)
        self.catalog.save_snapshot()  # the database's settings may have changed since the newest was written

    def _resolve_at(self, generation: int) -> None:
        if generation != self._refs_generation:
            self._refs_generation = generation
            self._refs.clear()
            self._attachments.clear()

    @property
    def max_bytes(self) -> int:
        if self._max_bytes is None:
            setting = self._now().setting("pgml_trigger.model_cache_mb")
            try:
                self._max_bytes = int(setting) * 2**20 if setting else DEFAULT_CACHE_MB * 2**20
            except ValueError:
                raise ModelLoadFailed(f"pgml_trigger.model_cache_mb must be a whole number of megabytes, not "
                                      f"{setting!r}") from None
        return self._max_bytes

    def _now(self):
        """The catalog as this moment may read it: the SPI catalog, or in a parallel query its snapshot."""
        return self._source if parallel.in_parallel_mode() else self.catalog

    def catalog_changed(self) -> None:
        """This backend itself changed the catalog: look again on the next call, and through SPI from now on."""
        self._clock = None
        self._changed_catalog = True
        if self.signal is not None:
            self.signal.distrust()

    def model(self, model_ref: str, build_graph: bool | None = None) -> LoadedModel:
        """The loaded model a reference points to. A deferred graph (load_plan.defers_graph) is built when it is
        due before scoring, and ``build_graph`` True builds it now (warm_up()), False not (only looking)."""
        model = self._refs.get(model_ref)
        if model is None:
            # warm_up() wants the graph: no use loading the model's own payload first
            model = self._refs[model_ref] = self._fetch(self._source.resolve(model_ref), defer=not build_graph)
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
            with memory.Measured() as added:
                model = self._load(meta, defer=defer)
            model.load_seconds = time.perf_counter() - started
            model.load_stages, self._stages = self._stages, {}  # later loads (doctor(), fallbacks) count apart
            model.memory_bytes = model.payload_bytes if added.bytes is None else max(added.bytes, 0)
            if model.memory_bytes > self.max_bytes:
                raise ModelTooLarge(f"model {model.label} holds {model.memory_bytes / 2**20:.1f} MB once loaded, "
                                    f"more than a backend may hold (pgml_trigger.model_cache_mb = "
                                    f"{self.max_bytes // 2**20})", hint=_TOO_LARGE_HINT)
            self.counters.loads[meta.name, meta.version] += 1  # into the cache: doctor's and upload checks' are not
            self.counters.load_seconds[meta.name, meta.version] += model.load_seconds
            self._loaded[key] = model
            self._loaded_bytes += model.memory_bytes
            self._evict(keep=key)
            self._count_memory()
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
                hint=_TOO_LARGE_HINT)
        policy = self._policy(meta)
        plan = load_plan.plan(meta, policy, graph_may_wait=defer,
                              has_onnxruntime=lambda: self._timed("import", load_plan.onnxruntime_available))
        missing_value_engine, graph_later, graph_after, row_engine = None, None, 0.0, None
        if plan.engine is Engine.UPLOADED_GRAPH:
            payload = self._payload(meta, label, compiled=False)
            engine, payload_bytes = self._onnx_engine(label, payload, meta, "payload", uploaded=True), len(payload)
        elif plan.engine is Engine.COMPILED_GRAPH:
            if plan.missing_values_to_own:
                # Loaded the first time a row with a missing value comes, under the policy of that moment.
                missing_value_engine = lambda: self._measured_engine(model, meta, quiet)  # noqa: E731
            own = self._own_engine_first(meta, label, policy, quiet) if plan.graph_after is not None else None
            if own is not None:
                engine, payload_bytes = own
                graph_later = lambda: self._engine_now(meta, Engine.COMPILED_GRAPH)  # noqa: E731
                graph_after = self.counters.for_model(meta.name, meta.version).seconds + plan.graph_after
            else:
                engine, payload_bytes = self._graph_engine(meta, label)
                if plan.rows_by_arithmetic:
                    row_engine = LinearRows(meta.linear_form, meta.classes, engine)
        else:
            engine, payload_bytes = self._own_engine(meta, label, policy, quiet)
        model = LoadedModel(name=meta.name, version=meta.version, sha256=meta.sha256, task=meta.task,
                            classes=meta.classes, schema=meta.schema, engine=engine, payload_bytes=payload_bytes,
                            usage=self.counters.for_model(meta.name, meta.version),
                            missing_value_engine=missing_value_engine, graph_later=graph_later,
                            graph_after=graph_after, row_engine=row_engine)
        if graph_later is not None and missing_value_engine is not None:
            model.keep_missing_value_engine(engine)  # the own payload is loaded already
        return model

    def _policy(self, meta: ModelMeta) -> LoadPolicy:
        """The load policy of this moment, once the row's HMAC verifies under it."""
        policy = LoadPolicy.read(self._now(), meta)
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
            with memory.Measured() as built:
                engine, payload_bytes = later()
            if (built.bytes or 0) > self.max_bytes:
                raise ModelTooLarge(f"model {model.label}'s graph holds {built.bytes / 2**20:.1f} MB once built, "
                                    f"more than a backend may hold (pgml_trigger.model_cache_mb = "
                                    f"{self.max_bytes // 2**20})")
        except PgmlTriggerError as exc:
            self._now().warn(f"pgml_trigger: {exc.message}; model {model.label} goes on scoring with its own "
                             "payload")
            return
        seconds = time.perf_counter() - started
        with memory.Measured() as swapped:  # the own payload's memory goes back, unless rows with a missing value
            if model.missing_value_engine is not None:  # keep it
                model.keep_missing_value_engine(model.engine)
            model.engine = engine
            del engine
        self._add_memory(model, (built.bytes or 0) + (swapped.bytes or 0))
        model.payload_bytes = payload_bytes
        model.load_seconds += seconds
        model.load_stages = {**model.load_stages, **{f"graph {stage}": spent for stage, spent in self._stages.items()}}
        self._stages = {}
        self.counters.load_seconds[model.name, model.version] += seconds

    def _measured_engine(self, model: LoadedModel, meta: ModelMeta, quiet: bool) -> SklearnEngine:
        """The own payload of a model scored by its graph, for its first row with a missing value."""
        with memory.Measured() as added:
            engine = self._engine_now(meta, Engine.OWN_PAYLOAD, quiet)[0]
        self._add_memory(model, added.bytes or 0)
        return engine

    def _add_memory(self, model: LoadedModel, added: int) -> None:
        """Count what a model's later engine changed of its memory; others may have to go (a model loaded
        uncached, by doctor(), is not counted)."""
        model.memory_bytes = max(model.memory_bytes + added, 0)
        if self._loaded.get(model.key) is model:
            self._loaded_bytes = sum(held.memory_bytes for held in self._loaded.values())
            self._evict(keep=model.key)
            self._count_memory()

    def _count_memory(self) -> None:
        """What counters() sums over running backends: the memory of the models held now."""
        self.counters.memory = {(held.name, held.version): held.memory_bytes for held in self._loaded.values()}

    def _graph_engine(self, meta: ModelMeta, label: str) -> tuple[OnnxEngine, int]:
        payload = self._payload(meta, label, compiled=True)
        return self._onnx_engine(label, payload, meta, "compiled payload"), len(payload)

    def _own_engine(self, meta: ModelMeta, label: str, policy: LoadPolicy, quiet: bool) -> tuple[SklearnEngine, int]:
        """The model's own payload deserialized, once the policy allows its format (load_plan.allow)."""
        difference = load_plan.check_versions(meta, policy)
        if difference is not None and not quiet and (meta.name, meta.version) not in self._version_warned:
            self._version_warned.add((meta.name, meta.version))
            self._now().warn(f"pgml_trigger: {difference}; its predictions may differ from the ones checked "
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
        """The model's own payload or its compiled one, once it matches the sha256 recorded at upload: fetched
        through SPI, and written to the server's file of it; in a parallel query, read from that file."""
        sha256, what = (meta.compiled_sha256, "compiled payload") if compiled else (meta.sha256, "payload")
        if parallel.in_parallel_mode():
            try:
                payload = self._timed("read file", self.files.read, sha256)
            except ModelCorrupted as exc:
                raise ModelCorrupted(f"model {label}: {exc.message}; a parallel query cannot fetch its {what} "
                                     "again", hint=_FILE_HINT) from None
            if payload is None:
                raise ModelLoadFailed(f"model {label}: its {what} is not on this server's disk, where a parallel "
                                      "query loads it from", hint=_FILE_HINT)
            return payload
        # Through SPI, though the file may be there: a stored payload that no longer matches is found at once.
        payload = self._timed("fetch", self.catalog.payload, meta.name, meta.version, compiled)
        if self._timed("sha256", formats.sha256, payload) != sha256:
            raise ModelCorrupted(f"model {label}: the stored {what} does not match its sha256 {sha256}; "
                                 "refusing to load it", hint="upload the model again")
        if not self.files.holds(sha256):
            self._timed("write file", self.files.write, sha256, payload)
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
        """The least recently used models go until those held fit pgml_trigger.model_cache_mb (memory_bytes)."""
        while self._loaded_bytes > self.max_bytes and len(self._loaded) > 1:
            key, victim = next(iter(self._loaded.items()))
            if key == keep:
                break
            del self._loaded[key]
            self._loaded_bytes -= victim.memory_bytes
            self._refs = {ref: model for ref, model in self._refs.items() if model is not victim}


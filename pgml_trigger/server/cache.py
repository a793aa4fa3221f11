"""The per-backend model cache.

A model is deserialized once per backend and kept, least recently used first
out, within ``max_bytes`` of payload. What a reference ('churn',
'churn@staging') points to is remembered per catalog generation: the
generation is a counter bumped in the same transaction as every change to
models, aliases and attachments, and it is read at most once per SQL
statement (the callers pass ``statement_timestamp()``), so a new version, an
alias move or a deleted model is seen by every open session on its next
statement.
"""

from __future__ import annotations

import functools
from collections import Counter, OrderedDict

from .. import formats
from ..errors import AttachmentStale, ModelCorrupted, ModelLoadFailed
from .catalog import Attachment, Catalog, ModelMeta
from .engines import OnnxEngine, SklearnEngine
from .scoring import LoadedModel


class ModelCache:
    def __init__(self, catalog: Catalog, max_bytes: int):
        self.catalog = catalog
        self.max_bytes = max_bytes
        self._clock = None
        self._generation = None
        self._refs: dict[str, LoadedModel] = {}
        self._attachments: dict[int, Attachment] = {}
        self._loaded: OrderedDict[tuple, LoadedModel] = OrderedDict()
        self._loaded_bytes = 0
        self.load_counts: Counter[tuple[str, int]] = Counter()

    def sync(self, clock) -> None:
        """Forget resolved references if the catalog changed since the last statement."""
        if clock == self._clock:
            return
        generation = self.catalog.generation()
        self._clock = clock
        if generation != self._generation:
            self._generation = generation
            self._refs.clear()
            self._attachments.clear()

    def catalog_changed(self) -> None:
        """This backend itself changed the catalog: look again on the next call."""
        self._clock = None

    def model(self, model_ref: str) -> LoadedModel:
        model = self._refs.get(model_ref)
        if model is None:
            model = self._refs[model_ref] = self._fetch(self.catalog.resolve(model_ref))
        self._loaded.move_to_end(model.key)
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

    def _fetch(self, meta: ModelMeta) -> LoadedModel:
        key = (meta.name, meta.version, meta.sha256)
        model = self._loaded.get(key)
        if model is None:
            model = self._load(meta)
            self._loaded[key] = model
            self._loaded_bytes += model.payload_bytes
            self._evict(keep=key)
        return model

    def _load(self, meta: ModelMeta) -> LoadedModel:
        label = f"{meta.name}@{meta.version}"
        missing_value_engine = None
        if meta.compiled_format == "onnx" and _onnxruntime_available():
            payload = self._verified(label, self.catalog.compiled_payload(meta.name, meta.version),
                                     meta.compiled_sha256, "compiled payload")
            try:
                engine = OnnxEngine(payload, meta.schema, meta.classes)
            except Exception as exc:  # a graph this onnxruntime cannot run: report it, never crash the backend
                raise ModelLoadFailed(f"model {label}: onnxruntime cannot load its compiled payload: "
                                      f"{type(exc).__name__}: {exc}") from exc
            if meta.schema.accepts_nan and not meta.compiled_handles_nan:
                missing_value_engine = lambda: self._sklearn_engine(meta, label)[0]  # noqa: E731
            payload_bytes = len(payload)
        else:
            engine, payload_bytes = self._sklearn_engine(meta, label)
        self.load_counts[meta.name, meta.version] += 1
        return LoadedModel(name=meta.name, version=meta.version, sha256=meta.sha256, task=meta.task,
                           classes=meta.classes, schema=meta.schema, engine=engine, payload_bytes=payload_bytes,
                           missing_value_engine=missing_value_engine)

    def _sklearn_engine(self, meta: ModelMeta, label: str) -> tuple[SklearnEngine, int]:
        payload = self._verified(label, self.catalog.payload(meta.name, meta.version), meta.sha256, "payload")
        return SklearnEngine(self._deserialize(label, payload, meta.format), meta.schema), len(payload)

    @staticmethod
    def _verified(label: str, payload: bytes, sha256: str, what: str) -> bytes:
        if formats.sha256(payload) != sha256:
            raise ModelCorrupted(f"model {label}: the stored {what} does not match its sha256 {sha256}; "
                                 "refusing to load it", hint="upload the model again")
        return payload

    @staticmethod
    def _deserialize(label: str, payload: bytes, fmt: str):
        try:
            return formats.load(payload, fmt)
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


@functools.cache
def _onnxruntime_available() -> bool:
    """A server environment without onnxruntime still scores compiled models, on their scikit-learn payload."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True

"""The queries the server runtime sends through SPI, each prepared once per backend."""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..sqlfiles import query
from .features import FeatureSchema


@dataclass(frozen=True)
class ModelMeta:
    """A models row without its payload: what a model reference resolved to."""

    name: str
    version: int
    sha256: str
    format: str
    task: str
    classes: list | None
    schema: FeatureSchema
    payload_bytes: int


@dataclass(frozen=True)
class Attachment:
    id: int
    target: str
    model_ref: str
    feature_names: tuple[str, ...]
    columns: tuple[str, ...]


class Catalog:
    def __init__(self, plpy):
        self._plpy = plpy
        self._plans: dict[str, object] = {}
        self._fetched: bytes | None = None

    def _execute(self, name: str, argtypes: list[str], args: list):
        plan = self._plans.get(name)
        if plan is None:
            plan = self._plans[name] = self._plpy.prepare(query(name), argtypes)
        return self._plpy.execute(plan, args)

    def generation(self) -> int:
        return self._execute("server_generation", [], [])[0]["generation"]

    def resolve(self, model_ref: str) -> ModelMeta:
        row = self._execute("server_resolve", ["text"], [model_ref])[0]
        schema = FeatureSchema(names=tuple(row["feature_names"]), types=tuple(row["feature_types"]),
                               accepts_nan=row["accepts_nan"], input_kind=row["input_kind"])
        return ModelMeta(name=row["name"], version=row["version"], sha256=row["sha256"], format=row["format"],
                         task=row["task"], classes=json.loads(row["classes"]) if row["classes"] else None,
                         schema=schema, payload_bytes=row["payload_bytes"])

    def payload(self, name: str, version: int) -> bytes:
        """Through pgml_trigger._fetch_payload(), which may read the payload when the caller may not."""
        self._fetched = None
        self._execute("server_payload", ["text", "int4"], [name, version])
        payload, self._fetched = self._fetched, None
        return payload

    def fetch_payload(self, name: str, version: int) -> int:
        """The body of pgml_trigger._fetch_payload(): keep the payload for payload(), give SQL its length."""
        self._fetched = self._execute("server_payload_read", ["text", "int4"], [name, version])[0]["payload"]
        return len(self._fetched)

    def attachment(self, attachment_id: int) -> Attachment | None:
        rows = self._execute("server_attachment", ["int4"], [attachment_id])
        if not rows:
            return None
        row = rows[0]
        return Attachment(id=attachment_id, target=row["target"], model_ref=row["model_ref"],
                          feature_names=tuple(row["feature_names"]), columns=tuple(row["columns"]))

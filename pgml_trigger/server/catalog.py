"""The queries the server runtime sends through SPI, each prepared once per backend."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from ..schema import FeatureInput, FeatureSchema
from ..sqlfiles import query


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
    payload_bytes: int  # of the payload that is loaded: the compiled one when there is one
    compiled_format: str | None
    compiled_sha256: str | None
    compiled_handles_nan: bool | None


@dataclass(frozen=True)
class Attachment:
    id: int
    target: str
    output_column: str
    model_ref: str
    feature_names: tuple[str, ...]
    columns: tuple[str, ...]
    output: str  # "value" or "label"
    mode: str  # "row" or "statement"
    log: bool
    challenger: str | None
    explain_column: str | None = None  # where the trigger writes explain() of its prediction (reasons)
    explain_top_k: int | None = None


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

    def setting(self, name: str) -> str | None:
        return self._execute("server_setting", ["text"], [name])[0]["value"]

    def database(self) -> tuple[int, bool]:
        """This database's oid, and whether the server is a standby."""
        row = self._execute("server_database_oid", [], [])[0]
        return row["oid"], row["in_recovery"]

    def generation(self) -> int:
        return self._execute("server_generation", [], [])[0]["generation"]

    def resolve(self, model_ref: str) -> ModelMeta:
        row = self._execute("server_resolve", ["text"], [model_ref])[0]
        schema = FeatureSchema(names=_interned(row["feature_names"]), types=tuple(row["feature_types"]),
                               inputs=tuple(map(FeatureInput.from_json, json.loads(row["feature_inputs"]))),
                               input_kind=row["input_kind"])
        return ModelMeta(name=row["name"], version=row["version"], sha256=row["sha256"], format=row["format"],
                         task=row["task"], classes=json.loads(row["classes"]) if row["classes"] else None,
                         schema=schema, payload_bytes=row["payload_bytes"],
                         compiled_format=row["compiled_format"], compiled_sha256=row["compiled_sha256"],
                         compiled_handles_nan=row["compiled_handles_nan"])

    def payload(self, name: str, version: int, compiled: bool = False) -> bytes:
        """The (compiled) payload, through pgml_trigger._fetch_payload(), which may read it when the caller may not."""
        self._fetched = None
        self._execute("server_payload", ["text", "int4", "bool"], [name, version, compiled])
        payload, self._fetched = self._fetched, None
        return payload

    def fetch_payload(self, name: str, version: int, compiled: bool) -> int:
        """The body of pgml_trigger._fetch_payload(): keep the payload for payload(), give SQL its length."""
        self._fetched = self._execute("server_payload_read", ["text", "int4", "bool"],
                                      [name, version, compiled])[0]["payload"]
        return len(self._fetched)

    def explainer(self, name: str, version: int) -> tuple[bytes | None, str | None, dict | None]:
        """(explainer, its sha256, explainer_info) of a version, through pgml_trigger._fetch_explainer(), which may
        read them when the caller may not."""
        self._fetched = None
        self._execute("server_explainer", ["text", "int4"], [name, version])
        fetched, self._fetched = self._fetched, None
        return fetched

    def fetch_explainer(self, name: str, version: int) -> int:
        """The body of pgml_trigger._fetch_explainer(): keep the explainer for explainer(), give SQL its length."""
        row = self._execute("server_explainer_read", ["text", "int4"], [name, version])[0]
        self._fetched = (row["explainer"], row["explainer_sha256"],
                         json.loads(row["explainer_info"]) if row["explainer_info"] else None)
        return len(row["explainer"] or b"")

    def attachment(self, attachment_id: int) -> Attachment | None:
        rows = self._execute("server_attachment", ["int4"], [attachment_id])
        if not rows:
            return None
        row = rows[0]
        return Attachment(id=attachment_id, target=row["target"], output_column=row["output_column"],
                          model_ref=row["model_ref"], feature_names=_interned(row["feature_names"]),
                          columns=tuple(row["columns"]), output=row["output"], mode=row["mode"], log=row["log"],
                          challenger=row["challenger"], explain_column=row["explain_column"],
                          explain_top_k=row["explain_top_k"])

    def log_predictions(self, name: str, version: int, role: str, target: str | None, output_column: str | None,
                        row_keys: list, predictions: list, labels: list, features: list,
                        reasons: list | None = None) -> None:
        """Rows of pgml_trigger.prediction_log, one per element of the lists (callers run as the log's owner)."""
        self._execute("server_log_insert", ["text", "int4", "text", "text", "text", "text[]", "float8[]", "text[]",
                                            "text[]", "text[]"],
                      [name, version, role, target, output_column, row_keys, predictions, labels, features,
                       reasons if reasons is not None else [None] * len(row_keys)])

    def drift_model(self, model_ref: str) -> dict:
        return dict(self._execute("server_drift_model", ["text"], [model_ref])[0])

    def columns_of(self, relation: str) -> dict[str, str]:
        """Column name -> PostgreSQL type category of a table or view."""
        return {row["name"]: row["category"] for row in self._execute("server_drift_columns", ["text"], [relation])}

    def stream(self, text: str, argtypes: list[str], args: list, chunk: int):
        """Rows of a one-off query, ``chunk`` at a time, through a cursor."""
        cursor = self._plpy.cursor(self._plpy.prepare(text, argtypes), args)
        while True:
            rows = cursor.fetch(chunk)
            if not rows:
                return
            yield rows

    def load_checks(self, name: str, version: int) -> dict:
        """The row's HMAC and library versions, and the database's load policy (server_load_checks.sql)."""
        return dict(self._execute("server_load_checks", ["text", "int4"], [name, version])[0])

    def stored_payloads(self) -> list[tuple[str, int, bool, bool]]:
        """Every model version, and whether its payload and compiled payload still match their sha256."""
        return [(row["name"], row["version"], row["payload_intact"], row["compiled_intact"])
                for row in self._execute("server_payload_checks", [], [])]

    def warn(self, message: str) -> None:
        self._plpy.warning(message)


def _interned(names: list[str]) -> tuple[str, ...]:
    """Feature names as interned strings: a row trigger compares its attachment's with its model's on every row,
    and equal tuples of interned strings compare by identity, element by element."""
    return tuple(sys.intern(name) for name in names)

-- $1: a model reference ('churn', 'churn@3', 'churn@staging'); resolve_model raises when it names nothing.
-- model_catalog, not models: this runs as the caller, who may not read payloads.
SELECT m.name, m.version, m.sha256, m.format, m.task, m.classes::text AS classes,
       m.feature_names, m.feature_types, m.feature_inputs::text AS feature_inputs, m.input_kind,
       m.compiled_format, m.compiled_sha256, m.compiled_handles_nan,
       coalesce(m.compiled_bytes, m.payload_bytes) AS payload_bytes
FROM pgml_trigger.resolve_model($1) AS r
JOIN pgml_trigger.model_catalog AS m ON m.name = r.name AND m.version = r.version

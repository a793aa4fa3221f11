-- $1: a model reference ('churn', 'churn@3', 'churn@staging'); resolve_model raises when it names nothing.
SELECT m.name, m.version, m.sha256, m.format, m.task, m.classes::text AS classes,
       m.feature_names, m.feature_types, m.accepts_nan, m.input_kind,
       m.compiled_format, m.compiled_sha256, m.compiled_handles_nan,
       octet_length(coalesce(m.compiled_payload, m.payload)) AS payload_bytes
FROM pgml_trigger.resolve_model($1) AS r
JOIN pgml_trigger.models AS m ON m.name = r.name AND m.version = r.version

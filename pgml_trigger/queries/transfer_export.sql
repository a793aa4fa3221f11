-- The whole models row as JSON (bytea columns in hex), for pgml-trigger export.
SELECT to_jsonb(m) AS row
FROM pgml_trigger.resolve_model(%(ref)s) AS r
JOIN pgml_trigger.models AS m ON m.name = r.name AND m.version = r.version

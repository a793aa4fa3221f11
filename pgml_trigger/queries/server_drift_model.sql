-- model_catalog, not models: this runs as the caller, who may not read payloads.
SELECT m.name, m.version, m.feature_names, m.feature_types, m.training_profile::text AS training_profile
FROM pgml_trigger.resolve_model($1) AS r
JOIN pgml_trigger.model_catalog AS m ON m.name = r.name AND m.version = r.version

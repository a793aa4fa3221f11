SELECT m.name, m.version, m.feature_names, m.feature_types, m.training_profile::text AS training_profile
FROM pgml_trigger.resolve_model($1) AS r
JOIN pgml_trigger.models AS m ON m.name = r.name AND m.version = r.version

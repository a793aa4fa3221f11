-- model_catalog, not models: this runs as the caller, who may not read payloads.
-- What a load checks besides the checksums: the DBA's policy (database-level settings as ALTER DATABASE
-- set them, never the session's) and what the model row records about how it was saved.
SELECT m.payload_hmac, m.sklearn_version, m.numpy_version, m.library_versions,
       pgml_trigger._database_setting('pgml_trigger.allowed_formats') AS allowed_formats,
       pgml_trigger._database_setting('pgml_trigger.hmac_key_file') AS hmac_key_file,
       pgml_trigger._database_setting('pgml_trigger.strict_versions') AS strict_versions,
       pgml_trigger._database_setting('pgml_trigger.defer_graph_mb') AS defer_graph_mb
FROM pgml_trigger.model_catalog AS m
WHERE m.name = $1 AND m.version = $2

-- model_catalog, not models: this runs as the caller, who may not read payloads.
SELECT name, version FROM pgml_trigger.model_catalog ORDER BY name, version

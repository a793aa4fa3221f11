SELECT pgml_trigger.version() AS version

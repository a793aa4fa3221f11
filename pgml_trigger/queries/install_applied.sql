SELECT version, checksum FROM pgml_trigger.migrations

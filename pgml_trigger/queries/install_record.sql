INSERT INTO pgml_trigger.migrations (version, checksum) VALUES (%(version)s, %(checksum)s)

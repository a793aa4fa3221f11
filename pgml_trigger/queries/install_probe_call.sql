SELECT pg_temp.pgml_trigger_probe()

SELECT name, version FROM pgml_trigger.models ORDER BY name, version

SELECT count(*) FROM pgml_trigger.models

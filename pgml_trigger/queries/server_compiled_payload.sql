SELECT compiled_payload FROM pgml_trigger.models WHERE name = $1 AND version = $2

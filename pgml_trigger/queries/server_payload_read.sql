-- Runs inside pgml_trigger._fetch_payload(), as the owner of pgml_trigger.models.
SELECT payload FROM pgml_trigger.models WHERE name = $1 AND version = $2

-- Runs inside pgml_trigger._fetch_payload(), as the owner of pgml_trigger.models.
SELECT CASE WHEN $3 THEN compiled_payload ELSE payload END AS payload
FROM pgml_trigger.models
WHERE name = $1 AND version = $2

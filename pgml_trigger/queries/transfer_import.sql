-- Columns convert from JSON to their types; the models_before_insert trigger
-- gives the row the next version of its name and checks payload against sha256.
INSERT INTO pgml_trigger.models
SELECT * FROM json_populate_record(NULL::pgml_trigger.models, %(row)s::json)
RETURNING name, version

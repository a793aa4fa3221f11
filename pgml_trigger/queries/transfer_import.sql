-- Composed in transfer.py: {columns} are the stored (not generated) columns of the exported row.
-- Values convert from JSON to their column types; the models_before_insert trigger gives the
-- row the next version of its name and checks the payload against its sha256.
INSERT INTO pgml_trigger.models ({columns})
SELECT {columns} FROM json_populate_record(NULL::pgml_trigger.models, %(row)s::json)
RETURNING name, version

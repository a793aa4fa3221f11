-- Composed in transfer.py: {columns} are the stored (not generated) columns of the exported row, then
-- the payloads; {values} the row's columns as json_populate_record() converts them. The row comes with
-- version 0: the models_before_insert trigger gives it the next version of its name, stamps it, and
-- checks the payloads against their sha256.
INSERT INTO pgml_trigger.models ({columns})
SELECT {values}, %(payload)b, %(compiled_payload)b
FROM json_populate_record(NULL::pgml_trigger.models, %(row)s::json) AS r
RETURNING name, version

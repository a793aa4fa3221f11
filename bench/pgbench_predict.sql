-- pgbench script: score one random row by id, as the HTTP service does.
-- bench/service.py fills in the model, the feature columns and the table.
\set id random(1, :rows)
SELECT pgml_trigger.predict('{model}', ARRAY[{columns}]) FROM {table} WHERE id = :id;

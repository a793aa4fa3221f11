-- The columns of pgml_trigger.models in this database's schema version, and which are generated.
SELECT attname::text AS name, attgenerated <> '' AS generated
FROM pg_catalog.pg_attribute
WHERE attrelid = 'pgml_trigger.models'::regclass AND attnum > 0 AND NOT attisdropped

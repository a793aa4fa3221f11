SELECT attname FROM pg_catalog.pg_attribute
WHERE attrelid = 'pgml_trigger.models'::regclass AND attnum > 0 AND NOT attisdropped

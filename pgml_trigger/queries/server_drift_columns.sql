-- The columns of the drift source, with their type categories (N numeric, S text, D date/time).
SELECT a.attname::text AS name, t.typcategory AS category
FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped

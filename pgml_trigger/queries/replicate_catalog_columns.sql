-- The columns of the published tables: a subscriber must have every column the registry sends.
SELECT c.relname, a.attname
FROM pg_catalog.pg_attribute AS a
JOIN pg_catalog.pg_class AS c ON c.oid = a.attrelid
WHERE c.relnamespace = 'pgml_trigger'::regnamespace
  AND c.relname IN ('models', 'aliases', 'alias_history')
  AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''
ORDER BY c.relname, a.attnum

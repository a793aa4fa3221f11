-- The version of the extension in this database (NULL: none).
SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pgml_trigger') AS extension_version

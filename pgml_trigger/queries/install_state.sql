-- The version of the extension in this database (NULL: none), and whether the 0.1.0 installer's
-- migration ledger set it up instead.
SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pgml_trigger') AS extension_version,
       to_regclass('pgml_trigger.migrations') IS NOT NULL AS ledger

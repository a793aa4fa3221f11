-- Whether this database checks uploads in the server (sql/0009_frameworks.sql); an older schema does not.
SELECT to_regprocedure('pgml_trigger._check_version(text, integer, jsonb)') IS NOT NULL

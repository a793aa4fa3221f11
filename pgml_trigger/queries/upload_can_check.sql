-- Whether this database checks uploads in the server (_check_version, sql/observability.sql); 0.1.0 does not.
SELECT to_regprocedure('pgml_trigger._check_version(text, integer, jsonb)') IS NOT NULL

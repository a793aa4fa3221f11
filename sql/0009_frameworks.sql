-- No upload the server cannot score (issue 9): the uploader calls _check_version() on the version it has
-- just inserted, inside its own transaction, before COMMIT. The server loads it the way predict() does (the
-- format policy, HMAC, checksums, the libraries models.library_versions records, deserialization) and
-- scores the rows given; an error here rolls the upload back, so the version is never stored.
--
-- Applied after the earlier migrations, never edited once applied. The body is two lines, as in 0001:
-- bootstrap, then call server/entry.py.

CREATE FUNCTION pgml_trigger._check_version(name text, version integer, rows jsonb)
RETURNS text
LANGUAGE plpython3u VOLATILE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].check_version(name, version, rows)
$$;
COMMENT ON FUNCTION pgml_trigger._check_version(text, integer, jsonb) IS
    'load a model version as predict() would and score rows (a JSON array of objects keyed by feature name, '
    'or null to only load it); returns the scoring path. Called by the uploader before its transaction commits';

-- Uploaders are pgml_trigger_admin (0003_trust.sql), who insert into models.
REVOKE ALL ON FUNCTION pgml_trigger._check_version(text, integer, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgml_trigger._check_version(text, integer, jsonb) TO pgml_trigger_admin;

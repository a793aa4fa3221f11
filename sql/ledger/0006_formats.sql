-- pgml_trigger: model formats besides joblib (skops, onnx), the DBA's load policy, HMAC-signed payloads,
-- library versions checked at load, and doctor().
--
-- Applied after the earlier migrations, never edited once applied. PL/Python bodies are two lines, as
-- in 0001: bootstrap, then call server/entry.py.

------------------------------------------------------------------------------
-- Formats: joblib (a pickle), skops (no pickle, an allow-list of types), onnx (a graph, no Python object).
------------------------------------------------------------------------------

ALTER TABLE pgml_trigger.models
    DROP CONSTRAINT models_format_known,
    ADD CONSTRAINT models_format_known CHECK (format IN ('joblib', 'skops', 'onnx')),
    ADD COLUMN skops_version       text,
    ADD COLUMN onnxruntime_version text,
    -- HMAC-SHA256 (hex) over format, sha256 and compiled_sha256 (pgml_trigger/formats.py signature()), with
    -- the key in the file pgml_trigger.hmac_key_file names; required, and checked at every load, when that is set.
    ADD COLUMN payload_hmac        text CONSTRAINT models_payload_hmac_hex CHECK (payload_hmac ~ '^[0-9a-f]{64}$');
COMMENT ON COLUMN pgml_trigger.models.payload_hmac IS
    'HMAC-SHA256 of format, sha256 and compiled_sha256 under the database''s key (pgml_trigger.hmac_key_file)';

-- Like the rest of a model row, what authenticates it never changes.
CREATE FUNCTION pgml_trigger._models_formats_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.payload_hmac, NEW.skops_version, NEW.onnxruntime_version) IS DISTINCT FROM
       (OLD.payload_hmac, OLD.skops_version, OLD.onnxruntime_version) THEN
        RAISE EXCEPTION 'model "%@%" cannot be changed; only its description can', OLD.name, OLD.version
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'upload a new version instead';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_formats_before_update BEFORE UPDATE ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._models_formats_before_update();

------------------------------------------------------------------------------
-- Database-level settings the DBA sets with ALTER DATABASE ... SET, read from the catalog like
-- pgml_trigger.python_path (0001): a session's SET cannot loosen them.
--   pgml_trigger.allowed_formats  formats a load may deserialize (default 'joblib,skops,onnx')
--   pgml_trigger.hmac_key_file    file with the HMAC key (readable by the server's OS user only)
--   pgml_trigger.strict_versions  on: refuse models saved with another scikit-learn than the server's
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger._database_setting(setting_name text) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT substr(setting, length(setting_name) + 2)
    FROM pg_catalog.pg_db_role_setting AS s, unnest(s.setconfig) AS setting
    WHERE s.setdatabase = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
      AND s.setrole = 0
      AND starts_with(setting, setting_name || '=')
$$;
COMMENT ON FUNCTION pgml_trigger._database_setting(text) IS
    'a setting as ALTER DATABASE set it for this database (not as the session sees it), or NULL';

-- With a key configured, an upload without an HMAC is refused at once; whether the HMAC is right is
-- checked by the server at every load (the key file is for the server's OS user only).
CREATE FUNCTION pgml_trigger._models_hmac_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.payload_hmac IS NULL AND pgml_trigger._database_setting('pgml_trigger.hmac_key_file') IS NOT NULL THEN
        RAISE EXCEPTION 'model "%" has no payload_hmac, and this database requires one', NEW.name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'upload with the database''s key: upload(..., hmac_key=...) or PGML_TRIGGER_HMAC_KEY_FILE';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_hmac_before_insert BEFORE INSERT ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._models_hmac_before_insert();

------------------------------------------------------------------------------
-- doctor(): would each model version load in this database, and with which libraries?
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger.doctor()
RETURNS TABLE (name text, version integer, format text, scoring_path text, allowed boolean, loads boolean,
               error text, sklearn_recorded text, sklearn_server text, numpy_recorded text, numpy_server text,
               verdict text)
LANGUAGE plpython3u VOLATILE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].doctor()
$$;
COMMENT ON FUNCTION pgml_trigger.doctor() IS
    'per model version: allowed by the format policy, loads here, recorded vs server library versions, verdict';

------------------------------------------------------------------------------
-- What pgml_trigger_user may read and run of this (roles: 0003_trust.sql).
------------------------------------------------------------------------------

CREATE OR REPLACE VIEW pgml_trigger.model_catalog AS
SELECT m.name, m.version, m.format, m.sha256, octet_length(m.payload)::bigint AS payload_bytes, m.task, m.classes,
       m.feature_names, m.feature_types, m.accepts_nan, m.input_kind, m.python_version, m.sklearn_version,
       m.numpy_version, m.joblib_version, m.description, m.created_at, m.created_by,
       m.scoring_path, m.compiled_format, m.compiled_sha256, octet_length(m.compiled_payload)::bigint AS compiled_bytes,
       m.compiled_handles_nan, m.agreement, m.metrics, m.training_profile,
       m.payload_hmac, m.skops_version, m.onnxruntime_version
FROM pgml_trigger.models AS m;

REVOKE ALL ON FUNCTION pgml_trigger._database_setting(text), pgml_trigger.doctor(),
    pgml_trigger._models_formats_before_update(), pgml_trigger._models_hmac_before_insert() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgml_trigger._database_setting(text), pgml_trigger.doctor() TO pgml_trigger_user;

------------------------------------------------------------------------------
-- access.sql: who may do what. Concatenated last, so it sees every object.
--
-- Two roles, shared by every database of the cluster (created here when absent; DROP EXTENSION
-- leaves them, other databases may use them):
--   pgml_trigger_user   scores (predict*, score, resolve_model, version, cache_info), reads model
--                       metadata (model_catalog, model_versions, aliases, alias_history, attachments)
--                       but never a payload, and attaches models to tables it owns;
--   pgml_trigger_admin  a pgml_trigger_user that also uploads (INSERT into models), deletes models
--                       and aliases, sets and rolls back aliases, reads the prediction log, and
--                       attaches to tables it owns or holds TRIGGER on. A payload is a pickle the
--                       server loads: an admin can run code as the database server's OS user.
-- Nothing in the schema is granted to PUBLIC. A role that writes to a table with a scoring trigger
-- needs pgml_trigger_user (the trigger calls pgml_trigger._score_row as that role).
--
-- The per-row scoring functions stay SECURITY INVOKER, with no SET clause: SET search_path on a
-- function costs about 1 us per call, as much as a fifth of scoring a row. The few queries they send
-- through SPI read what a user may read (catalog_state, aliases, attachments, model_catalog) or go
-- through SECURITY DEFINER functions with a fixed search_path (resolve_model, _fetch_payload,
-- _bootstrap). Every SECURITY DEFINER function sets search_path = pg_catalog, pgml_trigger, pg_temp,
-- so a caller's search_path cannot substitute its own functions or operators.
------------------------------------------------------------------------------

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgml_trigger_user') THEN
        CREATE ROLE pgml_trigger_user NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'pgml_trigger_admin') THEN
        CREATE ROLE pgml_trigger_admin NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- another database's CREATE EXTENSION created it at the same moment
END
$$;
-- A no-op (with a notice) when it is already so.
GRANT pgml_trigger_user TO pgml_trigger_admin;

-- EXECUTE on every overload of the named functions: what a role may call is listed by name, once.
CREATE FUNCTION pgml_trigger._grant_execute(grantee name, function_names text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'pgml_trigger'::regnamespace AND p.proname = ANY (function_names)
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', fn, grantee);
    END LOOP;
END
$$;
COMMENT ON FUNCTION pgml_trigger._grant_execute(name, text[]) IS
    'grant EXECUTE on every overload of the named pgml_trigger functions (for access.sql and update scripts)';

REVOKE ALL ON SCHEMA pgml_trigger FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgml_trigger FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgml_trigger FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgml_trigger FROM PUBLIC;

GRANT USAGE ON SCHEMA pgml_trigger TO pgml_trigger_user;

-- pgml_trigger_user: metadata, never a payload.
GRANT SELECT ON pgml_trigger.model_catalog, pgml_trigger.model_versions, pgml_trigger.aliases,
                pgml_trigger.alias_history, pgml_trigger.attachments, pgml_trigger.catalog_state
    TO pgml_trigger_user;
-- The metadata columns of models themselves too (score() reads them as the caller).
GRANT SELECT (name, version, format, sha256, task, classes, feature_names, feature_types, accepts_nan, input_kind,
              python_version, sklearn_version, numpy_version, joblib_version, description, created_at, created_by,
              scoring_path, compiled_format, compiled_sha256, compiled_handles_nan, agreement,
              library_versions, source_uri, mlflow_version)
    ON pgml_trigger.models TO pgml_trigger_user;
SELECT pgml_trigger._grant_execute('pgml_trigger_user', ARRAY[
    -- scoring
    'predict', 'predict_label', 'predict_proba', 'predict_batch', 'score', 'loaded_scoring_path',
    '_predict', '_predict_label', '_predict_proba', '_predict_batch', '_predict_label_batch', '_loaded_scoring_path',
    '_predict_logged', '_fetch_payload', '_bootstrap', '_column_type', '_feature_columns',
    'explain', 'explain_batch', '_explain', '_explain_batch', '_fetch_explainer', '_check_explain_column',
    -- models and scoring triggers
    'resolve_model', 'attach', 'detach', '_attach', '_detach', '_require_same_features',
    '_score_row', '_label_row', '_score_row_logged', '_label_row_logged', '_score_statement', '_may_score',
    '_explain_row',
    'rewrite_row_triggers',
    -- observability
    'version', 'cache_info', 'warm_up', '_warm_up', 'counters', 'drift', 'doctor', '_payload_checks',
    '_database_setting']);

-- pgml_trigger_admin: uploads, deletes, aliases, the prediction log.
GRANT SELECT, INSERT, DELETE ON pgml_trigger.models TO pgml_trigger_admin;
GRANT UPDATE (description, metrics, training_profile) ON pgml_trigger.models TO pgml_trigger_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON pgml_trigger.aliases TO pgml_trigger_admin;
GRANT UPDATE (undone, kind) ON pgml_trigger.alias_history TO pgml_trigger_admin;
GRANT SELECT ON pgml_trigger.prediction_log TO pgml_trigger_admin;
-- Uploaders run the server's load check on the version they insert (observability.sql).
SELECT pgml_trigger._grant_execute('pgml_trigger_admin', ARRAY['set_alias', 'rollback', 'delete_model', '_check_version',
    '_triggers_using']);

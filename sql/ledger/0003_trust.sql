-- pgml_trigger: who may do what.
--
-- Two roles, shared by every database of the cluster:
--   pgml_trigger_user   scores (predict*, resolve_model, version, cache_info),
--                       reads model metadata (the model_catalog view, aliases,
--                       attachments) but never a payload, and attaches models
--                       to tables it owns;
--   pgml_trigger_admin  a pgml_trigger_user that also uploads (INSERT into
--                       models), deletes models and aliases, sets aliases,
--                       and attaches to tables it owns or holds TRIGGER on.
--                       A payload is a pickle the server loads: an admin can
--                       run code as the database server's OS user.
-- Nothing in the schema is granted to PUBLIC. A role that writes to a table
-- with a scoring trigger needs pgml_trigger_user (the trigger calls
-- pgml_trigger._score_row as that role).
--
-- The per-row scoring functions stay SECURITY INVOKER, with no SET clause:
-- SET search_path on a function costs about 1 us per call, as much as a
-- fifth of scoring a row. The few queries they send through SPI read what a
-- user may read (catalog_state, aliases, attachments, model_catalog) or go
-- through SECURITY DEFINER functions with a fixed search_path
-- (resolve_model, _fetch_payload, _bootstrap). Every SECURITY DEFINER
-- function here sets search_path = pg_catalog, pgml_trigger, pg_temp, so a
-- caller's search_path cannot substitute its own functions or operators.

------------------------------------------------------------------------------
-- The roles.
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
    NULL;  -- another database's installer created it at the same moment
END
$$;
-- A no-op (with a notice) when it is already so.
GRANT pgml_trigger_user TO pgml_trigger_admin;

------------------------------------------------------------------------------
-- Which code the server imports: only the database's own setting decides.
-- A caller's search_path must not choose the functions and operators the
-- path is computed with (an unqualified substr() or = in a schema of its own
-- would pick the directory Python imports from).
------------------------------------------------------------------------------

ALTER FUNCTION pgml_trigger._python_path() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION pgml_trigger._bootstrap() SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp;

------------------------------------------------------------------------------
-- Model metadata without the payload.
------------------------------------------------------------------------------

CREATE VIEW pgml_trigger.model_catalog AS
SELECT m.name, m.version, m.format, m.sha256, octet_length(m.payload)::bigint AS payload_bytes, m.task, m.classes,
       m.feature_names, m.feature_types, m.accepts_nan, m.input_kind, m.python_version, m.sklearn_version,
       m.numpy_version, m.joblib_version, m.description, m.created_at, m.created_by,
       m.scoring_path, m.compiled_format, m.compiled_sha256, octet_length(m.compiled_payload)::bigint AS compiled_bytes,
       m.compiled_handles_nan, m.agreement
FROM pgml_trigger.models AS m;
COMMENT ON VIEW pgml_trigger.model_catalog IS 'pgml_trigger.models without the payload: what pgml_trigger_user may read';

-- Resolving a reference reads models and aliases as their owner.
ALTER FUNCTION pgml_trigger.resolve_model(text) SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp;

-- The only way the server reads a payload. It runs as the table owner and
-- hands the bytes to the calling Python code in this backend
-- (Catalog.payload); SQL gets only their length.
CREATE FUNCTION pgml_trigger._fetch_payload(name text, version integer, compiled boolean) RETURNS bigint
LANGUAGE plpython3u STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].fetch_payload(name, version, compiled)
$$;

-- Writers of models, aliases and attachments bump the generation as its owner.
ALTER FUNCTION pgml_trigger._catalog_changed() SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp;
-- Fires for every DROP by anyone; it only forgets attachments whose trigger is gone.
ALTER FUNCTION pgml_trigger._forget_dropped_attachments()
    SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp;

------------------------------------------------------------------------------
-- attach and detach: SECURITY INVOKER wrappers that name the table as the
-- caller sees it, over SECURITY DEFINER functions that check the session's
-- rights. Inside a SECURITY DEFINER function current_user is the owner, so
-- the check is made for session_user: the role that logged in, whose rights
-- the session can always return to, so it never allows what the session
-- could not do itself.
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger._require_attach_rights(target regclass, target_name text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF pg_has_role(session_user, (SELECT c.relowner FROM pg_class AS c WHERE c.oid = target), 'USAGE') THEN
        RETURN;
    END IF;
    IF pg_has_role(session_user, 'pgml_trigger_admin', 'USAGE')
       AND has_table_privilege(session_user, target, 'TRIGGER') THEN
        RETURN;
    END IF;
    RAISE EXCEPTION 'role "%" may not attach or detach models on table %', session_user, target_name
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'attach to tables you own; pgml_trigger_admin may also attach where it holds TRIGGER';
END
$$;

-- attach() and detach() themselves, over these checks, are in 0005_observability.sql.

------------------------------------------------------------------------------
-- Privileges.
------------------------------------------------------------------------------

REVOKE ALL ON SCHEMA pgml_trigger FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA pgml_trigger FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgml_trigger FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA pgml_trigger FROM PUBLIC;

GRANT USAGE ON SCHEMA pgml_trigger TO pgml_trigger_user;
GRANT SELECT ON pgml_trigger.model_catalog, pgml_trigger.aliases, pgml_trigger.attachments,
                pgml_trigger.catalog_state TO pgml_trigger_user;
-- Every overload of these names, including ones an earlier migration added.
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'pgml_trigger'::regnamespace
          AND p.proname IN ('predict', 'predict_label', 'predict_proba', 'resolve_model', 'version', 'cache_info',
                            'attach', 'detach', '_attach', '_detach', '_predict', '_predict_label', '_predict_proba',
                            '_score_row', '_label_row', '_bootstrap', '_fetch_payload',
                            'predict_batch', '_predict_batch', '_predict_label_batch', 'score',
                            'loaded_scoring_path', '_loaded_scoring_path')
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pgml_trigger_user', fn);
    END LOOP;
END
$$;

-- The metadata columns of models themselves too (score() reads them as the caller), never a payload.
GRANT SELECT (name, version, format, sha256, task, classes, feature_names, feature_types, accepts_nan, input_kind,
              python_version, sklearn_version, numpy_version, joblib_version, description, created_at, created_by,
              scoring_path, compiled_format, compiled_sha256, compiled_handles_nan, agreement)
    ON pgml_trigger.models TO pgml_trigger_user;

GRANT SELECT, INSERT, DELETE ON pgml_trigger.models TO pgml_trigger_admin;
GRANT UPDATE (description) ON pgml_trigger.models TO pgml_trigger_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON pgml_trigger.aliases TO pgml_trigger_admin;
GRANT EXECUTE ON FUNCTION pgml_trigger.set_alias(text, text, integer) TO pgml_trigger_admin;

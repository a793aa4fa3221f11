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

-- 0001's attach body, with the rights check, a payload-free model read, the
-- session user as created_by, and the generated function kept from PUBLIC.
CREATE FUNCTION pgml_trigger._attach(target regclass, target_name text, model text, output_column text,
                                     features text[])
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
DECLARE
    resolved record;
    m record;
    out_type record;
    col record;
    output text;
    cols text[];
    attachment_id integer;
    fn_name name;
    trg_name name;
    new_values text[] := '{}';
    old_values text[] := '{}';
    by_position text[] := '{}';
    by_name text[] := '{}';
    quoted_cols text[] := '{}';
    all_numeric boolean;
    features_expr text;
    body text;
BEGIN
    IF target IS NULL OR model IS NULL OR output_column IS NULL THEN
        RAISE EXCEPTION 'pgml_trigger.attach() needs a table, a model and an output column'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    PERFORM pgml_trigger._require_attach_rights(target, target_name);
    SELECT * INTO resolved FROM pgml_trigger.resolve_model(model);
    SELECT mm.* INTO m FROM pgml_trigger.model_catalog AS mm
    WHERE mm.name = resolved.name AND mm.version = resolved.version;

    SELECT a.attnum, t.typcategory, format_type(a.atttypid, a.atttypmod) AS type_name INTO out_type
    FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    WHERE a.attrelid = target AND a.attname = output_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of % does not exist', output_column, target_name
            USING ERRCODE = 'undefined_column';
    END IF;
    IF out_type.typcategory = 'N' THEN
        output := 'value';
    ELSIF out_type.typcategory = 'S' AND m.task = 'classification' THEN
        output := 'label';
    ELSIF out_type.typcategory = 'S' THEN
        RAISE EXCEPTION 'model %@% is a regressor; its output column "%" must be numeric, not %',
            m.name, m.version, output_column, out_type.type_name USING ERRCODE = 'datatype_mismatch';
    ELSE
        RAISE EXCEPTION 'output column "%" is %; it must be numeric (prediction) or text (class label)',
            output_column, out_type.type_name USING ERRCODE = 'datatype_mismatch';
    END IF;

    cols := coalesce(features, m.feature_names);
    IF cardinality(cols) IS DISTINCT FROM cardinality(m.feature_names) THEN
        RAISE EXCEPTION 'model %@% expects % features, the features list names %',
            m.name, m.version, cardinality(m.feature_names), coalesce(cardinality(cols), 0)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('features in model order: %s', array_to_string(m.feature_names, ', '));
    END IF;
    all_numeric := NOT ('string' = ANY (m.feature_types));
    FOR i IN 1 .. cardinality(cols) LOOP
        SELECT t.typcategory, format_type(a.atttypid, a.atttypmod) AS type_name INTO col
        FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
        WHERE a.attrelid = target AND a.attname = cols[i] AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of % does not exist; model %@% needs it for feature "%"',
                cols[i], target_name, m.name, m.version, m.feature_names[i] USING ERRCODE = 'undefined_column',
                HINT = 'pass features => ARRAY[...] to name the column for each feature, in model order';
        END IF;
        IF cols[i] = output_column THEN
            RAISE EXCEPTION 'column "%" cannot be both a feature and the output', output_column
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF m.feature_types[i] = 'number' AND col.typcategory NOT IN ('N', 'B') THEN
            RAISE EXCEPTION 'column "%" is %, but feature "%" of model %@% is numeric',
                cols[i], col.type_name, m.feature_names[i], m.name, m.version USING ERRCODE = 'datatype_mismatch';
        ELSIF m.feature_types[i] = 'string' AND col.typcategory NOT IN ('S', 'E') THEN
            RAISE EXCEPTION 'column "%" is %, but feature "%" of model %@% is text',
                cols[i], col.type_name, m.feature_names[i], m.name, m.version USING ERRCODE = 'datatype_mismatch';
        END IF;
        quoted_cols := quoted_cols || quote_ident(cols[i]);
        new_values := new_values || format('NEW.%I', cols[i]);
        old_values := old_values || format('OLD.%I', cols[i]);
        -- booleans have no cast to float8, but do to integer
        by_position := by_position || format('NEW.%I%s', cols[i], CASE WHEN col.typcategory = 'B' THEN '::integer' END);
        by_name := by_name || format('%L, NEW.%I', m.feature_names[i], cols[i]);
    END LOOP;

    PERFORM pgml_trigger._detach(target, target_name, output_column)
    WHERE EXISTS (SELECT FROM pgml_trigger.attachments AS a
                  WHERE a.target = _attach.target AND a.output_column = _attach.output_column);

    trg_name := CASE WHEN octet_length('pgml_score_' || output_column) <= 63
                         THEN 'pgml_score_' || output_column
                         ELSE left('pgml_score_' || output_column, 40) || '_' || md5(output_column) END;
    INSERT INTO pgml_trigger.attachments AS a (target, output_column, model_ref, feature_names, columns, output,
                                               trigger_name, created_by)
    VALUES (target, output_column, model, m.feature_names, cols, output, trg_name, session_user)
    RETURNING a.id, a.function_name INTO attachment_id, fn_name;

    IF all_numeric THEN
        features_expr := format('ARRAY[%s]::double precision[]', array_to_string(by_position, ', '));
    ELSE
        features_expr := format('jsonb_build_object(%s)', array_to_string(by_name, ', '));
    END IF;
    body := format($body$
BEGIN
    IF TG_OP = 'UPDATE' AND (%1$s) IS NOT DISTINCT FROM (%2$s) THEN
        RETURN NEW;  -- no feature changed: keep the stored prediction
    END IF;
    NEW.%3$I := pgml_trigger.%4$I(%5$s, %6$s, statement_timestamp());
    RETURN NEW;
END
$body$, array_to_string(new_values, ', '), array_to_string(old_values, ', '), output_column,
        CASE output WHEN 'value' THEN '_score_row' ELSE '_label_row' END, attachment_id, features_expr);

    EXECUTE format('CREATE FUNCTION pgml_trigger.%I() RETURNS trigger LANGUAGE plpgsql AS %L', fn_name, body);
    -- Default privileges cannot take EXECUTE from PUBLIC for one schema only.
    EXECUTE format('REVOKE ALL ON FUNCTION pgml_trigger.%I() FROM PUBLIC', fn_name);
    EXECUTE format('COMMENT ON FUNCTION pgml_trigger.%I() IS %L', fn_name,
                   format('scoring trigger for %s.%s, model %s (made by pgml_trigger.attach)', target_name,
                          quote_ident(output_column), model));
    EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %s ON %s FOR EACH ROW EXECUTE FUNCTION pgml_trigger.%I()',
                   trg_name, array_to_string(quoted_cols, ', '), target, fn_name);
    RETURN trg_name;
END
$$;

CREATE FUNCTION pgml_trigger._detach(target regclass, target_name text, output_column text) RETURNS void
LANGUAGE plpgsql STRICT SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
DECLARE
    gone record;
BEGIN
    PERFORM pgml_trigger._require_attach_rights(target, target_name);
    DELETE FROM pgml_trigger.attachments AS a
    WHERE a.target = _detach.target AND a.output_column = _detach.output_column
    RETURNING a.trigger_name, a.function_name INTO gone;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no model is attached to column "%" of %', output_column, target_name
            USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', gone.trigger_name, target);
    EXECUTE format('DROP FUNCTION IF EXISTS pgml_trigger.%I()', gone.function_name);
END
$$;

-- target::text is evaluated here, in the caller's search_path, so messages
-- name the table as the caller wrote it.
CREATE OR REPLACE FUNCTION pgml_trigger.attach(target regclass, model text, output_column text,
                                               features text[] DEFAULT NULL)
RETURNS text
LANGUAGE sql AS $$ SELECT pgml_trigger._attach(target, target::text, model, output_column, features) $$;

CREATE OR REPLACE FUNCTION pgml_trigger.detach(target regclass, output_column text) RETURNS void
LANGUAGE sql STRICT AS $$ SELECT pgml_trigger._detach(target, target::text, output_column) $$;

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

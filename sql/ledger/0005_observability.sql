-- pgml_trigger 0005: scoring modes, the prediction log, challengers, per-model counters, model_versions.
--
-- attach() gains:
--   mode 'row' (default)  BEFORE INSERT OR UPDATE OF the feature columns, FOR EACH ROW: fills the
--                         output column, as before;
--   mode 'statement'      AFTER INSERT, FOR EACH STATEMENT over the transition table: scores the
--                         inserted rows in chunks of 10,000 at once and writes the results to
--                         pgml_trigger.prediction_log (row key = primary key), not to the table.
--                         For append-only tables where a separate predictions table is acceptable;
--   log => true           also writes each prediction (mode row) and the features the model was
--                         given (both modes) to the prediction log;
--   challenger => 'ref'   a second model scores the same rows into the log (next to the champion's
--                         prediction), leaving the output alone.
-- Log rows are written in the same transaction as the scored rows: a rolled-back INSERT leaves none.

ALTER TABLE pgml_trigger.attachments
    ADD COLUMN mode text NOT NULL DEFAULT 'row' CONSTRAINT attachments_mode CHECK (mode IN ('row', 'statement')),
    ADD COLUMN log boolean NOT NULL DEFAULT false,
    ADD COLUMN challenger text,
    ADD COLUMN key_columns text[];
COMMENT ON COLUMN pgml_trigger.attachments.key_columns IS 'the primary key of target: how the prediction log names rows';

CREATE TABLE pgml_trigger.prediction_log (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model_name    text        NOT NULL,
    model_version integer     NOT NULL,
    role          text        NOT NULL CHECK (role IN ('champion', 'challenger', 'call')),
    target        text,                  -- the scored table; NULL for a logged predict() call
    output_column text,
    row_key       text,                  -- the row's primary key as text (several columns: a JSON array)
    prediction    double precision,      -- numeric outputs
    label         text,                  -- class labels
    features      jsonb,                 -- what the model was given, by feature name, when logging asks for it
    scored_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prediction_log_model_time ON pgml_trigger.prediction_log (model_name, scored_at);
CREATE INDEX prediction_log_row ON pgml_trigger.prediction_log (target, row_key);
COMMENT ON TABLE pgml_trigger.prediction_log IS
    'opt-in record of predictions: logged attachments, challengers, statement mode, predict(..., log_key)';

-- A challenger scores the rows its champion scores: both must take the same features.
CREATE FUNCTION pgml_trigger._require_same_features(champion text, challenger text) RETURNS void
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
DECLARE
    a record;
    b record;
BEGIN
    SELECT m.name, m.version, m.feature_names, m.task INTO a
    FROM pgml_trigger.resolve_model(champion) AS r JOIN pgml_trigger.models AS m USING (name, version);
    SELECT m.name, m.version, m.feature_names, m.task INTO b
    FROM pgml_trigger.resolve_model(challenger) AS r JOIN pgml_trigger.models AS m USING (name, version);
    IF a.feature_names IS DISTINCT FROM b.feature_names OR a.task IS DISTINCT FROM b.task THEN
        RAISE EXCEPTION 'challenger %@% does not take the features (or do the task) of %@%', b.name, b.version,
            a.name, a.version USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('%s: %s; %s: %s', champion, array_to_string(a.feature_names, ', '), challenger,
                            array_to_string(b.feature_names, ', '));
    END IF;
END
$$;

DROP FUNCTION pgml_trigger.attach(regclass, text, text, text[]);

-- 0001's attach body, with the rights check (0003), a payload-free model
-- read, the session user as created_by, the generated function kept from
-- PUBLIC, and the modes, logging and challenger of this migration.
CREATE FUNCTION pgml_trigger._attach(target regclass, target_name text, model text, output_column text,
                                     features text[], mode text, log boolean, challenger text)
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
    key_columns text[];
    rec text;
    row_key text;
    scorer text;
    body text;
BEGIN
    IF target IS NULL OR model IS NULL OR output_column IS NULL OR mode IS NULL OR log IS NULL THEN
        RAISE EXCEPTION 'pgml_trigger.attach() needs a table, a model, an output column, a mode and log'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF mode NOT IN ('row', 'statement') THEN
        RAISE EXCEPTION 'unknown mode "%"', mode USING ERRCODE = 'invalid_parameter_value',
            HINT = 'mode row scores into the output column; mode statement scores inserts into the prediction log';
    END IF;
    PERFORM pgml_trigger._require_attach_rights(target, target_name);
    SELECT * INTO resolved FROM pgml_trigger.resolve_model(model);
    SELECT mm.* INTO m FROM pgml_trigger.model_catalog AS mm
    WHERE mm.name = resolved.name AND mm.version = resolved.version;

    SELECT a.attnum, t.typcategory, format_type(a.atttypid, a.atttypmod) AS type_name INTO out_type
    FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    WHERE a.attrelid = target AND a.attname = output_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND AND mode = 'statement' THEN
        -- statement mode writes to the prediction log: the output "column" only names the prediction there
        output := CASE WHEN m.task = 'classification' AND m.classes::text ~ '"' THEN 'label' ELSE 'value' END;
    ELSIF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of % does not exist', output_column, target_name
            USING ERRCODE = 'undefined_column';
    ELSIF out_type.typcategory = 'N' THEN
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
    rec := CASE mode WHEN 'statement' THEN 'inserted' ELSE 'NEW' END;  -- what the generated code reads a row from
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
        by_position := by_position || format('%s.%I%s', rec, cols[i],
                                             CASE WHEN col.typcategory = 'B' THEN '::integer' END);
        by_name := by_name || format('%L, %s.%I', m.feature_names[i], rec, cols[i]);
    END LOOP;

    SELECT array_agg(a.attname::text ORDER BY k.ord) INTO key_columns
    FROM pg_catalog.pg_index AS i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord), pg_catalog.pg_attribute AS a
    WHERE i.indrelid = target AND i.indisprimary AND a.attrelid = target AND a.attnum = k.attnum;
    IF mode = 'statement' AND key_columns IS NULL THEN
        RAISE EXCEPTION 'statement mode needs a primary key on %: it is how logged predictions name their rows',
            target_name USING ERRCODE = 'invalid_table_definition';
    END IF;
    IF challenger IS NOT NULL THEN
        PERFORM pgml_trigger._require_same_features(model, challenger);
    END IF;

    PERFORM pgml_trigger._detach(target, target_name, output_column)
    WHERE EXISTS (SELECT FROM pgml_trigger.attachments AS a
                  WHERE a.target = _attach.target AND a.output_column = _attach.output_column);

    trg_name := CASE WHEN octet_length('pgml_score_' || output_column) <= 63
                         THEN 'pgml_score_' || output_column
                         ELSE left('pgml_score_' || output_column, 40) || '_' || md5(output_column) END;
    INSERT INTO pgml_trigger.attachments AS a (target, output_column, model_ref, feature_names, columns, output,
                                               trigger_name, created_by, mode, log, challenger, key_columns)
    VALUES (target, output_column, model, m.feature_names, cols, output, trg_name, session_user, mode, log,
            challenger, key_columns)
    RETURNING a.id, a.function_name INTO attachment_id, fn_name;

    -- How the row is named in the prediction log: its primary key, as text.
    row_key := CASE WHEN key_columns IS NULL THEN 'NULL::text'
                    WHEN cardinality(key_columns) = 1 THEN format('%s.%I::text', rec, key_columns[1])
                    ELSE format('jsonb_build_array(%s)::text', (SELECT string_agg(format('%s.%I', rec, k), ', ')
                                                              FROM unnest(key_columns) AS k)) END;
    IF all_numeric THEN
        features_expr := format('ARRAY[%s]::double precision[]', array_to_string(by_position, ', '));
    ELSE
        features_expr := format('jsonb_build_object(%s)', array_to_string(by_name, ', '));
    END IF;
    IF mode = 'statement' THEN
        -- Chunks of the transition table, scored at once and written to the log by the owner.
        body := format($body$
DECLARE
    chunk record;
BEGIN
    FOR chunk IN
        SELECT array_agg(%1$s) AS keys, %2$s AS features
        FROM (SELECT new_rows.*, row_number() OVER () - 1 AS chunk_row FROM new_rows) AS inserted
        GROUP BY inserted.chunk_row / 10000
    LOOP
        PERFORM pgml_trigger._score_statement(%3$s, chunk.keys, chunk.features, statement_timestamp());
    END LOOP;
    RETURN NULL;
END
$body$, row_key,
            CASE WHEN all_numeric THEN format('array_send(array_agg(%s))', features_expr)
                 ELSE format('array_agg(%s)', features_expr) END,
            attachment_id);
    ELSE
        scorer := CASE WHEN log OR challenger IS NOT NULL
                       THEN format('pgml_trigger.%I(%s, %s, statement_timestamp(), %s)',
                                   CASE output WHEN 'value' THEN '_score_row_logged' ELSE '_label_row_logged' END,
                                   attachment_id, features_expr, row_key)
                       ELSE format('pgml_trigger.%I(%s, %s, statement_timestamp())',
                                   CASE output WHEN 'value' THEN '_score_row' ELSE '_label_row' END,
                                   attachment_id, features_expr) END;
        body := format($body$
BEGIN
    IF TG_OP = 'UPDATE' AND (%1$s) IS NOT DISTINCT FROM (%2$s) THEN
        RETURN NEW;  -- no feature changed: keep the stored prediction
    END IF;
    NEW.%3$I := %4$s;
    RETURN NEW;
END
$body$, array_to_string(new_values, ', '), array_to_string(old_values, ', '), output_column, scorer);
    END IF;

    EXECUTE format('CREATE FUNCTION pgml_trigger.%I() RETURNS trigger LANGUAGE plpgsql AS %L', fn_name, body);
    -- Default privileges cannot take EXECUTE from PUBLIC for one schema only.
    EXECUTE format('REVOKE ALL ON FUNCTION pgml_trigger.%I() FROM PUBLIC', fn_name);
    EXECUTE format('COMMENT ON FUNCTION pgml_trigger.%I() IS %L', fn_name,
                   format('scoring trigger for %s.%s, model %s (made by pgml_trigger.attach)', target_name,
                          quote_ident(output_column), model));
    IF mode = 'statement' THEN
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger.%I()', trg_name, target, fn_name);
    ELSE
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %s ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION pgml_trigger.%I()',
                       trg_name, array_to_string(quoted_cols, ', '), target, fn_name);
    END IF;
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
CREATE FUNCTION pgml_trigger.attach(target regclass, model text, output_column text, features text[] DEFAULT NULL,
                                    mode text DEFAULT 'row', log boolean DEFAULT false, challenger text DEFAULT NULL)
RETURNS text
LANGUAGE sql AS $$
    SELECT pgml_trigger._attach(target, target::text, model, output_column, features, mode, log, challenger)
$$;
COMMENT ON FUNCTION pgml_trigger.attach(regclass, text, text, text[], text, boolean, text) IS
    'score target''s rows with model: into output_column (mode row) or into the prediction log (mode statement)';

CREATE OR REPLACE FUNCTION pgml_trigger.detach(target regclass, output_column text) RETURNS void
LANGUAGE sql STRICT AS $$ SELECT pgml_trigger._detach(target, target::text, output_column) $$;


------------------------------------------------------------------------------
-- Scoring that writes the prediction log: VOLATILE, since it writes, and
-- SECURITY DEFINER, since the log belongs to the owner. Only logged
-- attachments and calls pay for that.
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger._score_row_logged(attachment integer, features double precision[],
                                               clock timestamptz, row_key text) RETURNS double precision
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].score_row_logged(attachment, features, clock, row_key)
$$;
CREATE FUNCTION pgml_trigger._score_row_logged(attachment integer, features jsonb,
                                               clock timestamptz, row_key text) RETURNS double precision
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].score_row_logged(attachment, features, clock, row_key)
$$;
CREATE FUNCTION pgml_trigger._label_row_logged(attachment integer, features double precision[],
                                               clock timestamptz, row_key text) RETURNS text
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].score_row_logged(attachment, features, clock, row_key)
$$;
CREATE FUNCTION pgml_trigger._label_row_logged(attachment integer, features jsonb,
                                               clock timestamptz, row_key text) RETURNS text
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].score_row_logged(attachment, features, clock, row_key)
$$;
-- features: a double precision[][] as array_send() bytes, or a jsonb[].
CREATE FUNCTION pgml_trigger._score_statement(attachment integer, keys text[], features bytea, clock timestamptz)
RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
GD["pgml_trigger"].score_statement(attachment, keys, features, clock)
$$;
CREATE FUNCTION pgml_trigger._score_statement(attachment integer, keys text[], features jsonb[], clock timestamptz)
RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
GD["pgml_trigger"].score_statement(attachment, keys, features, clock)
$$;

-- A logged call site: predict(model, features, log_key) scores as predict() does and also logs the
-- prediction, its features and log_key, with role 'call'.
CREATE FUNCTION pgml_trigger._predict_logged(model text, features jsonb, log_key text, clock timestamptz)
RETURNS double precision
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_logged(model, features, log_key, clock)
$$;
CREATE FUNCTION pgml_trigger._predict_logged(model text, features double precision[], log_key text,
                                             clock timestamptz) RETURNS double precision
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_logged(model, features, log_key, clock)
$$;
CREATE FUNCTION pgml_trigger.predict(model text, features jsonb, log_key text) RETURNS double precision
LANGUAGE sql VOLATILE AS $$ SELECT pgml_trigger._predict_logged(model, features, log_key, statement_timestamp()) $$;
CREATE FUNCTION pgml_trigger.predict(model text, features double precision[], log_key text)
RETURNS double precision
LANGUAGE sql VOLATILE AS $$ SELECT pgml_trigger._predict_logged(model, features, log_key, statement_timestamp()) $$;
COMMENT ON FUNCTION pgml_trigger.predict(text, jsonb, text) IS 'predict() that also writes the prediction log';
COMMENT ON FUNCTION pgml_trigger.predict(text, double precision[], text) IS
    'predict() that also writes the prediction log';

------------------------------------------------------------------------------
-- Per-model counters. Each backend counts calls, rows, errors, model loads
-- and time spent scoring, and publishes them at most once a second (at a
-- statement's start) to a file of its own under pg_stat_tmp/pgml_trigger in
-- the data directory. counters() adds up the files of every backend this
-- server ran since those files were last cleared, its own counts up to now
-- included.
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger.counters(
    OUT name text, OUT version integer, OUT backends integer, OUT calls bigint, OUT rows bigint, OUT errors bigint,
    OUT loads bigint, OUT seconds double precision)
RETURNS SETOF record
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].counters()
$$;
COMMENT ON FUNCTION pgml_trigger.counters() IS
    'per model: calls, rows, errors, loads and seconds spent scoring, summed over this server''s backends';

------------------------------------------------------------------------------
-- What a DBA or a dashboard reads.
------------------------------------------------------------------------------

CREATE VIEW pgml_trigger.model_versions AS
SELECT m.name, m.version, m.format, m.scoring_path, pg_size_pretty(m.payload_bytes) AS size, m.payload_bytes,
       m.sha256,
       coalesce((SELECT array_agg(a.alias ORDER BY a.alias) FROM pgml_trigger.aliases AS a
                 WHERE a.name = m.name AND a.version = m.version), '{}') AS aliases,
       m.task, m.feature_names, m.python_version, m.sklearn_version, m.numpy_version, m.joblib_version,
       m.metrics, m.agreement, m.description, m.created_at, m.created_by
FROM pgml_trigger.model_catalog AS m;
COMMENT ON VIEW pgml_trigger.model_versions IS 'every model version with its scoring path, aliases, versions, metrics';

------------------------------------------------------------------------------
-- Privileges (roles: 0003_trust.sql).
------------------------------------------------------------------------------

REVOKE ALL ON pgml_trigger.prediction_log, pgml_trigger.model_versions FROM PUBLIC;
GRANT SELECT ON pgml_trigger.prediction_log TO pgml_trigger_admin;
GRANT SELECT ON pgml_trigger.model_versions TO pgml_trigger_user;
DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOR fn IN
        SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'pgml_trigger'::regnamespace
          AND p.proname IN ('attach', 'detach', '_attach', '_detach', '_require_same_features', '_score_row_logged',
                            '_label_row_logged', '_score_statement', '_predict_logged', 'predict', 'counters')
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pgml_trigger_user', fn);
    END LOOP;
END
$$;

-- pgml_trigger 0007: row triggers that score linear models as SQL arithmetic.
--
-- A row trigger that calls into PL/Python costs several microseconds a row before the model does
-- anything. For a version with a linear_form (pgml_trigger/linear.py: scalers folded into one intercept
-- and one row of coefficients per decision, scaled so that no product can underflow), the generated
-- trigger computes the prediction itself, and calls the Python path only for the rows the arithmetic
-- cannot take: a NULL, NaN, infinite or huge feature, which then meet the missing-value policy and the
-- errors of the Python path.
--
-- The body names one version, so it is rewritten whenever what the attachment's model reference
-- resolves to may change: after every write to models or aliases, in the writer's transaction, so
-- sessions see the new body exactly when they see the new catalog (rewrite_row_triggers() says how).
-- Those writes already queue on the catalog_state row (0001), which keeps two sessions from
-- rewriting one function at once. attach() writes the body once the attachment exists.
--
-- Not for attachments that log or have a challenger (the log is written by Python), nor when the
-- database requires signed models (pgml_trigger.hmac_key_file: the signature covers the payloads,
-- which the arithmetic never reads), leaves the version's format out of pgml_trigger.allowed_formats,
-- or sets pgml_trigger.sql_triggers = off: the coefficients stand in the function's source, which
-- every role may read in pg_proc. After changing those settings, SELECT pgml_trigger.rewrite_row_triggers().

ALTER TABLE pgml_trigger.models ADD COLUMN linear_form jsonb;
COMMENT ON COLUMN pgml_trigger.models.linear_form IS
    'a linear model as scaled SQL arithmetic for row triggers (pgml_trigger/linear.py), with its agreement';

-- One guard for every column, this migration's and later ones' included, in place of the three
-- that 0001, 0002 and 0006 wrote column by column: a model version never changes but for its
-- description, metrics and training profile.
DROP TRIGGER models_before_update ON pgml_trigger.models;
DROP TRIGGER models_compiled_before_update ON pgml_trigger.models;
DROP TRIGGER models_formats_before_update ON pgml_trigger.models;
DROP FUNCTION pgml_trigger._models_before_update(), pgml_trigger._models_compiled_before_update(),
    pgml_trigger._models_formats_before_update();
CREATE FUNCTION pgml_trigger._models_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kept pgml_trigger.models := NEW;  -- NEW with what may change put back
BEGIN
    kept.description := OLD.description;
    kept.metrics := OLD.metrics;
    kept.training_profile := OLD.training_profile;
    kept.scoring_path := OLD.scoring_path;  -- generated after BEFORE triggers: not yet in NEW
    IF kept IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'model "%@%" cannot be changed; only its description, metrics and training profile can',
            OLD.name, OLD.version USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'upload a new version instead';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_before_update BEFORE UPDATE ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._models_before_update();

CREATE OR REPLACE VIEW pgml_trigger.model_catalog AS
SELECT m.name, m.version, m.format, m.sha256, octet_length(m.payload)::bigint AS payload_bytes, m.task, m.classes,
       m.feature_names, m.feature_types, m.accepts_nan, m.input_kind, m.python_version, m.sklearn_version,
       m.numpy_version, m.joblib_version, m.description, m.created_at, m.created_by,
       m.scoring_path, m.compiled_format, m.compiled_sha256, octet_length(m.compiled_payload)::bigint AS compiled_bytes,
       m.compiled_handles_nan, m.agreement, m.metrics, m.training_profile,
       m.payload_hmac, m.skops_version, m.onnxruntime_version, m.linear_form
FROM pgml_trigger.models AS m;

CREATE OR REPLACE VIEW pgml_trigger.model_versions AS
SELECT m.name, m.version, m.format, m.scoring_path, pg_size_pretty(m.payload_bytes) AS size, m.payload_bytes,
       m.sha256,
       coalesce((SELECT array_agg(a.alias ORDER BY a.alias) FROM pgml_trigger.aliases AS a
                 WHERE a.name = m.name AND a.version = m.version), '{}') AS aliases,
       m.task, m.feature_names, m.python_version, m.sklearn_version, m.numpy_version, m.joblib_version,
       m.metrics, m.agreement, m.description, m.created_at, m.created_by,
       CASE WHEN m.linear_form IS NOT NULL THEN 'sql' ELSE m.scoring_path END AS row_trigger_path
FROM pgml_trigger.model_catalog AS m;

-- A role that writes to a scored table needs pgml_trigger_user on this path too (0003): the arithmetic
-- is guarded by this function, which the planner folds to true for roles that may execute it and
-- refuses for the others.
CREATE FUNCTION pgml_trigger._may_score() RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;

------------------------------------------------------------------------------
-- The body of a row-mode attachment's trigger function, for the version its model reference resolves
-- to now: SQL arithmetic where that version has a linear form, else the call into Python that
-- 0005's attach() writes.
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger._row_trigger_body(attachment_id integer) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pgml_trigger, pg_temp SET extra_float_digits = 1 AS $$
DECLARE
    a record;
    m record;
    col record;
    new_values text[] := '{}';
    old_values text[] := '{}';
    by_position text[] := '{}';  -- NEW.<column> as double precision, in model order
    by_name text[] := '{}';
    all_numeric boolean := true;
    features_expr text;
    row_key text;
    python text;                 -- the Python path: the whole body, or the call for rows arithmetic cannot take
    form jsonb;
    allowed text;
    decisions text := '';
    outputs text[];
    choose text;
BEGIN
    SELECT * INTO a FROM pgml_trigger.attachments AS x WHERE x.id = attachment_id;
    FOR i IN 1 .. cardinality(a.columns) LOOP
        SELECT t.typcategory, pa.atttypid INTO col
        FROM pg_catalog.pg_attribute AS pa JOIN pg_catalog.pg_type AS t ON t.oid = pa.atttypid
        WHERE pa.attrelid = a.target AND pa.attname = a.columns[i] AND pa.attnum > 0 AND NOT pa.attisdropped;
        all_numeric := all_numeric AND coalesce(col.typcategory IN ('N', 'B'), false);
        new_values := new_values || format('NEW.%I', a.columns[i]);
        old_values := old_values || format('OLD.%I', a.columns[i]);
        -- booleans have no cast to float8, but do to integer
        by_position := by_position || format('NEW.%I%s', a.columns[i],
                                             CASE WHEN col.atttypid = 'double precision'::regtype THEN ''
                                                  WHEN col.typcategory = 'B' THEN '::integer::double precision'
                                                  ELSE '::double precision' END);
        by_name := by_name || format('%L, NEW.%I', a.feature_names[i], a.columns[i]);
    END LOOP;
    features_expr := CASE WHEN all_numeric THEN format('ARRAY[%s]', array_to_string(by_position, ', '))
                          ELSE format('jsonb_build_object(%s)', array_to_string(by_name, ', ')) END;
    row_key := CASE WHEN a.key_columns IS NULL THEN 'NULL::text'
                    WHEN cardinality(a.key_columns) = 1 THEN format('NEW.%I::text', a.key_columns[1])
                    ELSE format('jsonb_build_array(%s)::text', (SELECT string_agg(format('NEW.%I', k), ', ')
                                                              FROM unnest(a.key_columns) AS k)) END;
    python := CASE WHEN a.log OR a.challenger IS NOT NULL
                   THEN format('pgml_trigger.%I(%s, %s, statement_timestamp(), %s)',
                               CASE a.output WHEN 'value' THEN '_score_row_logged' ELSE '_label_row_logged' END,
                               a.id, features_expr, row_key)
                   ELSE format('pgml_trigger.%I(%s, %s, statement_timestamp())',
                               CASE a.output WHEN 'value' THEN '_score_row' ELSE '_label_row' END,
                               a.id, features_expr) END;

    BEGIN
        SELECT mm.* INTO m FROM pgml_trigger.resolve_model(a.model_ref) AS r
        JOIN pgml_trigger.models AS mm USING (name, version);
        form := m.linear_form;
    EXCEPTION WHEN OTHERS THEN
        form := NULL;  -- the reference resolves to nothing now; the Python path says so when a row comes
    END;
    allowed := nullif(btrim(pgml_trigger._database_setting('pgml_trigger.allowed_formats')), '');
    IF form IS NULL OR a.log OR a.challenger IS NOT NULL OR NOT all_numeric
       OR m.feature_names IS DISTINCT FROM a.feature_names
       OR (a.output = 'value' AND m.task = 'classification' AND jsonb_typeof(form -> 'values') IS DISTINCT FROM 'array')
       OR (a.output = 'label' AND m.task <> 'classification')
       OR pgml_trigger._database_setting('pgml_trigger.hmac_key_file') IS NOT NULL
       OR lower(btrim(pgml_trigger._database_setting('pgml_trigger.sql_triggers'))) IN ('off', 'false', 'no', '0')
       OR (allowed IS NOT NULL AND NOT m.format = ANY (SELECT lower(btrim(f)) FROM unnest(string_to_array(allowed, ',')) AS f))
    THEN
        RETURN format($body$
BEGIN
    IF TG_OP = 'UPDATE' AND (%1$s) IS NOT DISTINCT FROM (%2$s) THEN
        RETURN NEW;  -- no feature changed: keep the stored prediction
    END IF;
    NEW.%3$I := %4$s;
    RETURN NEW;
END
$body$, array_to_string(new_values, ', '), array_to_string(old_values, ', '), a.output_column, python);
    END IF;

    -- One decision per row of coefficients: intercept + c1 * x1 + ..., left to right as linear.py checked it.
    FOR k IN 0 .. jsonb_array_length(form -> 'intercepts') - 1 LOOP
        decisions := decisions || format(E'\n    d%s := %s::double precision + %s;', k,
            (form -> 'intercepts' ->> k)::double precision,
            (SELECT string_agg(format('%s::double precision * %s', (c.value #>> '{}')::double precision,
                                      by_position[c.i]), ' + ' ORDER BY c.i)
             FROM jsonb_array_elements(form -> 'coefficients' -> k) WITH ORDINALITY AS c(value, i)));
    END LOOP;
    IF m.task = 'classification' THEN  -- what each class writes to the output column
        outputs := ARRAY(SELECT CASE a.output WHEN 'label' THEN quote_literal(l.value #>> '{}')
                                ELSE format('%s::double precision', (form -> 'values' ->> (l.i - 1)::integer)::double precision)
                                END
                         FROM jsonb_array_elements(form -> 'labels') WITH ORDINALITY AS l(value, i) ORDER BY l.i);
    END IF;
    IF m.task = 'regression' THEN
        -- d0 / scale stays a normal float8 (a subnormal result would be an underflow error)
        choose := format('IF d0 = 0 OR abs(d0) >= %s::double precision THEN NEW.%I := d0 / %s::double precision; '
                         'RETURN NEW; END IF;', (form ->> 'scale')::double precision * 2.2250738585072014e-308,
                         a.output_column, (form ->> 'scale')::double precision);
    ELSIF jsonb_array_length(form -> 'intercepts') = 1 THEN  -- two classes: the sign of the decision
        choose := format('IF d0 IS NOT NULL THEN NEW.%I := CASE WHEN d0 > 0 THEN %s ELSE %s END; RETURN NEW; END IF;',
                         a.output_column, outputs[2], outputs[1]);
    ELSE  -- the first class whose decision is the largest
        choose := format('IF d0 IS NOT NULL THEN NEW.%I := CASE %s ELSE %s END; RETURN NEW; END IF;',
                         a.output_column,
                         (SELECT string_agg(format('WHEN d%s >= greatest(%s) THEN %s', k,
                                                   (SELECT string_agg(format('d%s', j), ', ')
                                                    FROM generate_series(k + 1, cardinality(outputs) - 1) AS j),
                                                   outputs[k + 1]), ' ' ORDER BY k)
                          FROM generate_series(0, cardinality(outputs) - 2) AS k),
                         outputs[cardinality(outputs)]);
    END IF;
    RETURN format($body$
-- %1$s@%2$s as SQL arithmetic (pgml_trigger/linear.py); the Python path scores the rows it cannot take.
DECLARE
    %3$s
BEGIN
    IF TG_OP = 'UPDATE' AND (%4$s) IS NOT DISTINCT FROM (%5$s) THEN
        RETURN NEW;  -- no feature changed: keep the stored prediction
    END IF;
    IF pgml_trigger._may_score() AND greatest(%6$s) < %7$s AND least(%6$s) > -%7$s THEN  -- NaN > any number
        %8$s
        %9$s
    END IF;
    NEW.%10$I := %11$s;
    RETURN NEW;
END
$body$, m.name, m.version,
        (SELECT string_agg(format('d%s double precision;', k), ' ')
         FROM generate_series(0, jsonb_array_length(form -> 'intercepts') - 1) AS k),
        array_to_string(new_values, ', '), array_to_string(old_values, ', '),
        array_to_string(by_position, ', '), format('%s::double precision', (form ->> 'bound')::double precision),
        btrim(decisions, E'\n '), choose, a.output_column, python);
END
$$;

-- Rewrites the functions of row-mode attachments whose body is no longer the one _row_trigger_body()
-- gives; returns how many it rewrote. A session sees a new function body once it has processed the
-- invalidation the commit sends, which is sent just after the commit becomes visible. So, like CREATE
-- TRIGGER, a rewrite locks the table against writes until it commits: transactions writing to the table
-- finish first, and the next ones start after the invalidation, with the new body.
CREATE FUNCTION pgml_trigger.rewrite_row_triggers() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
DECLARE
    fn record;
    body text;
    rewritten integer := 0;
BEGIN
    FOR fn IN
        SELECT a.id, a.target, a.function_name, p.prosrc
        FROM pgml_trigger.attachments AS a
        JOIN pg_catalog.pg_proc AS p ON p.proname = a.function_name AND p.pronamespace = 'pgml_trigger'::regnamespace
        WHERE a.mode = 'row'
        ORDER BY a.id
    LOOP
        body := pgml_trigger._row_trigger_body(fn.id);
        IF body IS DISTINCT FROM fn.prosrc THEN
            EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', fn.target);
            EXECUTE format('CREATE OR REPLACE FUNCTION pgml_trigger.%I() RETURNS trigger LANGUAGE plpgsql AS %L',
                           fn.function_name, body);
            rewritten := rewritten + 1;
        END IF;
    END LOOP;
    RETURN rewritten;
END
$$;
COMMENT ON FUNCTION pgml_trigger.rewrite_row_triggers() IS
    'rewrite row triggers for the versions their models resolve to now (automatic on catalog changes)';

CREATE FUNCTION pgml_trigger._rewrite_row_triggers_after_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
BEGIN
    PERFORM pgml_trigger.rewrite_row_triggers();
    RETURN NULL;
END
$$;
-- Named to fire after the *_catalog_changed triggers (alphabetical order), which queue on catalog_state.
CREATE TRIGGER models_rewrite_row_triggers AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgml_trigger.models
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._rewrite_row_triggers_after_change();
CREATE TRIGGER aliases_rewrite_row_triggers AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgml_trigger.aliases
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._rewrite_row_triggers_after_change();

-- attach() as in 0005, then the body for the version the model resolves to.
CREATE OR REPLACE FUNCTION pgml_trigger.attach(target regclass, model text, output_column text,
                                               features text[] DEFAULT NULL, mode text DEFAULT 'row',
                                               log boolean DEFAULT false, challenger text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    trigger_name text;
BEGIN
    -- target::text is evaluated here, in the caller's search_path, so messages name the table as the
    -- caller wrote it.
    trigger_name := pgml_trigger._attach(target, target::text, model, output_column, features, mode, log, challenger);
    PERFORM pgml_trigger.rewrite_row_triggers();
    RETURN trigger_name;
END
$$;

REVOKE ALL ON FUNCTION pgml_trigger._models_before_update(), pgml_trigger._may_score(),
    pgml_trigger._row_trigger_body(integer),
    pgml_trigger.rewrite_row_triggers(), pgml_trigger._rewrite_row_triggers_after_change() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION pgml_trigger._may_score(), pgml_trigger.rewrite_row_triggers() TO pgml_trigger_user;

SELECT pgml_trigger.rewrite_row_triggers();

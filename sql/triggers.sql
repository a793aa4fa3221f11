------------------------------------------------------------------------------
-- triggers.sql: scoring triggers, made by attach().
--
-- attach() writes, per attachment, a small PL/pgSQL function pgml_trigger.score_<id>() and a trigger
-- on the target table that calls it:
--   mode 'row' (default)  BEFORE INSERT OR UPDATE OF the feature columns, FOR EACH ROW: fills the
--                         output column. The body hands the row to Python as a float8[] (all-numeric
--                         models), as a float8[] and a text[] (rows with text features, _features_by_kind)
--                         or as a jsonb object keyed by feature name, or, for a version with a linear
--                         form, computes the prediction as SQL arithmetic (_row_trigger_body);
--   mode 'statement'      AFTER INSERT, FOR EACH STATEMENT over the transition table: scores the
--                         inserted rows in chunks of 10,000 and writes the results to the prediction
--                         log (row key = primary key), not to the table;
--   log => true           also writes each prediction and the features to the prediction log;
--   challenger => 'ref'   a second model scores the same rows into the log, leaving the output alone;
--   explain_column => 'c' explain() of each prediction (its explain_top_k largest contributions) goes into
--                         column c of the row (mode row), or beside the prediction in the log (mode statement).
--
-- The generated functions are not members of the extension, so pg_dump writes them out with the
-- triggers that use them; each DEPENDS ON EXTENSION pgml_trigger, so DROP EXTENSION refuses while a
-- trigger uses one, and takes them all with CASCADE.
------------------------------------------------------------------------------

CREATE TABLE pgml_trigger.attachments (
    id            integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target        regclass    NOT NULL,
    output_column name        NOT NULL,
    model_ref     text        NOT NULL,
    feature_names text[]      NOT NULL,  -- the model's features, in model order ...
    columns       text[]      NOT NULL,  -- ... and the columns of target that feed them
    output        text        NOT NULL CHECK (output IN ('value', 'label')),
    trigger_name  name        NOT NULL,
    function_name name        NOT NULL GENERATED ALWAYS AS (('score_' || id)::name) STORED,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL DEFAULT current_user,
    mode          text        NOT NULL DEFAULT 'row' CONSTRAINT attachments_mode CHECK (mode IN ('row', 'statement')),
    log           boolean     NOT NULL DEFAULT false,
    challenger    text,
    key_columns   text[],
    explain_column name,
    explain_top_k integer CONSTRAINT attachments_explain_top_k CHECK (explain_top_k >= 1),
    UNIQUE (target, output_column)
);
COMMENT ON TABLE pgml_trigger.attachments IS 'scoring triggers made by pgml_trigger.attach()';
COMMENT ON COLUMN pgml_trigger.attachments.key_columns IS 'the primary key of target: how the prediction log names rows';
COMMENT ON COLUMN pgml_trigger.attachments.explain_column IS
    'the jsonb column of target that gets explain() of each prediction (mode statement: the log''s reasons)';

-- The scoring triggers whose model reference resolves to name@version now, for messages: what
-- delete_model() refuses over, and what a subscriber keeps a version for (replication.sql).
CREATE FUNCTION pgml_trigger._triggers_using(name text, version integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(format('%s.%s (model %L)', t.target, quote_ident(t.output_column), t.model_ref), ', ')
    FROM pgml_trigger.attachments AS t, LATERAL pgml_trigger.resolve_model(t.model_ref) AS r
    WHERE r.name = _triggers_using.name AND r.version = _triggers_using.version
$$;
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.attachments', '');
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.attachments_id_seq', '');
CREATE TRIGGER attachments_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgml_trigger.attachments
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._catalog_changed();

------------------------------------------------------------------------------
-- What the generated functions call.
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger._score_row(attachment integer, features double precision[], clock timestamptz)
RETURNS double precision
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].score_row(attachment, features, clock)
$$;
CREATE FUNCTION pgml_trigger._score_row(attachment integer, features jsonb, clock timestamptz)
RETURNS double precision
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].score_row(attachment, features, clock)
$$;
CREATE FUNCTION pgml_trigger._label_row(attachment integer, features double precision[], clock timestamptz)
RETURNS text
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].label_row(attachment, features, clock)
$$;
CREATE FUNCTION pgml_trigger._label_row(attachment integer, features jsonb, clock timestamptz) RETURNS text
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].label_row(attachment, features, clock)
$$;
-- A row with text features: its numeric features as a float8[] and its text ones as a text[], each in model
-- order (_features_by_kind).
CREATE FUNCTION pgml_trigger._score_row(attachment integer, numbers double precision[], texts text[],
                                        clock timestamptz) RETURNS double precision
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].score_typed_row(attachment, numbers, texts, clock)
$$;
CREATE FUNCTION pgml_trigger._label_row(attachment integer, numbers double precision[], texts text[],
                                        clock timestamptz) RETURNS text
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].label_typed_row(attachment, numbers, texts, clock)
$$;


-- Scoring that writes the prediction log: VOLATILE, since it writes, and SECURITY DEFINER, since the
-- log belongs to the owner. Only logged attachments pay for that.
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
CREATE FUNCTION pgml_trigger._score_row_logged(attachment integer, numbers double precision[], texts text[],
                                               clock timestamptz, row_key text) RETURNS double precision
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].score_typed_row_logged(attachment, numbers, texts, clock, row_key)
$$;
CREATE FUNCTION pgml_trigger._label_row_logged(attachment integer, numbers double precision[], texts text[],
                                               clock timestamptz, row_key text) RETURNS text
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].score_typed_row_logged(attachment, numbers, texts, clock, row_key)
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
-- Rows with text features: a double precision[][] of their numeric features and a text[][] of their text ones.
-- kinds: the feature types the trigger was written for ('number,string,...'); statement triggers are not
-- rewritten when the model's version changes, and another version may take the same features as other kinds.
CREATE FUNCTION pgml_trigger._score_statement(attachment integer, keys text[], numbers double precision[],
                                              texts text[], kinds text, clock timestamptz) RETURNS void
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
GD["pgml_trigger"].score_typed_statement(attachment, keys, numbers, texts, kinds, clock)
$$;

-- How a row with text features goes to Python (pgml_trigger/server/features.py, from_typed_arrays): its numeric
-- features as a float8[] and its text ones as a text[], each in model order, as ARRAY[...] expressions over
-- source.<column>. Every value is the one to_jsonb() gives, which reads each through its type's output function
-- (a real by its text, a char(n) with its padding), except that a double precision keeps every bit whatever
-- extra_float_digits says. Types are told by their output function, which a domain shares with its base type.
-- NULLs when a column's type is not one of these (money, ...) or does not fit its feature: the row goes as jsonb.
CREATE FUNCTION pgml_trigger._features_by_kind(target regclass, columns text[], feature_types text[], source text,
                                               OUT numbers text, OUT texts text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col record;
    output regproc;
    value text;
    number_values text[] := '{}';
    text_values text[] := '{}';
BEGIN
    IF cardinality(columns) IS DISTINCT FROM cardinality(feature_types) THEN
        RETURN;
    END IF;
    FOR i IN 1 .. cardinality(columns) LOOP
        SELECT * INTO col FROM pgml_trigger._column_type(target, columns[i]);
        SELECT t.typoutput INTO output FROM pg_catalog.pg_type AS t WHERE t.oid = col.type_oid;
        value := format('%s.%I', source, columns[i]);
        IF feature_types[i] = 'number' AND output = ANY ('{float8out,numeric_out,int8out,int4out,int2out}'::regproc[]) THEN
            number_values := number_values || format('%s::double precision', value);
        ELSIF feature_types[i] = 'number' AND output = 'float4out'::regproc THEN
            number_values := number_values || format('%s::text::double precision', value);
        ELSIF feature_types[i] = 'number' AND output = 'boolout'::regproc THEN
            number_values := number_values || format('%s::integer::double precision', value);
        ELSIF feature_types[i] = 'string' AND output = 'bpcharout'::regproc THEN
            text_values := text_values || format('pg_catalog.textin(pg_catalog.bpcharout(%s))', value);  -- ::text trims
        ELSIF feature_types[i] = 'string' AND col.category IN ('S', 'E') THEN
            text_values := text_values || format('%s::text', value);
        ELSE
            RETURN;
        END IF;
    END LOOP;
    numbers := format('ARRAY[%s]::double precision[]', array_to_string(number_values, ', '));
    texts := format('ARRAY[%s]::text[]', array_to_string(text_values, ', '));
END
$$;
COMMENT ON FUNCTION pgml_trigger._features_by_kind(regclass, text[], text[], text) IS
    'the float8[] and text[] expressions that hand a row with text features to Python; NULLs when they cannot';


-- A role that writes to a scored table needs pgml_trigger_user on this path too (access.sql): the arithmetic
-- is guarded by this function, which the planner folds to true for roles that may execute it and
-- refuses for the others.
CREATE FUNCTION pgml_trigger._may_score() RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT true $$;

-- Creates or replaces a generated trigger function: kept from PUBLIC (default privileges cannot take
-- EXECUTE from PUBLIC for one schema only), and made to depend on the extension again (CREATE OR
-- REPLACE drops that dependency).
CREATE FUNCTION pgml_trigger._write_trigger_function(function_name name, body text, description text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
BEGIN
    EXECUTE format('CREATE OR REPLACE FUNCTION pgml_trigger.%I() RETURNS trigger LANGUAGE plpgsql AS %L',
                   function_name, body);
    EXECUTE format('REVOKE ALL ON FUNCTION pgml_trigger.%I() FROM PUBLIC', function_name);
    EXECUTE format('ALTER FUNCTION pgml_trigger.%I() DEPENDS ON EXTENSION pgml_trigger', function_name);
    IF description IS NOT NULL THEN
        EXECUTE format('COMMENT ON FUNCTION pgml_trigger.%I() IS %L', function_name, description);
    END IF;
END
$$;
COMMENT ON FUNCTION pgml_trigger._write_trigger_function(name, text, text) IS
    'create or replace a trigger function attach() generates, owned by the extension''s dependency tracking';

------------------------------------------------------------------------------
-- attach and detach: SECURITY INVOKER wrappers that name the table as the caller sees it, over
-- SECURITY DEFINER functions that check the session's rights. Inside a SECURITY DEFINER function
-- current_user is the owner, so the check is made for session_user: the role that logged in, whose
-- rights the session can always return to, so it never allows what the session could not do itself.
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


CREATE FUNCTION pgml_trigger._attach(target regclass, target_name text, model text, output_column text,
                                     features text[], mode text, log boolean, challenger text,
                                     explain_column text DEFAULT NULL, explain_top_k integer DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
DECLARE
    resolved record;
    m record;
    out_type record;
    output text;
    cols text[];
    categories "char"[];
    attachment_id integer;
    fn_name name;
    trg_name name;
    features_expr text;
    key_columns text[];
    row_key text;
    numbers_expr text;
    texts_expr text;
    features_args text := 'chunk.features';
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

    SELECT * INTO out_type FROM pgml_trigger._column_type(target, output_column);
    IF out_type.category IS NULL AND mode = 'statement' THEN
        -- statement mode writes to the prediction log: the output "column" only names the prediction there
        output := CASE WHEN m.task = 'classification' AND m.classes::text ~ '"' THEN 'label' ELSE 'value' END;
    ELSIF out_type.category IS NULL THEN
        RAISE EXCEPTION 'column "%" of % does not exist', output_column, target_name
            USING ERRCODE = 'undefined_column';
    ELSIF out_type.category = 'N' AND m.task = 'classification' AND m.classes::text ~ '"' THEN
        -- refused now rather than on every row the trigger would score
        RAISE EXCEPTION 'model %@% predicts text labels; its output column "%" must be text, not %',
            m.name, m.version, output_column, out_type.type_name USING ERRCODE = 'datatype_mismatch';
    ELSIF out_type.category = 'N' THEN
        output := 'value';
    ELSIF out_type.category = 'S' AND m.task = 'classification' THEN
        output := 'label';
    ELSIF out_type.category = 'S' THEN
        RAISE EXCEPTION 'model %@% is a regressor; its output column "%" must be numeric, not %',
            m.name, m.version, output_column, out_type.type_name USING ERRCODE = 'datatype_mismatch';
    ELSE
        RAISE EXCEPTION 'output column "%" is %; it must be numeric (prediction) or text (class label)',
            output_column, out_type.type_name USING ERRCODE = 'datatype_mismatch';
    END IF;

    cols := coalesce(features, m.feature_names);
    categories := pgml_trigger._feature_columns(target, target_name, format('%s@%s', m.name, m.version),
                                                m.feature_names, m.feature_types, cols, output_column);

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

    IF explain_column IS NOT NULL OR explain_top_k IS NOT NULL THEN
        PERFORM pgml_trigger._check_explain_column(target, target_name, format('%s@%s', m.name, m.version),
                                                   m.explainer_info, explain_column, explain_top_k,
                                                   CASE WHEN mode = 'row' THEN output_column END, cols);
    END IF;

    PERFORM pgml_trigger._detach(target, target_name, output_column)
    WHERE EXISTS (SELECT FROM pgml_trigger.attachments AS a
                  WHERE a.target = _attach.target AND a.output_column = _attach.output_column);

    trg_name := CASE WHEN octet_length('pgml_score_' || output_column) <= 63
                         THEN 'pgml_score_' || output_column
                         ELSE left('pgml_score_' || output_column, 40) || '_' || md5(output_column) END;
    INSERT INTO pgml_trigger.attachments AS a (target, output_column, model_ref, feature_names, columns, output,
                                               trigger_name, created_by, mode, log, challenger, key_columns,
                                               explain_column, explain_top_k)
    VALUES (target, output_column, model, m.feature_names, cols, output, trg_name, session_user, mode, log,
            challenger, key_columns, explain_column, explain_top_k)
    RETURNING a.id, a.function_name INTO attachment_id, fn_name;

    IF mode = 'statement' THEN
        -- Chunks of the transition table, scored at once and written to the log by the owner. The row
        -- is named in the log by its primary key, as text.
        row_key := CASE WHEN cardinality(key_columns) = 1 THEN format('inserted.%I::text', key_columns[1])
                        ELSE format('jsonb_build_array(%s)::text',
                                    (SELECT string_agg(format('inserted.%I', k), ', ') FROM unnest(key_columns) AS k))
                        END;
        SELECT k.numbers, k.texts INTO numbers_expr, texts_expr
        FROM pgml_trigger._features_by_kind(target, cols, m.feature_types, 'inserted') AS k;
        IF NOT ('string' = ANY (m.feature_types)) THEN
            -- booleans have no cast to float8, but do to integer
            features_expr := format('array_send(array_agg(ARRAY[%s]::double precision[])) AS features',
                                    (SELECT string_agg(format('inserted.%I%s', c.name,
                                                              CASE WHEN categories[c.i] = 'B' THEN '::integer' END),
                                                       ', ' ORDER BY c.i)
                                     FROM unnest(cols) WITH ORDINALITY AS c(name, i)));
        ELSIF numbers_expr IS NOT NULL AND 'number' = ANY (m.feature_types) THEN  -- array_agg takes no empty arrays
            features_expr := format('array_agg(%s) AS numbers, array_agg(%s) AS texts', numbers_expr, texts_expr);
            features_args := format('chunk.numbers, chunk.texts, %L', array_to_string(m.feature_types, ','));
        ELSE
            features_expr := format('array_agg(jsonb_build_object(%s)) AS features',
                                    (SELECT string_agg(format('%L, inserted.%I', m.feature_names[c.i], c.name),
                                                       ', ' ORDER BY c.i)
                                     FROM unnest(cols) WITH ORDINALITY AS c(name, i)));
        END IF;
        body := format($body$
DECLARE
    chunk record;
BEGIN
    FOR chunk IN
        SELECT array_agg(%1$s) AS keys, %2$s
        FROM (SELECT new_rows.*, row_number() OVER () - 1 AS chunk_row FROM new_rows) AS inserted
        GROUP BY inserted.chunk_row / 10000
    LOOP
        PERFORM pgml_trigger._score_statement(%3$s, chunk.keys, %4$s, statement_timestamp());
    END LOOP;
    RETURN NULL;
END
$body$, row_key, features_expr, attachment_id, features_args);
    ELSE
        body := pgml_trigger._row_trigger_body(attachment_id);
    END IF;

    PERFORM pgml_trigger._write_trigger_function(fn_name, body,
        format('scoring trigger for %s.%s, model %s (made by pgml_trigger.attach)', target_name,
               quote_ident(output_column), model));
    IF mode = 'statement' THEN
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows '
                       'FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger.%I()', trg_name, target, fn_name);
    ELSE
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %s ON %s '
                       'FOR EACH ROW EXECUTE FUNCTION pgml_trigger.%I()',
                       trg_name, (SELECT string_agg(quote_ident(c), ', ') FROM unnest(cols) AS c), target, fn_name);
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

-- target::text is evaluated here, in the caller's search_path, so messages name the table as the
-- caller wrote it.
CREATE FUNCTION pgml_trigger.attach(target regclass, model text, output_column text, features text[] DEFAULT NULL,
                                    mode text DEFAULT 'row', log boolean DEFAULT false, challenger text DEFAULT NULL,
                                    explain_column text DEFAULT NULL, explain_top_k integer DEFAULT NULL)
RETURNS text
LANGUAGE sql AS $$
    SELECT pgml_trigger._attach(target, target::text, model, output_column, features, mode, log, challenger,
                                explain_column, explain_top_k)
$$;
COMMENT ON FUNCTION pgml_trigger.attach(regclass, text, text, text[], text, boolean, text, text, integer) IS
    'score target''s rows with model: into output_column (mode row) or into the prediction log (mode statement); '
    'with explain_column, the reasons too';

CREATE FUNCTION pgml_trigger.detach(target regclass, output_column text) RETURNS void
LANGUAGE sql STRICT AS $$ SELECT pgml_trigger._detach(target, target::text, output_column) $$;
COMMENT ON FUNCTION pgml_trigger.detach(regclass, text) IS 'remove the scoring trigger that fills output_column';

------------------------------------------------------------------------------
-- Row triggers that score linear models as SQL arithmetic.
--
-- A row trigger that calls into PL/Python costs several microseconds a row before the model does
-- anything. For a version with a linear_form (pgml_trigger/uploader/linear.py: scalers folded into one intercept
-- and one row of coefficients per decision, scaled so that no product can underflow), the generated
-- trigger computes the prediction itself, and calls the Python path only for the rows the arithmetic
-- cannot take: a NULL, NaN, infinite or huge feature, which then meet the missing-value policy and the
-- errors of the Python path.
--
-- The body names one version, so it is rewritten whenever what the attachment's model reference
-- resolves to may change: after every write to models or aliases, in the writer's transaction, so
-- sessions see the new body exactly when they see the new catalog. Those writes already queue on the
-- catalog_state row, which keeps two sessions from rewriting one function at once.
--
-- Not for attachments that log or have a challenger (the log is written by Python), nor when the
-- database requires signed models (pgml_trigger.hmac_key_file: the signature covers the payloads,
-- which the arithmetic never reads), leaves the version's format out of pgml_trigger.allowed_formats,
-- or sets pgml_trigger.sql_triggers = off: the coefficients stand in the function's source, which
-- every role may read in pg_proc. After changing those settings, SELECT pgml_trigger.rewrite_row_triggers().
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
    numbers_expr text;           -- a row with text features as a float8[] and a text[] (_features_by_kind)
    texts_expr text;
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
        SELECT * INTO col FROM pgml_trigger._column_type(a.target, a.columns[i]);
        all_numeric := all_numeric AND coalesce(col.category IN ('N', 'B'), false);
        new_values := new_values || format('NEW.%I', a.columns[i]);
        old_values := old_values || format('OLD.%I', a.columns[i]);
        -- booleans have no cast to float8, but do to integer
        by_position := by_position || format('NEW.%I%s', a.columns[i],
                                             CASE WHEN col.type_oid = 'double precision'::regtype THEN ''
                                                  WHEN col.category = 'B' THEN '::integer::double precision'
                                                  ELSE '::double precision' END);
        by_name := by_name || format('%L, NEW.%I', a.feature_names[i], a.columns[i]);
    END LOOP;
    BEGIN
        SELECT mm.* INTO m FROM pgml_trigger.resolve_model(a.model_ref) AS r
        JOIN pgml_trigger.models AS mm USING (name, version);
        form := m.linear_form;
        -- by kind for the features of the version the reference resolves to now: the body is rewritten when it changes
        IF NOT all_numeric AND m.feature_names = a.feature_names THEN
            SELECT k.numbers, k.texts INTO numbers_expr, texts_expr
            FROM pgml_trigger._features_by_kind(a.target, a.columns, m.feature_types, 'NEW') AS k;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        form := NULL;  -- the reference resolves to nothing now; the Python path says so when a row comes
    END;
    features_expr := CASE WHEN all_numeric THEN format('ARRAY[%s]', array_to_string(by_position, ', '))
                          WHEN numbers_expr IS NOT NULL THEN format('%s, %s', numbers_expr, texts_expr)
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
    allowed := nullif(btrim(pgml_trigger._database_setting('pgml_trigger.allowed_formats')), '');
    IF form IS NULL OR a.log OR a.challenger IS NOT NULL OR NOT all_numeric
       OR m.feature_names IS DISTINCT FROM a.feature_names
       OR (a.output = 'value' AND m.task = 'classification' AND jsonb_typeof(form -> 'values') IS DISTINCT FROM 'array')
       OR (a.output = 'label' AND m.task <> 'classification')
       OR pgml_trigger._database_setting('pgml_trigger.hmac_key_file') IS NOT NULL
       OR lower(btrim(pgml_trigger._database_setting('pgml_trigger.sql_triggers'))) IN ('off', 'false', 'no', '0')
       OR (allowed IS NOT NULL AND NOT m.format = ANY (SELECT lower(btrim(f)) FROM unnest(string_to_array(allowed, ',')) AS f))
       OR a.explain_column IS NOT NULL
    THEN
        RETURN format($body$
BEGIN
    IF TG_OP = 'UPDATE' AND (%1$s) IS NOT DISTINCT FROM (%2$s) THEN
        RETURN NEW;  -- no feature changed: keep the stored prediction
    END IF;
    NEW.%3$I := %4$s;%5$s
    RETURN NEW;
END
$body$, array_to_string(new_values, ', '), array_to_string(old_values, ', '), a.output_column, python,
        CASE WHEN a.explain_column IS NOT NULL  -- the reasons for that prediction: explain() of the same row
             THEN format(E'\n    NEW.%I := pgml_trigger._explain_row(%s, %s, statement_timestamp());',
                         a.explain_column, a.id, features_expr) ELSE '' END);
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
-- %1$s@%2$s as SQL arithmetic (pgml_trigger/uploader/linear.py); the Python path scores the rows it cannot take.
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
            PERFORM pgml_trigger._write_trigger_function(fn.function_name, body, NULL);
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

-- A dropped table (or a trigger dropped with a column) takes its attachment record and generated
-- function with it. Fires for every DROP by anyone; it only forgets attachments whose trigger is gone.
CREATE FUNCTION pgml_trigger._forget_dropped_attachments() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
DECLARE
    gone record;
BEGIN
    FOR gone IN
        DELETE FROM pgml_trigger.attachments AS a
        WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_trigger AS t WHERE t.tgrelid = a.target AND t.tgname = a.trigger_name)
        RETURNING a.function_name
    LOOP
        EXECUTE format('DROP FUNCTION IF EXISTS pgml_trigger.%I()', gone.function_name);
    END LOOP;
END
$$;
CREATE EVENT TRIGGER pgml_trigger_forget_dropped ON sql_drop
    EXECUTE FUNCTION pgml_trigger._forget_dropped_attachments();

------------------------------------------------------------------------------
-- Reasons: attach(..., explain_column => 'reasons', explain_top_k => 3) has a row trigger write explain() of
-- its prediction into a jsonb column of the row (pgml_trigger/server/explain.py), from the same features in the
-- same call chain; in mode statement the reasons go into the prediction log beside the prediction.
------------------------------------------------------------------------------

-- What an explain_column must be: a json or jsonb column of target, neither the output nor a feature (mode row:
-- output_column given; mode statement: it only names the reasons in the log); and the model must have an
-- explainer, else attaching fails now with explain()'s own error.
CREATE FUNCTION pgml_trigger._check_explain_column(target regclass, target_name text, model_label text,
                                                   explainer_info jsonb, explain_column text, explain_top_k integer,
                                                   output_column text, columns text[]) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col record;
BEGIN
    IF explain_column IS NULL THEN
        RAISE EXCEPTION 'explain_top_k needs an explain_column to write the reasons to'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF explain_top_k < 1 THEN
        RAISE EXCEPTION 'explain_top_k must be at least 1, not %', explain_top_k USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF explainer_info IS NULL OR NOT coalesce((explainer_info ->> 'explained')::boolean, false) THEN
        RAISE EXCEPTION 'model % cannot be explained: %', model_label,
            coalesce(explainer_info ->> 'reason', 'it was uploaded without an explainer')
            USING ERRCODE = coalesce(explainer_info ->> 'sqlstate', 'object_not_in_prerequisite_state');
    END IF;
    IF output_column IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO col FROM pgml_trigger._column_type(target, explain_column);
    IF col.category IS NULL THEN
        RAISE EXCEPTION 'column "%" of % does not exist', explain_column, target_name USING ERRCODE = 'undefined_column';
    ELSIF col.type_oid NOT IN ('jsonb'::regtype, 'json'::regtype) THEN
        RAISE EXCEPTION 'explain column "%" is %; the reasons are jsonb', explain_column, col.type_name
            USING ERRCODE = 'datatype_mismatch';
    ELSIF explain_column = output_column OR explain_column = ANY (columns) THEN
        RAISE EXCEPTION 'column "%" cannot hold the reasons: it is the output or a feature', explain_column
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

CREATE FUNCTION pgml_trigger._explain_row(attachment integer, features double precision[], clock timestamptz)
RETURNS jsonb
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].explain_row(attachment, features, clock)
$$;
CREATE FUNCTION pgml_trigger._explain_row(attachment integer, features jsonb, clock timestamptz) RETURNS jsonb
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].explain_row(attachment, features, clock)
$$;
CREATE FUNCTION pgml_trigger._explain_row(attachment integer, numbers double precision[], texts text[],
                                          clock timestamptz) RETURNS jsonb
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].explain_typed_row(attachment, numbers, texts, clock)
$$;

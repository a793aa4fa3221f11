-- pgml_trigger 0.1.0 -> 0.2.0: the migration ledger's schema becomes the extension's.
--
-- 0.1.0 is what the ledger (sql/ledger/0001-0008) made; this script changes only what 0.2.0 changed,
-- so that an updated database and a fresh CREATE EXTENSION are the same (tests/test_extension.py
-- compares their pg_dump --schema-only). Each definition is copied from its file in sql/.

-- runtime.sql: the host's default environment; one clean error when it is missing.
CREATE OR REPLACE FUNCTION pgml_trigger._python_path() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(
        pgml_trigger._database_setting('pgml_trigger.python_path'),
        (SELECT nullif(btrim(pg_read_file(c.setting || '/extension/pgml_trigger.python_path', 0, 4096, true),
                             E' \t\r\n'), '')
         FROM pg_catalog.pg_config AS c WHERE c.name = 'SHAREDIR'))
$$;
COMMENT ON FUNCTION pgml_trigger._python_path() IS
    'the site-packages the server imports pgml_trigger from: the database''s setting, else the host''s default';

CREATE OR REPLACE FUNCTION pgml_trigger._bootstrap() RETURNS void
LANGUAGE plpython3u SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
import site, sys
path = plpy.execute("SELECT pgml_trigger._python_path() AS path")[0]["path"]
if path and path not in sys.path:
    before = list(sys.path)
    site.addsitedir(path)
    sys.path[:] = [p for p in sys.path if p not in before] + before
try:
    from pgml_trigger.server import entry
except ImportError as exc:
    database = plpy.execute("SELECT current_database() AS name")[0]["name"]
    error = type("pgml_trigger", (plpy.Error,), {"__module__": "__main__"})(
        f"the server cannot import the pgml_trigger Python package ({exc}); "
        f"its environment: {path or 'none is set for this database or host'}")
    error.sqlstate = "55000"
    error.hint = ("install the environment on the database host, as root: "
                  f"pgml-trigger install --dsn 'dbname={database}' (or install/install.sh with the same options)")

    class Missing:
        def catalog_changed(self):
            pass

        def __getattr__(self, name):
            GD.pop("pgml_trigger", None)
            raise error

    entry = Missing()
GD["pgml_trigger"] = entry
$$;

-- catalog.sql: rows a restore puts back keep their versions, and their alias history.
CREATE OR REPLACE FUNCTION pgml_trigger._models_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- pg_dump writes a row as text, a bytea as hex: twice its size, within PostgreSQL's 1 GB for one
    -- value. pgml_trigger/formats.py MAX_STORED_BYTES says the same to the uploader.
    IF octet_length(NEW.payload) + coalesce(octet_length(NEW.compiled_payload), 0) > 524288000 THEN
        RAISE EXCEPTION 'model "%" is % bytes with its compiled payload; pgml_trigger stores at most 500 MiB',
            NEW.name, octet_length(NEW.payload) + coalesce(octet_length(NEW.compiled_payload), 0)
            USING ERRCODE = 'program_limit_exceeded',
                  HINT = 'a dump writes a payload as hex text, twice its size, and PostgreSQL''s limit is 1 GB';
    END IF;
    IF coalesce(NEW.version, 0) < 1
       OR NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = current_user) THEN
        -- The lock makes concurrent uploads of one name take turns, and the max() below runs after it
        -- with a fresh snapshot.
        PERFORM pg_advisory_xact_lock(hashtext('pgml_trigger.models'), hashtext(NEW.name));
        SELECT coalesce(max(m.version), 0) + 1 INTO NEW.version FROM pgml_trigger.models AS m WHERE m.name = NEW.name;
        NEW.created_at := now();
        NEW.created_by := current_user;
    END IF;
    IF NEW.sha256 IS DISTINCT FROM encode(sha256(NEW.payload), 'hex') THEN
        RAISE EXCEPTION 'the payload of model "%" does not match the sha256 sent with it', NEW.name
            USING ERRCODE = 'data_corrupted';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION pgml_trigger._record_alias_move() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO pgml_trigger.alias_history (name, alias, from_version, to_version, kind)
        VALUES (OLD.name, OLD.alias, OLD.version, NULL, 'delete');
    ELSIF TG_OP = 'INSERT' AND NEW.updated_at < transaction_timestamp()
          AND (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname = session_user) THEN
        NULL;
    ELSIF TG_OP = 'INSERT' OR NEW.version IS DISTINCT FROM OLD.version THEN
        INSERT INTO pgml_trigger.alias_history (name, alias, from_version, to_version)
        VALUES (NEW.name, NEW.alias, CASE WHEN TG_OP = 'UPDATE' THEN OLD.version END, NEW.version);
    END IF;
    RETURN NULL;
END
$$;

-- What pg_dump carries of the user's data.
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.models', '');
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.aliases', '');
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.alias_history', '');
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.alias_history_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.attachments', '');
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.attachments_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.prediction_log', '');
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.prediction_log_id_seq', '');

-- scoring.sql and triggers.sql: one check of a table's columns for attach() and score().
CREATE FUNCTION pgml_trigger._column_type(target regclass, column_name text, OUT category "char", OUT type_name text,
                                          OUT type_oid regtype)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.typcategory, format_type(a.atttypid, a.atttypmod), a.atttypid::regtype
    FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    WHERE a.attrelid = target AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION pgml_trigger._column_type(regclass, text) IS
    'type category, type name and type of a column of a table; NULLs when there is no such column';

CREATE FUNCTION pgml_trigger._feature_columns(target regclass, target_name text, model_label text,
                                              feature_names text[], feature_types text[], columns text[],
                                              output_column text) RETURNS "char"[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    col record;
    categories "char"[] := '{}';
BEGIN
    IF cardinality(columns) IS DISTINCT FROM cardinality(feature_names) THEN
        RAISE EXCEPTION 'model % expects % features, the features list names %',
            model_label, cardinality(feature_names), coalesce(cardinality(columns), 0)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('features in model order: %s', array_to_string(feature_names, ', '));
    END IF;
    FOR i IN 1 .. cardinality(columns) LOOP
        SELECT * INTO col FROM pgml_trigger._column_type(target, columns[i]);
        IF col.category IS NULL THEN
            RAISE EXCEPTION 'column "%" of % does not exist; model % needs it for feature "%"',
                columns[i], target_name, model_label, feature_names[i] USING ERRCODE = 'undefined_column',
                HINT = 'pass features => ARRAY[...] to name the column for each feature, in model order';
        END IF;
        IF columns[i] = output_column THEN
            RAISE EXCEPTION 'column "%" cannot be both a feature and the output', output_column
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF feature_types[i] = 'number' AND col.category NOT IN ('N', 'B') THEN
            RAISE EXCEPTION 'column "%" is %, but feature "%" of model % is numeric',
                columns[i], col.type_name, feature_names[i], model_label USING ERRCODE = 'datatype_mismatch';
        ELSIF feature_types[i] = 'string' AND col.category NOT IN ('S', 'E') THEN
            RAISE EXCEPTION 'column "%" is %, but feature "%" of model % is text',
                columns[i], col.type_name, feature_names[i], model_label USING ERRCODE = 'datatype_mismatch';
        END IF;
        categories := categories || col.category;
    END LOOP;
    RETURN categories;
END
$$;
COMMENT ON FUNCTION pgml_trigger._feature_columns(regclass, text, text, text[], text[], text[], text) IS
    'check the columns that feed a model''s features; their type categories, in model order';

CREATE OR REPLACE FUNCTION pgml_trigger.score(model text, source regclass, output_column text, features text[] DEFAULT NULL,
                                   batch_size integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    resolved record;
    m record;
    out_category "char";
    cols text[];
    categories "char"[];
    by_position text[] := '{}';
    by_name text[] := '{}';
    rows_expr text;
    scorer text;
    result_column text;
    n_blocks bigint;
    n_rows bigint;
    step bigint;
    low bigint := 0;
    scored bigint;
    error_state text;
    error_message text;
    error_detail text;
    error_hint text;
BEGIN
    IF model IS NULL OR source IS NULL OR output_column IS NULL THEN
        RAISE EXCEPTION 'pgml_trigger.score() needs a model, a table and an output column'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1, not %', batch_size USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO resolved FROM pgml_trigger.resolve_model(model);
    SELECT mm.name, mm.version, mm.task, mm.feature_names, mm.feature_types INTO m
    FROM pgml_trigger.models AS mm WHERE mm.name = resolved.name AND mm.version = resolved.version;

    out_category := (pgml_trigger._column_type(source, output_column)).category;
    IF out_category IS NULL THEN
        RAISE EXCEPTION 'column "%" of % does not exist', output_column, source USING ERRCODE = 'undefined_column';
    ELSIF out_category = 'N' THEN
        scorer := '_predict_batch';
        result_column := 'value';
    ELSIF out_category = 'S' AND m.task = 'classification' THEN
        scorer := '_predict_label_batch';
        result_column := 'label';
    ELSE
        RAISE EXCEPTION 'output column "%" must be numeric (prediction)%', output_column,
            CASE WHEN m.task = 'classification' THEN ' or text (class label)' ELSE '' END
            USING ERRCODE = 'datatype_mismatch';
    END IF;

    cols := coalesce(features, m.feature_names);
    categories := pgml_trigger._feature_columns(source, source::text, format('%s@%s', m.name, m.version),
                                                m.feature_names, m.feature_types, cols, output_column);
    FOR i IN 1 .. cardinality(cols) LOOP
        -- booleans have no cast to float8, but do to integer
        by_position := by_position || format('t.%I%s', cols[i], CASE WHEN categories[i] = 'B' THEN '::integer' END);
        by_name := by_name || format('%L, t.%I', m.feature_names[i], cols[i]);
    END LOOP;
    IF 'string' = ANY (m.feature_types) THEN
        rows_expr := format('array_agg(jsonb_build_object(%s))', array_to_string(by_name, ', '));
    ELSE
        rows_expr := format('array_send(array_agg(ARRAY[%s]::double precision[]))', array_to_string(by_position, ', '));
    END IF;

    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', source);
    EXECUTE format('SELECT count(*) FROM %s', source) INTO n_rows;
    IF n_rows = 0 THEN
        RETURN 0;
    END IF;
    n_blocks := pg_relation_size(source) / current_setting('block_size')::bigint;
    step := greatest(1, ceil(batch_size::numeric * n_blocks / n_rows))::bigint;

    IF to_regclass('pg_temp.pgml_trigger_scores') IS NOT NULL THEN
        DROP TABLE pg_temp.pgml_trigger_scores;
    END IF;
    CREATE TEMP TABLE pgml_trigger_scores (id tid, value double precision, label text) ON COMMIT DROP;
    WHILE low < n_blocks LOOP
        BEGIN
            EXECUTE format($q$
                WITH chunk AS (SELECT array_agg(t.ctid) AS ids, %1$s AS rows FROM %2$s AS t
                               WHERE t.ctid >= $1 AND t.ctid < $2)
                INSERT INTO pg_temp.pgml_trigger_scores (id, %3$I)
                SELECT s.id, s.result
                FROM chunk, unnest(chunk.ids, pgml_trigger.%4$I($3, chunk.rows, $4)) AS s(id, result)
                WHERE chunk.ids IS NOT NULL
            $q$, rows_expr, source, result_column, scorer)
            USING format('(%s,0)', low)::tid, format('(%s,0)', least(low + step, 4294967295))::tid, model,
                  statement_timestamp();
        EXCEPTION WHEN OTHERS THEN
            -- "row N" in a batch error counts within this range of blocks: say which range that is.
            GET STACKED DIAGNOSTICS error_state = RETURNED_SQLSTATE, error_message = MESSAGE_TEXT,
                                    error_detail = PG_EXCEPTION_DETAIL, error_hint = PG_EXCEPTION_HINT;
            RAISE EXCEPTION USING ERRCODE = error_state, MESSAGE = error_message, HINT = error_hint,
                DETAIL = concat_ws(E'\n', nullif(error_detail, ''),
                                   format('rows counted in physical order from ctid (%s,1) of %s', low, source));
        END;
        low := low + step;
    END LOOP;

    EXECUTE format('UPDATE %s AS t SET %I = s.%I FROM pg_temp.pgml_trigger_scores AS s WHERE t.ctid = s.id',
                   source, output_column, result_column);
    GET DIAGNOSTICS scored = ROW_COUNT;
    DROP TABLE pg_temp.pgml_trigger_scores;
    RETURN scored;
END
$$;

-- triggers.sql: generated functions depend on the extension; one writer of them.
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

CREATE OR REPLACE FUNCTION pgml_trigger._attach(target regclass, target_name text, model text, output_column text,
                                     features text[], mode text, log boolean, challenger text)
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

CREATE OR REPLACE FUNCTION pgml_trigger.attach(target regclass, model text, output_column text, features text[] DEFAULT NULL,
                                    mode text DEFAULT 'row', log boolean DEFAULT false, challenger text DEFAULT NULL)
RETURNS text
LANGUAGE sql AS $$
    SELECT pgml_trigger._attach(target, target::text, model, output_column, features, mode, log, challenger)
$$;

CREATE OR REPLACE FUNCTION pgml_trigger._row_trigger_body(attachment_id integer) RETURNS text
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

CREATE OR REPLACE FUNCTION pgml_trigger.rewrite_row_triggers() RETURNS integer
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

DO $$
DECLARE
    fn name;
BEGIN
    FOR fn IN SELECT a.function_name FROM pgml_trigger.attachments AS a ORDER BY a.id LOOP
        EXECUTE format('ALTER FUNCTION pgml_trigger.%I() DEPENDS ON EXTENSION pgml_trigger', fn);
    END LOOP;
END
$$;

-- observability.sql: doctor() checks every stored payload.
CREATE FUNCTION pgml_trigger._payload_checks(OUT name text, OUT version integer, OUT payload_intact boolean,
                                             OUT compiled_intact boolean)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
    SELECT m.name, m.version, encode(sha256(m.payload), 'hex') = m.sha256,
           m.compiled_payload IS NULL OR encode(sha256(m.compiled_payload), 'hex') = m.compiled_sha256
    FROM pgml_trigger.models AS m
    ORDER BY m.name, m.version
$$;
COMMENT ON FUNCTION pgml_trigger._payload_checks() IS
    'per model version: do the stored payload and compiled payload still match their sha256';

-- access.sql: grants by function name, in one place.
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

REVOKE ALL ON FUNCTION pgml_trigger._column_type(regclass, text),
    pgml_trigger._feature_columns(regclass, text, text, text[], text[], text[], text),
    pgml_trigger._write_trigger_function(name, text, text), pgml_trigger._payload_checks(),
    pgml_trigger._grant_execute(name, text[]) FROM PUBLIC;
SELECT pgml_trigger._grant_execute('pgml_trigger_user', ARRAY['_column_type', '_feature_columns', '_payload_checks']);

-- observability.sql: the server's load check of an upload before it commits.
CREATE FUNCTION pgml_trigger._check_version(name text, version integer, rows jsonb)
RETURNS text
LANGUAGE plpython3u VOLATILE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].check_version(name, version, rows)
$$;
COMMENT ON FUNCTION pgml_trigger._check_version(text, integer, jsonb) IS
    'load a model version as predict() would and score rows (a JSON array of objects keyed by feature name, '
    'or null to only load it); returns the scoring path. Called by the uploader before its transaction commits';
REVOKE ALL ON FUNCTION pgml_trigger._check_version(text, integer, jsonb) FROM PUBLIC;
SELECT pgml_trigger._grant_execute('pgml_trigger_admin', ARRAY['_check_version']);

-- triggers.sql and resolution.sql: one list of the scoring triggers using a version.
-- The scoring triggers whose model reference resolves to name@version now, for messages: what
-- delete_model() refuses over, and what a subscriber keeps a version for (replication.sql).
CREATE FUNCTION pgml_trigger._triggers_using(name text, version integer) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT string_agg(format('%s.%s (model %L)', t.target, quote_ident(t.output_column), t.model_ref), ', ')
    FROM pgml_trigger.attachments AS t, LATERAL pgml_trigger.resolve_model(t.model_ref) AS r
    WHERE r.name = _triggers_using.name AND r.version = _triggers_using.version
$$;
REVOKE ALL ON FUNCTION pgml_trigger._triggers_using(text, integer) FROM PUBLIC;
SELECT pgml_trigger._grant_execute('pgml_trigger_admin', ARRAY['_triggers_using']);
CREATE OR REPLACE FUNCTION pgml_trigger.delete_model(name text, version integer) RETURNS void
LANGUAGE plpgsql STRICT AS $$
DECLARE
    aliases text;
    triggers text;
BEGIN
    PERFORM pgml_trigger.resolve_model(format('%s@%s', delete_model.name, delete_model.version));
    SELECT string_agg(format('%L', a.alias), ', ' ORDER BY a.alias) INTO aliases
    FROM pgml_trigger.aliases AS a WHERE a.name = delete_model.name AND a.version = delete_model.version;
    triggers := pgml_trigger._triggers_using(delete_model.name, delete_model.version);
    IF aliases IS NOT NULL OR triggers IS NOT NULL THEN
        RAISE EXCEPTION 'model "%@%" is in use and cannot be deleted', delete_model.name, delete_model.version
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = concat_ws('; ', 'aliases: ' || aliases, 'scoring triggers: ' || triggers),
                  HINT = 'move the aliases (pgml_trigger.set_alias) and re-attach or detach the triggers first';
    END IF;
    DELETE FROM pgml_trigger.models AS m WHERE m.name = delete_model.name AND m.version = delete_model.version;
END
$$;

-- replication.sql: the catalog triggers a subscriber's apply worker fires, and local writes refused there.
CREATE TRIGGER models_catalog_changed_replicated AFTER INSERT OR UPDATE OR DELETE ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._catalog_changed();
CREATE TRIGGER aliases_catalog_changed_replicated AFTER INSERT OR UPDATE OR DELETE ON pgml_trigger.aliases
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._catalog_changed();
CREATE TRIGGER models_rewrite_row_triggers_replicated AFTER INSERT OR UPDATE OR DELETE ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._rewrite_row_triggers_after_change();
CREATE TRIGGER aliases_rewrite_row_triggers_replicated AFTER INSERT OR UPDATE OR DELETE ON pgml_trigger.aliases
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._rewrite_row_triggers_after_change();

-- The registry cannot see a subscriber's attachments, so it may delete a version that one of them
-- still scores with. The subscriber keeps such a version (and says so in its log) rather than fail the
-- application's INSERTs; a later version that reuses the number replaces it.
CREATE FUNCTION pgml_trigger._keep_version_in_use() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
DECLARE
    triggers text := pgml_trigger._triggers_using(OLD.name, OLD.version);
BEGIN
    IF triggers IS NOT NULL THEN
        RAISE WARNING 'model "%@%" was deleted on the registry but is kept here: scoring triggers use it (%)',
            OLD.name, OLD.version, triggers;
        RETURN NULL;
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER models_keep_version_in_use BEFORE DELETE ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._keep_version_in_use();

CREATE FUNCTION pgml_trigger._replace_kept_version() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
BEGIN
    DELETE FROM pgml_trigger.models AS m WHERE m.name = NEW.name AND m.version = NEW.version;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_replace_kept_version BEFORE INSERT ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._replace_kept_version();

ALTER TABLE pgml_trigger.models ENABLE REPLICA TRIGGER models_catalog_changed_replicated;
ALTER TABLE pgml_trigger.aliases ENABLE REPLICA TRIGGER aliases_catalog_changed_replicated;
ALTER TABLE pgml_trigger.models ENABLE REPLICA TRIGGER models_rewrite_row_triggers_replicated;
ALTER TABLE pgml_trigger.aliases ENABLE REPLICA TRIGGER aliases_rewrite_row_triggers_replicated;
ALTER TABLE pgml_trigger.models ENABLE REPLICA TRIGGER models_keep_version_in_use;
ALTER TABLE pgml_trigger.models ENABLE REPLICA TRIGGER models_replace_kept_version;

-- A subscriber's catalog is the registry's: a local upload, alias move or delete would diverge from it
-- and, at the next replicated change of the same row, stop the subscription with a key conflict.
CREATE FUNCTION pgml_trigger._refuse_local_catalog_writes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
DECLARE
    subscription text;
BEGIN
    SELECT s.subname INTO subscription FROM pg_catalog.pg_subscription AS s
    WHERE s.subdbid = (SELECT d.oid FROM pg_catalog.pg_database AS d WHERE d.datname = current_database())
      AND 'pgml_trigger_catalog' = ANY (s.subpublications)
    LIMIT 1;
    IF subscription IS NOT NULL THEN
        RAISE EXCEPTION 'this database receives its models from a registry (subscription "%"); % on % is refused here',
            subscription, lower(TG_OP), TG_TABLE_NAME
            USING ERRCODE = 'read_only_sql_transaction',
                  HINT = 'upload, move aliases and delete versions on the registry database';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER models_refuse_local_writes BEFORE INSERT OR UPDATE OR DELETE ON pgml_trigger.models
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._refuse_local_catalog_writes();
CREATE TRIGGER aliases_refuse_local_writes BEFORE INSERT OR UPDATE OR DELETE ON pgml_trigger.aliases
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._refuse_local_catalog_writes();

REVOKE ALL ON FUNCTION pgml_trigger._keep_version_in_use(), pgml_trigger._replace_kept_version(),
    pgml_trigger._refuse_local_catalog_writes() FROM PUBLIC;

-- catalog.sql: the writer publishes the generation it bumped to (pgml_trigger/server/generation.py).
CREATE OR REPLACE FUNCTION pgml_trigger._catalog_changed() RETURNS trigger
LANGUAGE plpython3u SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
import os
row = plpy.execute("UPDATE pgml_trigger.catalog_state SET generation = generation + 1 RETURNING generation, "
                   "(SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) AS database")[0]
directory = f"pg_stat_tmp/pgml_trigger/{row['database']}"  # in the data directory, beside the counters
os.makedirs(directory, exist_ok=True)
descriptor = os.open(f"{directory}/generation", os.O_RDWR | os.O_CREAT, 0o600)
try:  # in place, never replaced: readers keep it mapped
    os.pwrite(descriptor, row["generation"].to_bytes(8, "little", signed=True), 0)
finally:
    os.close(descriptor)
if "pgml_trigger" in GD: GD["pgml_trigger"].catalog_changed()
$$;

-- scoring.sql: rows by name, cache_info() with how each model scores and loaded, warm_up().
CREATE FUNCTION pgml_trigger._predict(model text, features json, clock timestamptz) RETURNS double precision
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict(model, features, clock)
$$;
CREATE FUNCTION pgml_trigger._predict_label(model text, features json, clock timestamptz) RETURNS text
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_label(model, features, clock)
$$;
CREATE FUNCTION pgml_trigger._predict_proba(model text, features json, clock timestamptz)
RETURNS double precision[]
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_proba(model, features, clock)
$$;
-- features: the text of a JSON array of rows (array_to_json()).
CREATE FUNCTION pgml_trigger._predict_batch(model text, features json, clock timestamptz)
RETURNS double precision[]
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_batch(model, features, clock)
$$;

CREATE FUNCTION pgml_trigger.predict(model text, features record) RETURNS double precision
LANGUAGE plpgsql STABLE STRICT AS $$
BEGIN
    RETURN pgml_trigger._predict(model, pg_catalog.row_to_json(features), pg_catalog.statement_timestamp());
END
$$;
CREATE FUNCTION pgml_trigger.predict_label(model text, features record) RETURNS text
LANGUAGE plpgsql STABLE STRICT AS $$
BEGIN
    RETURN pgml_trigger._predict_label(model, pg_catalog.row_to_json(features), pg_catalog.statement_timestamp());
END
$$;
CREATE FUNCTION pgml_trigger.predict_proba(model text, features record) RETURNS double precision[]
LANGUAGE plpgsql STABLE STRICT AS $$
BEGIN
    RETURN pgml_trigger._predict_proba(model, pg_catalog.row_to_json(features), pg_catalog.statement_timestamp());
END
$$;
COMMENT ON FUNCTION pgml_trigger.predict(text, record) IS
    'prediction of a model for a table row, its columns matched to the features by name';
COMMENT ON FUNCTION pgml_trigger.predict_label(text, record) IS 'predicted class label of a table row, as text';
COMMENT ON FUNCTION pgml_trigger.predict_proba(text, record) IS
    'class probabilities for a table row, in the order of the model''s classes';

-- predict_batch('churn', json_agg(c)): the rows as a JSON array. Not an anyarray overload: that would
-- make predict_batch('m', ARRAY[[...]]) over numeric ambiguous, where it now means double precision[].
CREATE FUNCTION pgml_trigger.predict_batch(model text, features json) RETURNS double precision[]
LANGUAGE sql STABLE STRICT AS $$ SELECT pgml_trigger._predict_batch(model, features, statement_timestamp()) $$;
COMMENT ON FUNCTION pgml_trigger.predict_batch(text, json) IS
    'predictions for a JSON array of rows (e.g. json_agg(t)), keys matched to features by name; '
    'a null row predicts NULL';
DROP FUNCTION pgml_trigger.cache_info();
CREATE FUNCTION pgml_trigger.cache_info(
    OUT name text, OUT version integer, OUT sha256 text, OUT payload_bytes bigint, OUT loads bigint,
    OUT scoring_path text, OUT load_seconds double precision, OUT load_stages jsonb)
RETURNS SETOF record
LANGUAGE plpython3u VOLATILE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].cache_info()
$$;
COMMENT ON FUNCTION pgml_trigger.cache_info() IS
    'models deserialized in this backend, how often each was loaded, how it scores, its last load time by stage';
CREATE FUNCTION pgml_trigger._warm_up(models text[], clock timestamptz,
    OUT model text, OUT name text, OUT version integer, OUT scoring_path text, OUT load_seconds double precision)
RETURNS SETOF record
LANGUAGE plpython3u VOLATILE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].warm_up(models, clock)
$$;
CREATE FUNCTION pgml_trigger.warm_up(VARIADIC models text[],
    OUT model text, OUT name text, OUT version integer, OUT scoring_path text, OUT load_seconds double precision)
RETURNS SETOF record
LANGUAGE sql VOLATILE STRICT AS $$ SELECT * FROM pgml_trigger._warm_up(models, statement_timestamp()) $$;
COMMENT ON FUNCTION pgml_trigger.warm_up(text[]) IS
    'load models into this backend now (a pooled connection''s first request then scores at once)';
REVOKE ALL ON FUNCTION pgml_trigger._predict(text, json, timestamptz),
    pgml_trigger._predict_label(text, json, timestamptz), pgml_trigger._predict_proba(text, json, timestamptz),
    pgml_trigger._predict_batch(text, json, timestamptz), pgml_trigger.predict(text, record),
    pgml_trigger.predict_label(text, record), pgml_trigger.predict_proba(text, record),
    pgml_trigger.predict_batch(text, json), pgml_trigger.cache_info(), pgml_trigger._warm_up(text[], timestamptz),
    pgml_trigger.warm_up(text[]) FROM PUBLIC;
SELECT pgml_trigger._grant_execute('pgml_trigger_user', ARRAY['_predict', '_predict_label', '_predict_proba',
    '_predict_batch', 'predict', 'predict_label', 'predict_proba', 'predict_batch', 'cache_info', '_warm_up',
    'warm_up']);

-- observability.sql: counters() adds the seconds spent loading each model.
DROP FUNCTION pgml_trigger.counters();
CREATE FUNCTION pgml_trigger.counters(
    OUT name text, OUT version integer, OUT backends integer, OUT calls bigint, OUT rows bigint, OUT errors bigint,
    OUT loads bigint, OUT seconds double precision, OUT load_seconds double precision)
RETURNS SETOF record
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].counters()
$$;
COMMENT ON FUNCTION pgml_trigger.counters() IS
    'per model: calls, rows, errors, loads, seconds spent scoring and loading, summed over this server''s backends';
REVOKE ALL ON FUNCTION pgml_trigger.counters() FROM PUBLIC;
SELECT pgml_trigger._grant_execute('pgml_trigger_user', ARRAY['counters']);

-- triggers.sql: rows with text features go to Python by kind (_attach and _row_trigger_body above call these).
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
REVOKE ALL ON FUNCTION pgml_trigger._score_row(integer, double precision[], text[], timestamptz),
    pgml_trigger._label_row(integer, double precision[], text[], timestamptz),
    pgml_trigger._score_row_logged(integer, double precision[], text[], timestamptz, text),
    pgml_trigger._label_row_logged(integer, double precision[], text[], timestamptz, text),
    pgml_trigger._score_statement(integer, text[], double precision[], text[], text, timestamptz),
    pgml_trigger._features_by_kind(regclass, text[], text[], text) FROM PUBLIC;
SELECT pgml_trigger._grant_execute('pgml_trigger_user', ARRAY['_score_row', '_label_row', '_score_row_logged',
    '_label_row_logged', '_score_statement']);

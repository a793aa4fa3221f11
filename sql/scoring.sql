------------------------------------------------------------------------------
-- scoring.sql: SQL scoring, one row, a batch, or a whole table.
--
-- The public functions are inlined SQL wrappers that add statement_timestamp(): the runtime re-reads
-- the catalog generation only when that changes, i.e. at most once per statement.
------------------------------------------------------------------------------

-- The only way the server reads a payload. It runs as the table owner and hands the bytes to the
-- calling Python code in this backend (Catalog.payload); SQL gets only their length.
CREATE FUNCTION pgml_trigger._fetch_payload(name text, version integer, compiled boolean) RETURNS bigint
LANGUAGE plpython3u STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].fetch_payload(name, version, compiled)
$$;

CREATE FUNCTION pgml_trigger._predict(model text, features jsonb, clock timestamptz) RETURNS double precision
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict(model, features, clock)
$$;
CREATE FUNCTION pgml_trigger._predict(model text, features double precision[], clock timestamptz)
RETURNS double precision
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict(model, features, clock)
$$;
CREATE FUNCTION pgml_trigger._predict_label(model text, features jsonb, clock timestamptz) RETURNS text
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_label(model, features, clock)
$$;
CREATE FUNCTION pgml_trigger._predict_label(model text, features double precision[], clock timestamptz) RETURNS text
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_label(model, features, clock)
$$;
CREATE FUNCTION pgml_trigger._predict_proba(model text, features jsonb, clock timestamptz)
RETURNS double precision[]
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_proba(model, features, clock)
$$;
CREATE FUNCTION pgml_trigger._predict_proba(model text, features double precision[], clock timestamptz)
RETURNS double precision[]
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_proba(model, features, clock)
$$;

CREATE FUNCTION pgml_trigger.predict(model text, features jsonb) RETURNS double precision
LANGUAGE sql STABLE STRICT AS $$ SELECT pgml_trigger._predict(model, features, statement_timestamp()) $$;
CREATE FUNCTION pgml_trigger.predict(model text, features double precision[]) RETURNS double precision
LANGUAGE sql STABLE STRICT AS $$ SELECT pgml_trigger._predict(model, features, statement_timestamp()) $$;
CREATE FUNCTION pgml_trigger.predict_label(model text, features jsonb) RETURNS text
LANGUAGE sql STABLE STRICT AS $$ SELECT pgml_trigger._predict_label(model, features, statement_timestamp()) $$;
CREATE FUNCTION pgml_trigger.predict_label(model text, features double precision[]) RETURNS text
LANGUAGE sql STABLE STRICT AS $$ SELECT pgml_trigger._predict_label(model, features, statement_timestamp()) $$;
CREATE FUNCTION pgml_trigger.predict_proba(model text, features jsonb) RETURNS double precision[]
LANGUAGE sql STABLE STRICT AS $$ SELECT pgml_trigger._predict_proba(model, features, statement_timestamp()) $$;
CREATE FUNCTION pgml_trigger.predict_proba(model text, features double precision[]) RETURNS double precision[]
LANGUAGE sql STABLE STRICT AS $$ SELECT pgml_trigger._predict_proba(model, features, statement_timestamp()) $$;

COMMENT ON FUNCTION pgml_trigger.predict(text, jsonb) IS 'prediction of a model for one row given by feature name';
COMMENT ON FUNCTION pgml_trigger.predict(text, double precision[]) IS 'prediction of a model for one row given in feature order';
COMMENT ON FUNCTION pgml_trigger.predict_label(text, jsonb) IS 'predicted class label, as text';
COMMENT ON FUNCTION pgml_trigger.predict_label(text, double precision[]) IS 'predicted class label, as text';
COMMENT ON FUNCTION pgml_trigger.predict_proba(text, jsonb) IS 'class probabilities, in the order of the model''s classes';
COMMENT ON FUNCTION pgml_trigger.predict_proba(text, double precision[]) IS 'class probabilities, in the order of the model''s classes';

-- Rows by name: predict('churn', c) FROM customers AS c. The row's columns are matched to the model's
-- features by name (extra columns ignored). PL/Python cannot take a record, nor SQL functions, so a thin
-- PL/pgSQL wrapper hands the row over as row_to_json() text: every float8 is written once by its own
-- output function, where to_jsonb() converts it to numeric first. A record argument also leaves the
-- resolution of every existing call as it was (an array literal is never a record).
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

-- Loading models before the first request (a pooled connection's configure hook).
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

CREATE FUNCTION pgml_trigger._loaded_scoring_path(model text, clock timestamptz) RETURNS text
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].loaded_scoring_path(model, clock)
$$;
CREATE FUNCTION pgml_trigger.loaded_scoring_path(model text) RETURNS text
LANGUAGE sql STABLE STRICT AS $$ SELECT pgml_trigger._loaded_scoring_path(model, statement_timestamp()) $$;
COMMENT ON FUNCTION pgml_trigger.loaded_scoring_path(text) IS
    'how this session scores the model: onnx, or sklearn (not compiled, or no onnxruntime in the server)';

------------------------------------------------------------------------------
-- Batch scoring: one call, many rows, results in input order.
------------------------------------------------------------------------------

-- A double precision[][] crosses into Python in its binary form (array_send):
-- numpy reads that in one go, where PL/Python would build a list per row and
-- a float per element.
CREATE FUNCTION pgml_trigger._predict_batch(model text, features bytea, clock timestamptz)
RETURNS double precision[]
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_batch(model, features, clock)
$$;
CREATE FUNCTION pgml_trigger._predict_batch(model text, features jsonb[], clock timestamptz)
RETURNS double precision[]
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_batch(model, features, clock)
$$;
CREATE FUNCTION pgml_trigger._predict_label_batch(model text, features bytea, clock timestamptz) RETURNS text[]
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_label_batch(model, features, clock)
$$;
CREATE FUNCTION pgml_trigger._predict_label_batch(model text, features jsonb[], clock timestamptz) RETURNS text[]
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].predict_label_batch(model, features, clock)
$$;

CREATE FUNCTION pgml_trigger.predict_batch(model text, features double precision[]) RETURNS double precision[]
LANGUAGE sql STABLE STRICT AS $$
    SELECT pgml_trigger._predict_batch(model, array_send(features), statement_timestamp())
$$;
CREATE FUNCTION pgml_trigger.predict_batch(model text, features jsonb[]) RETURNS double precision[]
LANGUAGE sql STABLE STRICT AS $$ SELECT pgml_trigger._predict_batch(model, features, statement_timestamp()) $$;
COMMENT ON FUNCTION pgml_trigger.predict_batch(text, double precision[]) IS
    'predictions for the rows of a two-dimensional array (one row of features in model order per element)';
COMMENT ON FUNCTION pgml_trigger.predict_batch(text, jsonb[]) IS
    'predictions for rows given by feature name, in input order; a NULL row predicts NULL';

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

-- What attach() and score() check of a table's columns, in one place.
CREATE FUNCTION pgml_trigger._column_type(target regclass, column_name text, OUT category "char", OUT type_name text,
                                          OUT type_oid regtype)
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT t.typcategory, format_type(a.atttypid, a.atttypmod), a.atttypid::regtype
    FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    WHERE a.attrelid = target AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped
$$;
COMMENT ON FUNCTION pgml_trigger._column_type(regclass, text) IS
    'type category, type name and type of a column of a table; NULLs when there is no such column';

-- The columns of target that feed a model's features, in model order: one per feature, each present,
-- none the output column, each of a type the feature takes (numbers and booleans for a numeric
-- feature, text for a text one). Returns their type categories.
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

------------------------------------------------------------------------------
-- score(): fill a column of every row of a table, a batch at a time.
------------------------------------------------------------------------------

-- Reads the table in ranges of blocks (a TID range scan each), scores each
-- range with one _predict_batch call and keeps the results by ctid; one
-- UPDATE writes them all at the end. Updating range by range instead would
-- see rows again whose new versions land in a later range. The table is
-- locked against writers meanwhile (readers go on), so the ctids stay valid.
-- TID range scans exist from PostgreSQL 14: on 13 each range is a full scan
-- (correct, but quadratic in the table size; pass a large batch_size there).
CREATE FUNCTION pgml_trigger.score(model text, source regclass, output_column text, features text[] DEFAULT NULL,
                                   batch_size integer DEFAULT 10000, explain_column text DEFAULT NULL,
                                   explain_top_k integer DEFAULT NULL) RETURNS bigint
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
    explainer text := '';        -- with explain_column: the reasons of each chunk, beside its predictions
BEGIN
    IF model IS NULL OR source IS NULL OR output_column IS NULL THEN
        RAISE EXCEPTION 'pgml_trigger.score() needs a model, a table and an output column'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF batch_size IS NULL OR batch_size < 1 THEN
        RAISE EXCEPTION 'batch_size must be at least 1, not %', batch_size USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT * INTO resolved FROM pgml_trigger.resolve_model(model);
    SELECT mm.name, mm.version, mm.task, mm.feature_names, mm.feature_types, mm.explainer_info INTO m
    FROM pgml_trigger.model_catalog AS mm WHERE mm.name = resolved.name AND mm.version = resolved.version;

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
    IF explain_column IS NOT NULL OR explain_top_k IS NOT NULL THEN
        PERFORM pgml_trigger._check_explain_column(source, source::text, format('%s@%s', m.name, m.version),
                                                   m.explainer_info, explain_column, explain_top_k, output_column,
                                                   cols);
        explainer := ', pgml_trigger._explain_batch($3, chunk.rows, $5, $4)';
    END IF;
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
    CREATE TEMP TABLE pgml_trigger_scores (id tid, value double precision, label text, reasons jsonb) ON COMMIT DROP;
    WHILE low < n_blocks LOOP
        BEGIN
            EXECUTE format($q$
                WITH chunk AS (SELECT array_agg(t.ctid) AS ids, %1$s AS rows FROM %2$s AS t
                               WHERE t.ctid >= $1 AND t.ctid < $2)
                INSERT INTO pg_temp.pgml_trigger_scores (id, %3$I%5$s)
                SELECT s.id, s.result%6$s
                FROM chunk, unnest(chunk.ids, pgml_trigger.%4$I($3, chunk.rows, $4)%7$s) AS s(id, result%5$s)
                WHERE chunk.ids IS NOT NULL
            $q$, rows_expr, source, result_column, scorer, CASE WHEN explainer <> '' THEN ', reasons' ELSE '' END,
                 CASE WHEN explainer <> '' THEN ', s.reasons' ELSE '' END, explainer)
            USING format('(%s,0)', low)::tid, format('(%s,0)', least(low + step, 4294967295))::tid, model,
                  statement_timestamp(), explain_top_k;
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

    EXECUTE format('UPDATE %s AS t SET %I = s.%I%s FROM pg_temp.pgml_trigger_scores AS s WHERE t.ctid = s.id',
                   source, output_column, result_column,
                   CASE WHEN explainer <> '' THEN format(', %I = s.reasons', explain_column) ELSE '' END);
    GET DIAGNOSTICS scored = ROW_COUNT;
    DROP TABLE pg_temp.pgml_trigger_scores;
    RETURN scored;
END
$$;
COMMENT ON FUNCTION pgml_trigger.score(text, regclass, text, text[], integer, text, integer) IS
    'score every row of source with model into output_column, batch_size rows per model call; returns the row count; '
    'with explain_column, explain() of each prediction too';

------------------------------------------------------------------------------
-- explain(): why a model predicted what it did, as SHAP values per input column (pgml_trigger/server/explain.py).
-- Same model references, feature matching and errors as predict(). Not STRICT (top_k may be NULL: every
-- contribution); a NULL model or features still gives NULL.
------------------------------------------------------------------------------

-- The only way the server reads an explainer (node arrays, coefficients: as telling as the payload), like
-- _fetch_payload: it runs as the table owner and hands the bytes to the calling Python code in this backend
-- (Catalog.explainer); SQL gets only their length.
CREATE FUNCTION pgml_trigger._fetch_explainer(name text, version integer) RETURNS bigint
LANGUAGE plpython3u STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].fetch_explainer(name, version)
$$;

CREATE FUNCTION pgml_trigger._explain(model text, features jsonb, top_k integer, clock timestamptz) RETURNS jsonb
LANGUAGE plpython3u STABLE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].explain(model, features, top_k, clock)
$$;
CREATE FUNCTION pgml_trigger._explain(model text, features double precision[], top_k integer, clock timestamptz)
RETURNS jsonb
LANGUAGE plpython3u STABLE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].explain(model, features, top_k, clock)
$$;
-- features: a table row as row_to_json() writes it (explain(model, record)).
CREATE FUNCTION pgml_trigger._explain(model text, features json, top_k integer, clock timestamptz) RETURNS jsonb
LANGUAGE plpython3u STABLE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].explain(model, features, top_k, clock)
$$;

CREATE FUNCTION pgml_trigger.explain(model text, features jsonb, top_k integer DEFAULT NULL) RETURNS jsonb
LANGUAGE sql STABLE AS $$ SELECT pgml_trigger._explain(model, features, top_k, statement_timestamp()) $$;
CREATE FUNCTION pgml_trigger.explain(model text, features double precision[], top_k integer DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE AS $$ SELECT pgml_trigger._explain(model, features, top_k, statement_timestamp()) $$;
CREATE FUNCTION pgml_trigger.explain(model text, features record, top_k integer DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN pgml_trigger._explain(model, pg_catalog.row_to_json(features), top_k, pg_catalog.statement_timestamp());
END
$$;
COMMENT ON FUNCTION pgml_trigger.explain(text, jsonb, integer) IS
    'why the model predicted what it did for a row given by feature name: each feature''s SHAP value, largest first';
COMMENT ON FUNCTION pgml_trigger.explain(text, double precision[], integer) IS
    'why the model predicted what it did for a row given in feature order: each feature''s SHAP value, largest first';
COMMENT ON FUNCTION pgml_trigger.explain(text, record, integer) IS
    'why the model predicted what it did for a table row: each feature''s SHAP value, largest first';

-- Many rows: an explanation per row, in order (a NULL row: NULL). features as for predict_batch.
CREATE FUNCTION pgml_trigger._explain_batch(model text, features bytea, top_k integer, clock timestamptz)
RETURNS jsonb[]
LANGUAGE plpython3u STABLE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].explain_batch(model, features, top_k, clock)
$$;
CREATE FUNCTION pgml_trigger._explain_batch(model text, features jsonb[], top_k integer, clock timestamptz)
RETURNS jsonb[]
LANGUAGE plpython3u STABLE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].explain_batch(model, features, top_k, clock)
$$;
CREATE FUNCTION pgml_trigger._explain_batch(model text, features json, top_k integer, clock timestamptz)
RETURNS jsonb[]
LANGUAGE plpython3u STABLE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].explain_batch(model, features, top_k, clock)
$$;

CREATE FUNCTION pgml_trigger.explain_batch(model text, features double precision[], top_k integer DEFAULT NULL)
RETURNS jsonb[]
LANGUAGE sql STABLE AS $$
    SELECT pgml_trigger._explain_batch(model, array_send(features), top_k, statement_timestamp())
$$;
CREATE FUNCTION pgml_trigger.explain_batch(model text, features jsonb[], top_k integer DEFAULT NULL) RETURNS jsonb[]
LANGUAGE sql STABLE AS $$ SELECT pgml_trigger._explain_batch(model, features, top_k, statement_timestamp()) $$;
CREATE FUNCTION pgml_trigger.explain_batch(model text, features json, top_k integer DEFAULT NULL) RETURNS jsonb[]
LANGUAGE sql STABLE AS $$ SELECT pgml_trigger._explain_batch(model, features, top_k, statement_timestamp()) $$;
COMMENT ON FUNCTION pgml_trigger.explain_batch(text, double precision[], integer) IS
    'explain() of each row of a two-dimensional array (features in model order), in order';
COMMENT ON FUNCTION pgml_trigger.explain_batch(text, jsonb[], integer) IS
    'explain() of each row given by feature name, in order; a NULL row gives NULL';
COMMENT ON FUNCTION pgml_trigger.explain_batch(text, json, integer) IS
    'explain() of each row of a JSON array of rows (e.g. json_agg(t)), in order; a null row gives NULL';

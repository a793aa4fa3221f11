-- pgml_trigger 0.2: the compiled (ONNX) scoring path, batch scoring and score().
--
-- Applied after 0001_core.sql, never edited once applied. Every PL/Python
-- body is two lines, as in 0001: bootstrap, then call server/entry.py.

------------------------------------------------------------------------------
-- The compiled payload: an ONNX graph the uploader converted from the joblib
-- payload and checked against it (pgml_trigger/compile.py). The server scores
-- with it when it is there; scoring_path says which path a model takes.
------------------------------------------------------------------------------

ALTER TABLE pgml_trigger.models
    ADD COLUMN compiled_format  text,
    ADD COLUMN compiled_payload bytea,
    ADD COLUMN compiled_sha256  text,
    -- false: the graph puts missing values elsewhere than scikit-learn, so rows with one are scored by the
    -- joblib payload (only models that accept missing values ever see one)
    ADD COLUMN compiled_handles_nan boolean,
    -- rows checked, largest differences, label mismatches and tolerances; or why nothing was compiled
    ADD COLUMN agreement        jsonb,
    -- An onnx-format model (0006) is scored by onnxruntime from its own payload.
    ADD COLUMN scoring_path     text GENERATED ALWAYS AS (
        CASE WHEN format = 'onnx' THEN 'onnx' ELSE coalesce(compiled_format, 'sklearn') END) STORED,
    ADD CONSTRAINT models_compiled CHECK (
        (compiled_format IS NULL AND compiled_payload IS NULL AND compiled_sha256 IS NULL
         AND compiled_handles_nan IS NULL)
        OR (compiled_format IN ('onnx') AND compiled_payload IS NOT NULL AND compiled_sha256 ~ '^[0-9a-f]{64}$'
            AND compiled_handles_nan IS NOT NULL));
ALTER TABLE pgml_trigger.models ALTER COLUMN compiled_payload SET STORAGE EXTERNAL;
COMMENT ON COLUMN pgml_trigger.models.scoring_path IS
    'onnx: scored by onnxruntime from compiled_payload; sklearn: by the unpickled joblib payload';
COMMENT ON COLUMN pgml_trigger.models.agreement IS
    'how the compiled payload was checked against scikit-learn at upload, or why the model was not compiled';

CREATE FUNCTION pgml_trigger._models_compiled_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.compiled_sha256 IS DISTINCT FROM encode(sha256(NEW.compiled_payload), 'hex') THEN
        RAISE EXCEPTION 'the compiled payload of model "%" does not match the sha256 sent with it', NEW.name
            USING ERRCODE = 'data_corrupted';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_compiled_before_insert BEFORE INSERT ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._models_compiled_before_insert();

-- Like the rest of a model row (0001's models_before_update), what is scored never changes.
CREATE FUNCTION pgml_trigger._models_compiled_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.compiled_format, NEW.compiled_sha256, NEW.compiled_handles_nan, NEW.agreement) IS DISTINCT FROM
       (OLD.compiled_format, OLD.compiled_sha256, OLD.compiled_handles_nan, OLD.agreement)
       OR NEW.compiled_payload IS DISTINCT FROM OLD.compiled_payload THEN
        RAISE EXCEPTION 'model "%@%" cannot be changed; only its description can', OLD.name, OLD.version
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'upload a new version instead';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_compiled_before_update BEFORE UPDATE ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._models_compiled_before_update();

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
                                   batch_size integer DEFAULT 10000) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    resolved record;
    m record;
    out_category "char";
    category "char";
    cols text[];
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

    SELECT t.typcategory INTO out_category
    FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    WHERE a.attrelid = source AND a.attname = output_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
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
    IF cardinality(cols) IS DISTINCT FROM cardinality(m.feature_names) THEN
        RAISE EXCEPTION 'model %@% expects % features, the features list names %',
            m.name, m.version, cardinality(m.feature_names), coalesce(cardinality(cols), 0)
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('features in model order: %s', array_to_string(m.feature_names, ', '));
    END IF;
    FOR i IN 1 .. cardinality(cols) LOOP
        IF cols[i] = output_column THEN
            RAISE EXCEPTION 'column "%" cannot be both a feature and the output', output_column
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        SELECT t.typcategory INTO category
        FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
        WHERE a.attrelid = source AND a.attname = cols[i] AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of % does not exist; model %@% needs it for feature "%"',
                cols[i], source, m.name, m.version, m.feature_names[i] USING ERRCODE = 'undefined_column',
                HINT = 'pass features => ARRAY[...] to name the column for each feature, in model order';
        END IF;
        -- booleans have no cast to float8, but do to integer
        by_position := by_position || format('t.%I%s', cols[i], CASE WHEN category = 'B' THEN '::integer' END);
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
COMMENT ON FUNCTION pgml_trigger.score(text, regclass, text, text[], integer) IS
    'score every row of source with model into output_column, batch_size rows per model call; returns the row count';

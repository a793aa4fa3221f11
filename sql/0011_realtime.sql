-- Real-time scoring (issue 10).

------------------------------------------------------------------------------
-- Writers publish the generation they bumped to, so that readers read it from the catalog only when it
-- may have changed (pgml_trigger/server/generation.py reads the file). Written here, with nothing but the
-- standard library, so that writing the catalog never depends on importing the package (the installer
-- writes it before the database knows where the package is). As in 0001 and 0003 otherwise.
------------------------------------------------------------------------------

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

------------------------------------------------------------------------------
-- Rows by name: predict('churn', c) FROM customers AS c. The row's columns are matched to the model's
-- features by name (extra columns ignored). PL/Python cannot take a record, nor SQL functions, so a thin
-- PL/pgSQL wrapper hands the row over as row_to_json() text: every float8 is written once by its own
-- output function, where to_jsonb() converts it to numeric first. A record argument also leaves the
-- resolution of every existing call as it was (an array literal is never a record).
------------------------------------------------------------------------------

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

------------------------------------------------------------------------------
-- Loading models before the first request, and what loading them cost.
------------------------------------------------------------------------------

-- cache_info() as in 0001, and how each model scores here and how long it took to load.
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

------------------------------------------------------------------------------
-- Privileges, as their siblings' (0003_trust.sql).
------------------------------------------------------------------------------

DO $$
DECLARE
    fn regprocedure;
BEGIN
    FOREACH fn IN ARRAY ARRAY[
        'pgml_trigger._predict(text, json, timestamptz)', 'pgml_trigger._predict_label(text, json, timestamptz)',
        'pgml_trigger._predict_proba(text, json, timestamptz)', 'pgml_trigger._predict_batch(text, json, timestamptz)',
        'pgml_trigger.predict(text, record)', 'pgml_trigger.predict_label(text, record)',
        'pgml_trigger.predict_proba(text, record)', 'pgml_trigger.predict_batch(text, json)',
        'pgml_trigger.cache_info()', 'pgml_trigger._warm_up(text[], timestamptz)',
        'pgml_trigger.warm_up(text[])']::regprocedure[]
    LOOP
        EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', fn);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pgml_trigger_user', fn);
    END LOOP;
END
$$;

------------------------------------------------------------------------------
-- observability.sql: what a DBA, a dashboard or pgml_trigger_user reads: model metadata without the
-- payloads, the prediction log, per-model counters, drift, and doctor().
------------------------------------------------------------------------------

CREATE VIEW pgml_trigger.model_catalog AS
SELECT m.name, m.version, m.format, m.sha256, octet_length(m.payload)::bigint AS payload_bytes, m.task, m.classes,
       m.feature_names, m.feature_types, m.feature_inputs, m.accepts_nan, m.input_kind, m.python_version,
       m.sklearn_version, m.numpy_version, m.joblib_version, m.description, m.created_at, m.created_by,
       m.scoring_path, m.compiled_format, m.compiled_sha256, octet_length(m.compiled_payload)::bigint AS compiled_bytes,
       m.compiled_handles_nan, m.agreement, m.metrics, m.training_profile,
       m.payload_hmac, m.skops_version, m.onnxruntime_version, m.linear_form,
       m.library_versions, m.source_uri, m.mlflow_version,
       m.explainer_sha256, octet_length(m.explainer)::bigint AS explainer_bytes, m.explainer_info
FROM pgml_trigger.models AS m;
COMMENT ON VIEW pgml_trigger.model_catalog IS 'pgml_trigger.models without the payload: what pgml_trigger_user may read';

CREATE VIEW pgml_trigger.model_versions AS
SELECT m.name, m.version, m.format, m.scoring_path, pg_size_pretty(m.payload_bytes) AS size, m.payload_bytes,
       m.sha256,
       coalesce((SELECT array_agg(a.alias ORDER BY a.alias) FROM pgml_trigger.aliases AS a
                 WHERE a.name = m.name AND a.version = m.version), '{}') AS aliases,
       m.task, m.feature_names, m.python_version, m.sklearn_version, m.numpy_version, m.joblib_version,
       m.metrics, m.agreement, m.description, m.created_at, m.created_by,
       CASE WHEN m.linear_form IS NOT NULL THEN 'sql' ELSE m.scoring_path END AS row_trigger_path,
       m.library_versions, m.source_uri, m.mlflow_version
FROM pgml_trigger.model_catalog AS m;
COMMENT ON VIEW pgml_trigger.model_versions IS 'every model version with its scoring path, aliases, versions, metrics';

-- Opt-in record of predictions. Log rows are written in the same transaction as the scored rows: a
-- rolled-back INSERT leaves none.
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
    scored_at     timestamptz NOT NULL DEFAULT now(),
    reasons       jsonb                  -- explain() of the prediction, for attachments with explain_column
);
CREATE INDEX prediction_log_model_time ON pgml_trigger.prediction_log (model_name, scored_at);
CREATE INDEX prediction_log_row ON pgml_trigger.prediction_log (target, row_key);
COMMENT ON TABLE pgml_trigger.prediction_log IS
    'opt-in record of predictions: logged attachments, challengers, statement mode, predict(..., log_key)';
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.prediction_log', '');
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.prediction_log_id_seq', '');

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
    OUT loads bigint, OUT seconds double precision, OUT load_seconds double precision)
RETURNS SETOF record
LANGUAGE plpython3u VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].counters()
$$;
COMMENT ON FUNCTION pgml_trigger.counters() IS
    'per model: calls, rows, errors, loads, seconds spent scoring and loading, summed over this server''s backends';

------------------------------------------------------------------------------
-- Drift of recent inputs against the training-data profile an upload may carry.
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger.drift(model text, source regclass, since timestamptz DEFAULT NULL)
RETURNS TABLE (feature text, statistic text, value double precision, threshold double precision,
               drifted boolean, rows bigint)
LANGUAGE plpython3u STABLE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].drift(model, source, since)
$$;
COMMENT ON FUNCTION pgml_trigger.drift(text, regclass, timestamptz) IS
    'per feature, how far source''s rows (since a time, by its scored_at or created_at column) drifted from training';

------------------------------------------------------------------------------
-- doctor(): would each model version load in this database, with which libraries, and are its stored
-- payloads (the original and the compiled one) still the bytes that were uploaded?
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger.doctor()
RETURNS TABLE (name text, version integer, format text, scoring_path text, allowed boolean, loads boolean,
               error text, sklearn_recorded text, sklearn_server text, numpy_recorded text, numpy_server text,
               verdict text)
LANGUAGE plpython3u VOLATILE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].doctor()
$$;
COMMENT ON FUNCTION pgml_trigger.doctor() IS
    'per model version: allowed by the format policy, loads here, recorded vs server library versions, verdict';

-- No upload the server cannot score: the uploader calls _check_version() on the version it has just
-- inserted, inside its own transaction, before COMMIT. The server loads it the way predict() does (the
-- format policy, HMAC, checksums, the libraries models.library_versions records, deserialization) and
-- scores the rows given; an error here rolls the upload back, so the version is never stored.
CREATE FUNCTION pgml_trigger._check_version(name text, version integer, rows jsonb)
RETURNS text
LANGUAGE plpython3u VOLATILE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].check_version(name, version, rows)
$$;
COMMENT ON FUNCTION pgml_trigger._check_version(text, integer, jsonb) IS
    'load a model version as predict() would and score rows (a JSON array of objects keyed by feature name, '
    'or null to only load it); returns the scoring path. Called by the uploader before its transaction commits';

-- Reads every payload as the owner of models, for doctor(), which runs as its caller.
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

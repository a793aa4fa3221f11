------------------------------------------------------------------------------
-- catalog.sql: the model versions, their aliases and the aliases' history, and the catalog generation.
--
-- These tables hold user data: pg_extension_config_dump() makes pg_dump carry their rows (and the
-- values of their identity sequences), which CREATE EXTENSION alone would not restore.
------------------------------------------------------------------------------

CREATE TABLE pgml_trigger.models (
    name            text        NOT NULL,
    version         integer     NOT NULL,
    format          text        NOT NULL,
    payload         bytea       NOT NULL,
    sha256          text        NOT NULL,
    task            text        NOT NULL,
    classes         jsonb,
    feature_names   text[]      NOT NULL,
    feature_types   text[]      NOT NULL,
    -- per feature, in model order (pgml_trigger/schema.py FeatureInput, found by pgml_trigger/uploader/missing.py):
    -- {"missing": "NaN"} where a NULL is passed to the model as NaN ("None": as None, for a text feature fitted
    -- so), {"refused_by": "<step>"} where the model refuses a missing value; "booleans": true where a numeric
    -- feature was fitted on booleans
    feature_inputs  jsonb       NOT NULL,
    accepts_nan     boolean     GENERATED ALWAYS AS (jsonb_path_exists(feature_inputs, '$[*].missing')) STORED,
    input_kind      text        NOT NULL,
    python_version  text        NOT NULL,
    sklearn_version text        NOT NULL,
    numpy_version   text        NOT NULL,
    joblib_version  text        NOT NULL,
    description     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text        NOT NULL DEFAULT current_user,
    -- The compiled payload: an ONNX graph the uploader converted from the joblib payload and checked
    -- against it (pgml_trigger/uploader/compile.py). The server scores with it when it is there.
    compiled_format  text,
    compiled_payload bytea,
    compiled_sha256  text,
    -- false: the graph puts missing values elsewhere than scikit-learn, so rows with one are scored by the
    -- joblib payload (only models that accept missing values ever see one)
    compiled_handles_nan boolean,
    -- rows checked, largest differences, label mismatches and tolerances; or why nothing was compiled
    agreement        jsonb,
    -- An onnx-format model is scored by onnxruntime from its own payload.
    scoring_path     text GENERATED ALWAYS AS (
        CASE WHEN format = 'onnx' THEN 'onnx' ELSE coalesce(compiled_format, 'sklearn') END) STORED,
    metrics          jsonb CHECK (metrics IS NULL OR jsonb_typeof(metrics) = 'object'),
    training_profile jsonb CHECK (training_profile IS NULL OR jsonb_typeof(training_profile) = 'object'),
    skops_version       text,
    onnxruntime_version text,
    -- HMAC-SHA256 (hex) over format, sha256 and compiled_sha256 (pgml_trigger/formats.py signature()), with
    -- the key in the file pgml_trigger.hmac_key_file names; required, and checked at every load, when that is set.
    payload_hmac        text CONSTRAINT models_payload_hmac_hex CHECK (payload_hmac ~ '^[0-9a-f]{64}$'),
    linear_form      jsonb,
    library_versions jsonb CONSTRAINT models_library_versions_object
        CHECK (library_versions IS NULL OR jsonb_typeof(library_versions) = 'object'),
    source_uri       text,
    mlflow_version   text,
    -- What explain() reads (pgml_trigger/uploader/explainer/ writes it, pgml_trigger/server/explain.py reads it):
    -- arrays in an npz, never unpickled, checked against explainer_sha256 at every load. explainer_info: the
    -- method, the output space, how it agreed with the model at upload; or why the version has no explainer.
    explainer        bytea,
    explainer_sha256 text,
    explainer_info   jsonb,
    PRIMARY KEY (name, version),
    CONSTRAINT models_name_syntax CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
    CONSTRAINT models_version_positive CHECK (version >= 1),
    CONSTRAINT models_format_known CHECK (format IN ('joblib', 'skops', 'onnx')),
    CONSTRAINT models_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT models_task_known CHECK (task IN ('classification', 'regression')),
    CONSTRAINT models_classes_for_classifiers CHECK (
        (task = 'classification') = (classes IS NOT NULL)
        AND (classes IS NULL OR jsonb_typeof(classes) = 'array')),
    CONSTRAINT models_features CHECK (
        cardinality(feature_names) >= 1
        AND cardinality(feature_names) = cardinality(feature_types)
        AND feature_types <@ ARRAY['number', 'string']
        AND jsonb_typeof(feature_inputs) = 'array'
        AND jsonb_array_length(feature_inputs) = cardinality(feature_names)
        AND NOT jsonb_path_exists(feature_inputs,
                                  '$[*] ? (@.type() != "object" || @.missing != "NaN" && @.missing != "None")')),
    CONSTRAINT models_input_kind_known CHECK (input_kind IN ('array', 'frame')),
    CONSTRAINT models_compiled CHECK (
        (compiled_format IS NULL AND compiled_payload IS NULL AND compiled_sha256 IS NULL
         AND compiled_handles_nan IS NULL)
        OR (compiled_format IN ('onnx') AND compiled_payload IS NOT NULL AND compiled_sha256 ~ '^[0-9a-f]{64}$'
            AND compiled_handles_nan IS NOT NULL)),
    CONSTRAINT models_explainer CHECK (
        (explainer IS NULL AND explainer_sha256 IS NULL)
        OR (explainer IS NOT NULL AND explainer_sha256 ~ '^[0-9a-f]{64}$'))
);
-- Pickled arrays barely compress: store them out of line, uncompressed.
ALTER TABLE pgml_trigger.models ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE pgml_trigger.models ALTER COLUMN compiled_payload SET STORAGE EXTERNAL;
ALTER TABLE pgml_trigger.models ALTER COLUMN explainer SET STORAGE EXTERNAL;
COMMENT ON TABLE pgml_trigger.models IS 'one row per uploaded model version; rows are immutable but for description';
COMMENT ON COLUMN pgml_trigger.models.scoring_path IS
    'onnx: scored by onnxruntime from compiled_payload; sklearn: by the unpickled joblib payload';
COMMENT ON COLUMN pgml_trigger.models.feature_inputs IS
    'per feature: how a missing value is passed to the model, or the step that refuses one; booleans taken';
COMMENT ON COLUMN pgml_trigger.models.accepts_nan IS 'whether some feature may be NULL (feature_inputs says which)';
COMMENT ON COLUMN pgml_trigger.models.agreement IS
    'how the compiled payload was checked against scikit-learn at upload, or why the model was not compiled';
COMMENT ON COLUMN pgml_trigger.models.metrics IS 'evaluation metrics the uploader passed, e.g. {"roc_auc": 0.97}';
COMMENT ON COLUMN pgml_trigger.models.training_profile IS
    'per-feature profile of the training sample (pgml_trigger/profile.py): what drift() compares against';
COMMENT ON COLUMN pgml_trigger.models.payload_hmac IS
    'HMAC-SHA256 of format, sha256 and compiled_sha256 under the database''s key (pgml_trigger.hmac_key_file)';
COMMENT ON COLUMN pgml_trigger.models.linear_form IS
    'a linear model as scaled SQL arithmetic for row triggers (pgml_trigger/uploader/linear.py), with its agreement';
COMMENT ON COLUMN pgml_trigger.models.library_versions IS
    'versions of the model libraries besides scikit-learn that loading the payload needs, e.g. {"xgboost": "2.1.3"}';
COMMENT ON COLUMN pgml_trigger.models.source_uri IS 'where the model was read from: an MLflow models:/ or runs:/ URI, a path';
COMMENT ON COLUMN pgml_trigger.models.mlflow_version IS 'the MLflow version that read the model, for MLflow uploads';
COMMENT ON COLUMN pgml_trigger.models.explainer IS
    'what explain() computes SHAP values from: node arrays or coefficients, and the preprocessing, as an npz';
COMMENT ON COLUMN pgml_trigger.models.explainer_info IS
    'explain()''s method and output space and how it agreed with the model at upload, or why there is no explainer';
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.models', '');

-- Versions count up from 1 per name: an upload sends version 0 and gets the next one, stamped with
-- the time and the uploading role. A superuser's row that comes with its version keeps it, with its
-- created_at and created_by: that is how pg_dump and pg_restore put rows back (and a superuser could
-- disable this trigger anyway). The payloads are checked against their sha256 either way.
CREATE FUNCTION pgml_trigger._models_before_insert() RETURNS trigger
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
CREATE TRIGGER models_before_insert BEFORE INSERT ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._models_before_insert();

-- The compiled payload and the explainer, like the payload, must match the sha256 sent with them.
CREATE FUNCTION pgml_trigger._models_compiled_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.compiled_sha256 IS DISTINCT FROM encode(sha256(NEW.compiled_payload), 'hex') THEN
        RAISE EXCEPTION 'the compiled payload of model "%" does not match the sha256 sent with it', NEW.name
            USING ERRCODE = 'data_corrupted';
    END IF;
    IF NEW.explainer_sha256 IS DISTINCT FROM encode(sha256(NEW.explainer), 'hex') THEN
        RAISE EXCEPTION 'the explainer of model "%" does not match the sha256 sent with it', NEW.name
            USING ERRCODE = 'data_corrupted';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_compiled_before_insert BEFORE INSERT ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._models_compiled_before_insert();

-- With a key configured, an upload without an HMAC is refused at once; whether the HMAC is right is
-- checked by the server at every load (the key file is for the server's OS user only).
CREATE FUNCTION pgml_trigger._models_hmac_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.payload_hmac IS NULL AND pgml_trigger._database_setting('pgml_trigger.hmac_key_file') IS NOT NULL THEN
        RAISE EXCEPTION 'model "%" has no payload_hmac, and this database requires one', NEW.name
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'upload with the database''s key: upload(..., hmac_key=...) or PGML_TRIGGER_HMAC_KEY_FILE';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_hmac_before_insert BEFORE INSERT ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._models_hmac_before_insert();

-- One guard for every column, later ones included: a model version never changes but for its
-- description, metrics and training profile.
CREATE FUNCTION pgml_trigger._models_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    kept pgml_trigger.models := NEW;  -- NEW with what may change put back
BEGIN
    kept.description := OLD.description;
    kept.metrics := OLD.metrics;
    kept.training_profile := OLD.training_profile;
    kept.scoring_path := OLD.scoring_path;  -- generated after BEFORE triggers: not yet in NEW
    kept.accepts_nan := OLD.accepts_nan;
    IF kept IS DISTINCT FROM OLD THEN
        RAISE EXCEPTION 'model "%@%" cannot be changed; only its description, metrics and training profile can',
            OLD.name, OLD.version USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'upload a new version instead';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_before_update BEFORE UPDATE ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._models_before_update();

CREATE TABLE pgml_trigger.aliases (
    name       text        NOT NULL,
    alias      text        NOT NULL,
    version    integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text        NOT NULL DEFAULT current_user,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES pgml_trigger.models (name, version),
    -- Starts with a letter, so 'churn@3' is always a version and never an alias.
    CONSTRAINT aliases_syntax CHECK (alias ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$')
);
COMMENT ON TABLE pgml_trigger.aliases IS 'named pointers to model versions; ''production'' is what a bare name means';
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.aliases', '');

CREATE TABLE pgml_trigger.alias_history (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text        NOT NULL,
    alias        text        NOT NULL,
    from_version integer,               -- NULL: the alias was created by this move
    to_version   integer,               -- NULL: the alias was deleted
    kind         text        NOT NULL DEFAULT 'set' CHECK (kind IN ('set', 'rollback', 'delete')),
    undone       boolean     NOT NULL DEFAULT false,  -- a later rollback went back past this move
    moved_at     timestamptz NOT NULL DEFAULT now(),
    moved_by     text        NOT NULL DEFAULT current_user
);
CREATE INDEX alias_history_by_alias ON pgml_trigger.alias_history (name, alias, id);
COMMENT ON TABLE pgml_trigger.alias_history IS 'every move of every alias: who, when, from which version to which';
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.alias_history', '');
SELECT pg_catalog.pg_extension_config_dump('pgml_trigger.alias_history_id_seq', '');

-- Written as the owner: admins move aliases, but cannot write history by hand. A superuser's alias
-- that arrives stamped before this transaction is being put back by a restore, which brings its
-- history too (in any order, pg_restore -j included): it is not recorded again.
CREATE FUNCTION pgml_trigger._record_alias_move() RETURNS trigger
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
CREATE TRIGGER aliases_record_move AFTER INSERT OR UPDATE OR DELETE ON pgml_trigger.aliases
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._record_alias_move();

------------------------------------------------------------------------------
-- The catalog generation: how open sessions notice new versions and alias moves. Not dumped: a
-- restored database starts again at 1, which no session has seen there.
------------------------------------------------------------------------------

CREATE TABLE pgml_trigger.catalog_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint  NOT NULL
);
INSERT INTO pgml_trigger.catalog_state (generation) VALUES (1);

-- Bumped in the writer's transaction, so readers see the new generation exactly when they can see the
-- new rows. The writer's own backend also drops its resolved references at once. Runs as the owner.
-- The writer also publishes the number it bumped to, before it commits, in a file beside the data
-- (pgml_trigger/server/generation.py): readers go to the catalog only when it may have changed. Written
-- with the standard library alone, so writing the catalog never depends on importing the package.
CREATE FUNCTION pgml_trigger._catalog_changed() RETURNS trigger
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
CREATE TRIGGER models_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgml_trigger.models
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._catalog_changed();
CREATE TRIGGER aliases_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgml_trigger.aliases
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._catalog_changed();

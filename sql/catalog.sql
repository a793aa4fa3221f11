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

------------------------------------------------------------------------------
-- The catalog on disk, for parallel queries. Their processes cannot read it (a PL/Python query opens a
-- subtransaction, which a parallel query forbids: pgml_trigger/server/parallel.py), so they resolve model
-- references from the newest snapshot of it, pg_stat_tmp/pgml_trigger/<database oid>/catalog/<generation>.json
-- (pgml_trigger/server/snapshot.py), and load payloads from files named by their sha256 beside it
-- (model_files.py). Every transaction that changes models or aliases writes a snapshot as it commits, after
-- its last change (a deferred trigger), and removes the files of the versions it deleted; a backend that reads
-- the catalog through SPI writes the generation it read when no newer snapshot is there.
------------------------------------------------------------------------------

-- The metadata of every version (no payload), every alias and the database's pgml_trigger settings.
CREATE FUNCTION pgml_trigger._catalog_snapshot() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
    SELECT json_build_object(
        'generation', (SELECT s.generation FROM pgml_trigger.catalog_state AS s),
        'xid', txid_current_if_assigned(),
        'settings', (SELECT json_object_agg(setting_name, pgml_trigger._database_setting(setting_name))
                     FROM unnest(ARRAY['pgml_trigger.allowed_formats', 'pgml_trigger.hmac_key_file',
                                       'pgml_trigger.strict_versions', 'pgml_trigger.defer_graph_mb',
                                       'pgml_trigger.model_cache_mb']) AS setting_name),
        'models', coalesce((SELECT json_agg(json_build_object(
                                'name', m.name, 'version', m.version, 'sha256', m.sha256, 'format', m.format,
                                'task', m.task, 'classes', m.classes::text, 'feature_names', m.feature_names,
                                'feature_types', m.feature_types, 'feature_inputs', m.feature_inputs,
                                'input_kind', m.input_kind, 'compiled_format', m.compiled_format,
                                'compiled_sha256', m.compiled_sha256, 'compiled_handles_nan', m.compiled_handles_nan,
                                'payload_bytes', coalesce(octet_length(m.compiled_payload), octet_length(m.payload)),
                                'payload_hmac', m.payload_hmac, 'sklearn_version', m.sklearn_version,
                                'numpy_version', m.numpy_version, 'library_versions', m.library_versions,
                                'linear_form', m.linear_form)
                                ORDER BY m.name, m.version)
                            FROM pgml_trigger.models AS m), '[]'),
        'aliases', coalesce((SELECT json_agg(json_build_object('name', a.name, 'alias', a.alias, 'version', a.version)
                                             ORDER BY a.name, a.alias)
                             FROM pgml_trigger.aliases AS a), '[]'))::text
$$;

-- authoritative: at a commit (or CREATE EXTENSION), whose snapshot is the newest whatever is there: files of
-- higher generations were left by a former installation or by a writer that failed to commit after writing.
-- Otherwise nothing is written by a transaction that has written (it may see its own changes to the catalog),
-- and a newer snapshot stays, unless its writer's transaction aborted. removed_payloads: the sha256 of
-- deleted versions' payloads, whose files go unless another version holds the same bytes. Best effort: when
-- the files cannot be written, the snapshots are removed (parallel queries then say so) and the caller goes on.
CREATE FUNCTION pgml_trigger._write_catalog_snapshot(authoritative boolean, removed_payloads text[]) RETURNS void
LANGUAGE plpython3u SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
import json, os, time
row = plpy.execute("SELECT pgml_trigger._catalog_snapshot() AS snapshot, "
                   "(SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()) AS database")[0]
text = row["snapshot"]
snapshot = json.loads(text)
generation, base = snapshot["generation"], f"pg_stat_tmp/pgml_trigger/{row['database']}"
if not authoritative and snapshot["xid"] is not None:  # this transaction has written: it may see its own changes
    return
directory = f"{base}/catalog"
held = {m[key] for m in snapshot["models"] for key in ("sha256", "compiled_sha256") if m[key]}

def saved_text(number):
    try:
        with open(f"{directory}/{number}.json") as saved:
            return saved.read()
    except OSError:
        return None

try:
    os.makedirs(directory, mode=0o700, exist_ok=True)
    saved = sorted(int(name[:-5]) for name in os.listdir(directory) if name.endswith(".json") and name[:-5].isdigit())
    if not authoritative and saved and saved[-1] > generation:
        xid = json.loads(saved_text(saved[-1]) or "{}").get("xid")
        status = xid and plpy.execute(f"SELECT pg_catalog.txid_status({int(xid)}) AS status")[0]["status"]
        if status != "aborted":  # committed after this statement's view of the catalog
            return
        os.unlink(f"{directory}/{saved[-1]}.json")
    if saved_text(generation) != text:
        temporary = f"{directory}/{generation}.{os.getpid()}.tmp"
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
            out.write(text)
        os.replace(temporary, f"{directory}/{generation}.json")
    for number in saved:  # keep two generations before this one, for processes that listed them
        if number < generation - 2 or (authoritative and number > generation):
            os.unlink(f"{directory}/{number}.json")
    if authoritative and os.path.isdir(f"{base}/models"):
        for name in os.listdir(f"{base}/models"):
            path = f"{base}/models/{name}"
            # A deleted version's bytes; or a day-old file no version holds (an upload that rolled back).
            if name not in held and (name in (removed_payloads or ()) or os.stat(path).st_mtime < time.time() - 86400):
                os.unlink(path)
except OSError as exc:
    for name in os.listdir(directory) if os.path.isdir(directory) else ():
        try:
            os.unlink(f"{directory}/{name}")
        except OSError:
            pass
    plpy.warning(f"pgml_trigger: cannot write the catalog snapshot parallel queries read ({exc}); they will "
                 "refuse to score until a session writes it")
$$;

-- What a backend that reads the catalog through SPI calls (Catalog.save_snapshot).
CREATE FUNCTION pgml_trigger._save_catalog_snapshot() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
    SELECT pgml_trigger._write_catalog_snapshot(false, NULL)
$$;

-- Deferred: fires as the transaction commits, after its last change, once per changed row (the snapshot is
-- written by the first; the others find it written).
CREATE FUNCTION pgml_trigger._snapshot_at_commit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' AND TG_TABLE_NAME = 'models' THEN
        PERFORM pgml_trigger._write_catalog_snapshot(true, ARRAY[OLD.sha256, OLD.compiled_sha256]);
    ELSE
        PERFORM pgml_trigger._write_catalog_snapshot(true, NULL);
    END IF;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER models_snapshot_at_commit AFTER INSERT OR UPDATE OR DELETE ON pgml_trigger.models
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pgml_trigger._snapshot_at_commit();
CREATE CONSTRAINT TRIGGER aliases_snapshot_at_commit AFTER INSERT OR UPDATE OR DELETE ON pgml_trigger.aliases
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pgml_trigger._snapshot_at_commit();
-- TRUNCATE has no deferred triggers: its snapshot is written at once, and replaced by the next backend that
-- finds its transaction aborted.
CREATE TRIGGER models_snapshot_truncated AFTER TRUNCATE ON pgml_trigger.models
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._snapshot_at_commit();
CREATE TRIGGER aliases_snapshot_truncated AFTER TRUNCATE ON pgml_trigger.aliases
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._snapshot_at_commit();
-- A subscription's apply worker (session_replication_role = replica) changes the catalog too.
ALTER TABLE pgml_trigger.models ENABLE ALWAYS TRIGGER models_snapshot_at_commit;
ALTER TABLE pgml_trigger.aliases ENABLE ALWAYS TRIGGER aliases_snapshot_at_commit;

-- This installation's first snapshot, in place of any a former one left.
SELECT pgml_trigger._write_catalog_snapshot(true, NULL);

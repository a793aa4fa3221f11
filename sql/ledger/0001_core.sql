-- pgml_trigger 0.1: the model table, model references, SQL scoring and scoring triggers.
--
-- Applied by the installer (pgml_trigger/install.py) inside one transaction,
-- recorded in pgml_trigger.migrations. Never edit an applied migration: add
-- the next numbered file instead.
--
-- Every PL/Python body here is two lines: bootstrap the package once per
-- backend, then call pgml_trigger/server/entry.py.

------------------------------------------------------------------------------
-- Where the server's Python environment lives, and loading it.
------------------------------------------------------------------------------

-- Read from the catalog, not current_setting(): a session's SET must not be
-- able to choose which code the server imports. The installer writes it with
-- ALTER DATABASE ... SET pgml_trigger.python_path.
CREATE FUNCTION pgml_trigger._python_path() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT substr(setting, length('pgml_trigger.python_path=') + 1)
    FROM pg_catalog.pg_db_role_setting AS s, unnest(s.setconfig) AS setting
    WHERE s.setdatabase = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
      AND s.setrole = 0
      AND setting LIKE 'pgml\_trigger.python\_path=%'
$$;

-- Once per backend: put the environment first on sys.path (ahead of the
-- system's dist-packages, which may hold older numpy/scikit-learn), import
-- the server entry module and keep it in GD for every other function.
CREATE FUNCTION pgml_trigger._bootstrap() RETURNS void
LANGUAGE plpython3u AS $$
import site, sys
path = plpy.execute("SELECT pgml_trigger._python_path() AS path")[0]["path"]
if path and path not in sys.path:
    before = list(sys.path)
    site.addsitedir(path)
    sys.path[:] = [p for p in sys.path if p not in before] + before
try:
    from pgml_trigger.server import entry
except ImportError as exc:
    plpy.error(f"pgml_trigger cannot import its Python package in the server: {exc}",
               hint="run the installer (install/install.sh) so that pgml_trigger.python_path names its environment",
               sqlstate="55000")
GD["pgml_trigger"] = entry
$$;

CREATE FUNCTION pgml_trigger.version() RETURNS text
LANGUAGE plpython3u STABLE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].version()
$$;
COMMENT ON FUNCTION pgml_trigger.version() IS 'version of the pgml_trigger Python package the server imports';

------------------------------------------------------------------------------
-- Models and aliases.
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
    accepts_nan     boolean     NOT NULL,
    input_kind      text        NOT NULL,
    python_version  text        NOT NULL,
    sklearn_version text        NOT NULL,
    numpy_version   text        NOT NULL,
    joblib_version  text        NOT NULL,
    description     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text        NOT NULL DEFAULT current_user,
    PRIMARY KEY (name, version),
    CONSTRAINT models_name_syntax CHECK (name ~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$'),
    CONSTRAINT models_version_positive CHECK (version >= 1),
    CONSTRAINT models_format_known CHECK (format IN ('joblib')),
    CONSTRAINT models_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    CONSTRAINT models_task_known CHECK (task IN ('classification', 'regression')),
    CONSTRAINT models_classes_for_classifiers CHECK (
        (task = 'classification') = (classes IS NOT NULL)
        AND (classes IS NULL OR jsonb_typeof(classes) = 'array')),
    CONSTRAINT models_features CHECK (
        cardinality(feature_names) >= 1
        AND cardinality(feature_names) = cardinality(feature_types)
        AND feature_types <@ ARRAY['number', 'string']),
    CONSTRAINT models_input_kind_known CHECK (input_kind IN ('array', 'frame'))
);
-- Pickled arrays barely compress: store them out of line, uncompressed.
ALTER TABLE pgml_trigger.models ALTER COLUMN payload SET STORAGE EXTERNAL;
COMMENT ON TABLE pgml_trigger.models IS 'one row per uploaded model version; rows are immutable but for description';

CREATE FUNCTION pgml_trigger._models_before_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Versions count up from 1 per name; the lock makes concurrent uploads of
    -- one name take turns, and the max() below runs after it with a fresh snapshot.
    PERFORM pg_advisory_xact_lock(hashtext('pgml_trigger.models'), hashtext(NEW.name));
    SELECT coalesce(max(m.version), 0) + 1 INTO NEW.version FROM pgml_trigger.models AS m WHERE m.name = NEW.name;
    IF NEW.sha256 IS DISTINCT FROM encode(sha256(NEW.payload), 'hex') THEN
        RAISE EXCEPTION 'the payload of model "%" does not match the sha256 sent with it', NEW.name
            USING ERRCODE = 'data_corrupted';
    END IF;
    NEW.created_at := now();
    NEW.created_by := current_user;
    RETURN NEW;
END
$$;
CREATE TRIGGER models_before_insert BEFORE INSERT ON pgml_trigger.models
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._models_before_insert();

CREATE FUNCTION pgml_trigger._models_before_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.name, NEW.version, NEW.format, NEW.sha256, NEW.task, NEW.classes, NEW.feature_names, NEW.feature_types,
        NEW.accepts_nan, NEW.input_kind, NEW.created_at, NEW.created_by)
       IS DISTINCT FROM
       (OLD.name, OLD.version, OLD.format, OLD.sha256, OLD.task, OLD.classes, OLD.feature_names, OLD.feature_types,
        OLD.accepts_nan, OLD.input_kind, OLD.created_at, OLD.created_by)
       OR NEW.payload IS DISTINCT FROM OLD.payload THEN
        RAISE EXCEPTION 'model "%@%" cannot be changed; only its description can', OLD.name, OLD.version
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'upload a new version instead';
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

------------------------------------------------------------------------------
-- The catalog generation: how open sessions notice new versions and alias moves.
------------------------------------------------------------------------------

CREATE TABLE pgml_trigger.catalog_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    generation bigint  NOT NULL
);
INSERT INTO pgml_trigger.catalog_state (generation) VALUES (1);

-- Bumped in the writer's transaction, so readers see the new generation
-- exactly when they can see the new rows. The writer's own backend also
-- drops its resolved references at once.
CREATE FUNCTION pgml_trigger._catalog_changed() RETURNS trigger
LANGUAGE plpython3u AS $$
plpy.execute("UPDATE pgml_trigger.catalog_state SET generation = generation + 1")
if "pgml_trigger" in GD: GD["pgml_trigger"].catalog_changed()
$$;
CREATE TRIGGER models_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgml_trigger.models
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._catalog_changed();
CREATE TRIGGER aliases_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgml_trigger.aliases
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._catalog_changed();

------------------------------------------------------------------------------
-- Model references: 'churn' (alias production, else the latest version),
-- 'churn@3' (version 3), 'churn@staging' (alias staging).
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger.resolve_model(model text, OUT name text, OUT version integer)
LANGUAGE plpgsql STABLE STRICT AS $$
DECLARE
    ref_name text := split_part(model, '@', 1);
    selector text := substr(model, length(split_part(model, '@', 1)) + 2);
    known text;
BEGIN
    IF model !~ '^[^@]+(@[^@]+)?$' THEN
        RAISE EXCEPTION 'invalid model reference "%"', model USING ERRCODE = 'invalid_parameter_value',
            HINT = 'write name, name@version or name@alias';
    END IF;
    IF NOT EXISTS (SELECT FROM pgml_trigger.models AS m WHERE m.name = ref_name) THEN
        RAISE EXCEPTION 'model "%" does not exist', ref_name USING ERRCODE = 'undefined_object',
            HINT = 'upload it first with pgml_trigger.upload() or pgml-trigger upload';
    END IF;
    resolve_model.name := ref_name;
    IF selector = '' THEN
        SELECT a.version INTO resolve_model.version
        FROM pgml_trigger.aliases AS a WHERE a.name = ref_name AND a.alias = 'production';
        IF resolve_model.version IS NULL THEN
            SELECT max(m.version) INTO resolve_model.version FROM pgml_trigger.models AS m WHERE m.name = ref_name;
        END IF;
    ELSIF selector ~ '^[0-9]{1,9}$' THEN
        SELECT m.version INTO resolve_model.version
        FROM pgml_trigger.models AS m WHERE m.name = ref_name AND m.version = selector::integer;
        IF NOT FOUND THEN
            SELECT string_agg(m.version::text, ', ' ORDER BY m.version) INTO known
            FROM pgml_trigger.models AS m WHERE m.name = ref_name;
            RAISE EXCEPTION 'model "%" has no version %', ref_name, selector USING ERRCODE = 'undefined_object',
                HINT = format('its versions are: %s', known);
        END IF;
    ELSE
        SELECT a.version INTO resolve_model.version
        FROM pgml_trigger.aliases AS a WHERE a.name = ref_name AND a.alias = selector;
        IF NOT FOUND THEN
            SELECT string_agg(a.alias, ', ' ORDER BY a.alias) INTO known
            FROM pgml_trigger.aliases AS a WHERE a.name = ref_name;
            RAISE EXCEPTION 'model "%" has no alias "%"', ref_name, selector USING ERRCODE = 'undefined_object',
                HINT = CASE WHEN known IS NULL THEN 'it has no aliases; see pgml_trigger.set_alias()'
                            ELSE format('its aliases are: %s', known) END;
        END IF;
    END IF;
END
$$;
COMMENT ON FUNCTION pgml_trigger.resolve_model(text) IS 'the (name, version) a model reference points to now';

CREATE FUNCTION pgml_trigger.set_alias(name text, alias text, version integer) RETURNS integer
LANGUAGE plpgsql STRICT AS $$
BEGIN
    IF alias !~ '^[A-Za-z_][A-Za-z0-9_.-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid alias "%"', alias USING ERRCODE = 'invalid_parameter_value',
            HINT = 'an alias starts with a letter or _ and holds letters, digits, _ . and -';
    END IF;
    -- Raises "no such model/version" with the right SQLSTATE and hint.
    PERFORM pgml_trigger.resolve_model(format('%s@%s', set_alias.name, set_alias.version));
    INSERT INTO pgml_trigger.aliases AS a (name, alias, version)
    VALUES (set_alias.name, set_alias.alias, set_alias.version)
    ON CONFLICT ON CONSTRAINT aliases_pkey DO UPDATE
        SET version = EXCLUDED.version, updated_at = now(), updated_by = current_user;
    RETURN set_alias.version;
END
$$;
COMMENT ON FUNCTION pgml_trigger.set_alias(text, text, integer) IS 'point alias of model name at version';

------------------------------------------------------------------------------
-- SQL scoring. The public functions are inlined SQL wrappers that add
-- statement_timestamp(): the runtime re-reads the catalog generation only
-- when that changes, i.e. at most once per statement.
------------------------------------------------------------------------------

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

CREATE FUNCTION pgml_trigger.cache_info(
    OUT name text, OUT version integer, OUT sha256 text, OUT payload_bytes bigint, OUT loads bigint)
RETURNS SETOF record
LANGUAGE plpython3u VOLATILE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].cache_info()
$$;
COMMENT ON FUNCTION pgml_trigger.cache_info() IS 'models deserialized in this backend, and how often each was loaded';

------------------------------------------------------------------------------
-- Scoring triggers.
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
    UNIQUE (target, output_column)
);
COMMENT ON TABLE pgml_trigger.attachments IS 'scoring triggers made by pgml_trigger.attach()';
CREATE TRIGGER attachments_catalog_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON pgml_trigger.attachments
    FOR EACH STATEMENT EXECUTE FUNCTION pgml_trigger._catalog_changed();

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

-- Builds, per attachment, a small PL/pgSQL trigger function that hands the
-- row to Python as a float8[] (all-numeric models, the fast path) or as a
-- jsonb object keyed by feature name (models with text features).
CREATE FUNCTION pgml_trigger.attach(target regclass, model text, output_column text, features text[] DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql AS $$
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
    body text;
BEGIN
    IF target IS NULL OR model IS NULL OR output_column IS NULL THEN
        RAISE EXCEPTION 'pgml_trigger.attach() needs a table, a model and an output column'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO resolved FROM pgml_trigger.resolve_model(model);
    SELECT mm.* INTO m FROM pgml_trigger.models AS mm WHERE mm.name = resolved.name AND mm.version = resolved.version;

    SELECT a.attnum, t.typcategory, format_type(a.atttypid, a.atttypmod) AS type_name INTO out_type
    FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
    WHERE a.attrelid = target AND a.attname = output_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'column "%" of % does not exist', output_column, target USING ERRCODE = 'undefined_column';
    END IF;
    IF out_type.typcategory = 'N' THEN
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
    FOR i IN 1 .. cardinality(cols) LOOP
        SELECT t.typcategory, format_type(a.atttypid, a.atttypmod) AS type_name INTO col
        FROM pg_catalog.pg_attribute AS a JOIN pg_catalog.pg_type AS t ON t.oid = a.atttypid
        WHERE a.attrelid = target AND a.attname = cols[i] AND a.attnum > 0 AND NOT a.attisdropped;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'column "%" of % does not exist; model %@% needs it for feature "%"',
                cols[i], target, m.name, m.version, m.feature_names[i] USING ERRCODE = 'undefined_column',
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
        by_position := by_position || format('NEW.%I%s', cols[i], CASE WHEN col.typcategory = 'B' THEN '::integer' END);
        by_name := by_name || format('%L, NEW.%I', m.feature_names[i], cols[i]);
    END LOOP;

    PERFORM pgml_trigger.detach(target, output_column)
    WHERE EXISTS (SELECT FROM pgml_trigger.attachments AS a
                  WHERE a.target = attach.target AND a.output_column = attach.output_column);

    trg_name := CASE WHEN octet_length('pgml_score_' || output_column) <= 63
                         THEN 'pgml_score_' || output_column
                         ELSE left('pgml_score_' || output_column, 40) || '_' || md5(output_column) END;
    INSERT INTO pgml_trigger.attachments AS a (target, output_column, model_ref, feature_names, columns, output,
                                               trigger_name)
    VALUES (target, output_column, model, m.feature_names, cols, output, trg_name)
    RETURNING a.id, a.function_name INTO attachment_id, fn_name;

    IF all_numeric THEN
        features_expr := format('ARRAY[%s]::double precision[]', array_to_string(by_position, ', '));
    ELSE
        features_expr := format('jsonb_build_object(%s)', array_to_string(by_name, ', '));
    END IF;
    body := format($body$
BEGIN
    IF TG_OP = 'UPDATE' AND (%1$s) IS NOT DISTINCT FROM (%2$s) THEN
        RETURN NEW;  -- no feature changed: keep the stored prediction
    END IF;
    NEW.%3$I := pgml_trigger.%4$I(%5$s, %6$s, statement_timestamp());
    RETURN NEW;
END
$body$, array_to_string(new_values, ', '), array_to_string(old_values, ', '), output_column,
        CASE output WHEN 'value' THEN '_score_row' ELSE '_label_row' END, attachment_id, features_expr);

    EXECUTE format('CREATE FUNCTION pgml_trigger.%I() RETURNS trigger LANGUAGE plpgsql AS %L', fn_name, body);
    EXECUTE format('COMMENT ON FUNCTION pgml_trigger.%I() IS %L', fn_name,
                   format('scoring trigger for %s.%s, model %s (made by pgml_trigger.attach)', target,
                          quote_ident(output_column), model));
    EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %s ON %s FOR EACH ROW EXECUTE FUNCTION pgml_trigger.%I()',
                   trg_name, array_to_string(quoted_cols, ', '), target, fn_name);
    RETURN trg_name;
END
$$;
COMMENT ON FUNCTION pgml_trigger.attach(regclass, text, text, text[]) IS
    'score target''s rows with model into output_column on INSERT and on UPDATE of the feature columns';

CREATE FUNCTION pgml_trigger.detach(target regclass, output_column text) RETURNS void
LANGUAGE plpgsql STRICT AS $$
DECLARE
    gone record;
BEGIN
    DELETE FROM pgml_trigger.attachments AS a
    WHERE a.target = detach.target AND a.output_column = detach.output_column
    RETURNING a.trigger_name, a.function_name INTO gone;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no model is attached to column "%" of %', output_column, target
            USING ERRCODE = 'undefined_object';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', gone.trigger_name, target);
    EXECUTE format('DROP FUNCTION IF EXISTS pgml_trigger.%I()', gone.function_name);
END
$$;
COMMENT ON FUNCTION pgml_trigger.detach(regclass, text) IS 'remove the scoring trigger that fills output_column';

-- A dropped table (or a trigger dropped with a column) takes its attachment
-- record and generated function with it.
CREATE FUNCTION pgml_trigger._forget_dropped_attachments() RETURNS event_trigger
LANGUAGE plpgsql AS $$
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

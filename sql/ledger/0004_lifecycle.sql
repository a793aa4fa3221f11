-- pgml_trigger lifecycle: alias history and rollback, deleting a version safely.

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

-- Aliases that exist when this migration runs start their history here.
INSERT INTO pgml_trigger.alias_history (name, alias, from_version, to_version, moved_at, moved_by)
SELECT name, alias, NULL, version, updated_at, updated_by FROM pgml_trigger.aliases;

-- Written as the owner: admins move aliases, but cannot write history by hand.
CREATE FUNCTION pgml_trigger._record_alias_move() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO pgml_trigger.alias_history (name, alias, from_version, to_version, kind)
        VALUES (OLD.name, OLD.alias, OLD.version, NULL, 'delete');
    ELSIF TG_OP = 'INSERT' OR NEW.version IS DISTINCT FROM OLD.version THEN
        INSERT INTO pgml_trigger.alias_history (name, alias, from_version, to_version)
        VALUES (NEW.name, NEW.alias, CASE WHEN TG_OP = 'UPDATE' THEN OLD.version END, NEW.version);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER aliases_record_move AFTER INSERT OR UPDATE OR DELETE ON pgml_trigger.aliases
    FOR EACH ROW EXECUTE FUNCTION pgml_trigger._record_alias_move();

-- Undo the latest move of an alias that is not undone yet; called again, it
-- keeps walking back (v3 -> v2 -> v1), never toggling between two versions.
CREATE FUNCTION pgml_trigger.rollback(name text, alias text DEFAULT 'production') RETURNS integer
LANGUAGE plpgsql STRICT AS $$
DECLARE
    current_version integer;
    last_move record;
BEGIN
    SELECT a.version INTO current_version FROM pgml_trigger.aliases AS a
    WHERE a.name = rollback.name AND a.alias = rollback.alias
    FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM pgml_trigger.resolve_model(format('%s@%s', rollback.name, rollback.alias));  -- raises the right error
    END IF;
    SELECT h.id, h.from_version INTO last_move FROM pgml_trigger.alias_history AS h
    WHERE h.name = rollback.name AND h.alias = rollback.alias AND h.kind = 'set' AND NOT h.undone
      AND h.to_version = current_version
    ORDER BY h.id DESC LIMIT 1;
    IF last_move.id IS NULL OR last_move.from_version IS NULL THEN
        RAISE EXCEPTION 'alias "%" of model "%" has no earlier version to go back to', rollback.alias, rollback.name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'see pgml_trigger.alias_history; move it with pgml_trigger.set_alias()';
    END IF;
    UPDATE pgml_trigger.alias_history SET undone = true WHERE id = last_move.id;
    UPDATE pgml_trigger.aliases AS a SET version = last_move.from_version, updated_at = now(), updated_by = current_user
    WHERE a.name = rollback.name AND a.alias = rollback.alias;
    UPDATE pgml_trigger.alias_history AS h SET kind = 'rollback'
    WHERE h.id = (SELECT max(id) FROM pgml_trigger.alias_history AS l
                  WHERE l.name = rollback.name AND l.alias = rollback.alias);
    RETURN last_move.from_version;
END
$$;
COMMENT ON FUNCTION pgml_trigger.rollback(text, text) IS 'point alias back at the version it pointed at before its latest move';

-- Refuses while an alias points at the version or a trigger scores with it,
-- and names them.
CREATE FUNCTION pgml_trigger.delete_model(name text, version integer) RETURNS void
LANGUAGE plpgsql STRICT AS $$
DECLARE
    aliases text;
    triggers text;
BEGIN
    PERFORM pgml_trigger.resolve_model(format('%s@%s', delete_model.name, delete_model.version));
    SELECT string_agg(format('%L', a.alias), ', ' ORDER BY a.alias) INTO aliases
    FROM pgml_trigger.aliases AS a WHERE a.name = delete_model.name AND a.version = delete_model.version;
    SELECT string_agg(format('%s.%s (model %L)', t.target, quote_ident(t.output_column), t.model_ref), ', ') INTO triggers
    FROM pgml_trigger.attachments AS t, LATERAL pgml_trigger.resolve_model(t.model_ref) AS r
    WHERE r.name = delete_model.name AND r.version = delete_model.version;
    IF aliases IS NOT NULL OR triggers IS NOT NULL THEN
        RAISE EXCEPTION 'model "%@%" is in use and cannot be deleted', delete_model.name, delete_model.version
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = concat_ws('; ', 'aliases: ' || aliases, 'scoring triggers: ' || triggers),
                  HINT = 'move the aliases (pgml_trigger.set_alias) and re-attach or detach the triggers first';
    END IF;
    DELETE FROM pgml_trigger.models AS m WHERE m.name = delete_model.name AND m.version = delete_model.version;
END
$$;
COMMENT ON FUNCTION pgml_trigger.delete_model(text, integer) IS 'delete one model version no alias or trigger uses';

------------------------------------------------------------------------------
-- Evaluation metrics and the training-data profile, both optional at upload,
-- and drift of recent inputs against that profile.
------------------------------------------------------------------------------

ALTER TABLE pgml_trigger.models
    ADD COLUMN metrics jsonb CHECK (metrics IS NULL OR jsonb_typeof(metrics) = 'object'),
    ADD COLUMN training_profile jsonb CHECK (training_profile IS NULL OR jsonb_typeof(training_profile) = 'object');
COMMENT ON COLUMN pgml_trigger.models.metrics IS 'evaluation metrics the uploader passed, e.g. {"roc_auc": 0.97}';
COMMENT ON COLUMN pgml_trigger.models.training_profile IS
    'per-feature profile of the training sample (pgml_trigger/profile.py): what drift() compares against';

CREATE FUNCTION pgml_trigger.drift(model text, source regclass, since timestamptz DEFAULT NULL)
RETURNS TABLE (feature text, statistic text, value double precision, threshold double precision,
               drifted boolean, rows bigint)
LANGUAGE plpython3u STABLE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].drift(model, source, since)
$$;
COMMENT ON FUNCTION pgml_trigger.drift(text, regclass, timestamptz) IS
    'per feature, how far source''s rows (since a time, by its scored_at or created_at column) drifted from training';

-- The metadata pgml_trigger_user may read grows with the new columns.
CREATE OR REPLACE VIEW pgml_trigger.model_catalog AS
SELECT m.name, m.version, m.format, m.sha256, octet_length(m.payload)::bigint AS payload_bytes, m.task, m.classes,
       m.feature_names, m.feature_types, m.accepts_nan, m.input_kind, m.python_version, m.sklearn_version,
       m.numpy_version, m.joblib_version, m.description, m.created_at, m.created_by,
       m.scoring_path, m.compiled_format, m.compiled_sha256, octet_length(m.compiled_payload)::bigint AS compiled_bytes,
       m.compiled_handles_nan, m.agreement, m.metrics, m.training_profile
FROM pgml_trigger.models AS m;

------------------------------------------------------------------------------
-- Privileges for what this migration adds (see 0003_trust.sql for the roles).
------------------------------------------------------------------------------

REVOKE ALL ON pgml_trigger.alias_history FROM PUBLIC;
REVOKE ALL ON FUNCTION pgml_trigger._record_alias_move(), pgml_trigger.rollback(text, text),
    pgml_trigger.delete_model(text, integer), pgml_trigger.drift(text, regclass, timestamptz) FROM PUBLIC;
GRANT SELECT ON pgml_trigger.alias_history TO pgml_trigger_user;
GRANT EXECUTE ON FUNCTION pgml_trigger.drift(text, regclass, timestamptz) TO pgml_trigger_user;
GRANT UPDATE (metrics, training_profile) ON pgml_trigger.models TO pgml_trigger_admin;
GRANT UPDATE (undone, kind) ON pgml_trigger.alias_history TO pgml_trigger_admin;
GRANT EXECUTE ON FUNCTION pgml_trigger.rollback(text, text), pgml_trigger.delete_model(text, integer)
    TO pgml_trigger_admin;

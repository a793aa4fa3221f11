------------------------------------------------------------------------------
-- resolution.sql: model references and aliases.
--
-- 'churn' (alias production, else the latest version), 'churn@3' (version 3), 'churn@staging' (alias
-- staging). Resolving reads models and aliases as their owner.
------------------------------------------------------------------------------

CREATE FUNCTION pgml_trigger.resolve_model(model text, OUT name text, OUT version integer)
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
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
COMMENT ON FUNCTION pgml_trigger.delete_model(text, integer) IS 'delete one model version no alias or trigger uses';

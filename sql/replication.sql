-- pgml_trigger across servers: one registry database publishes its catalog (models, aliases, alias
-- history) by logical replication, and scoring databases subscribe to it (pgml_trigger/admin/replicate.py).
--
-- A subscription's apply worker runs with session_replication_role = replica: triggers in their default
-- state do not fire there, and of the rest only row-level ones do. So each catalog trigger that keeps
-- open sessions right (the generation bump, the row-trigger rewrite) has a row-level twin that fires
-- only in replica mode: on the registry the statement-level ones fire, on a subscriber the twins.
-- Attachments, the prediction log and counters are not published: each server keeps its own.

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

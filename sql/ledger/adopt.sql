-- pgml_trigger, version "ledger": a database set up by the 0.1.0 installer's migration ledger becomes
-- the extension in place. The installer first applies the ledger migrations it lacks (sql/ledger/,
-- through 0008_provenance), which makes the database what CREATE EXTENSION pgml_trigger VERSION '0.1.0'
-- makes; this script then makes every object of it a member of the extension (no object is recreated,
-- no row moves) and drops the ledger's table. ALTER EXTENSION pgml_trigger UPDATE then takes it on
-- from 0.1.0 like any other 0.1.0 database.
--
-- The functions attach() generated (score_<id>) do not join: they are the database's own, which pg_dump
-- writes out; the update to 0.2.0 makes them depend on the extension.
DO $$
DECLARE
    ledger text[] := ARRAY['0001_core', '0002_speed', '0003_trust', '0004_lifecycle', '0005_observability',
                           '0006_formats', '0007_linear_triggers', '0008_provenance'];
    missing text;
    unknown text;
    member text;
BEGIN
    IF to_regclass('pgml_trigger.migrations') IS NULL THEN
        RAISE EXCEPTION 'this database has no pgml_trigger installation made by the migration ledger'
            USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'CREATE EXTENSION pgml_trigger';
    END IF;
    SELECT string_agg(v, ', ') INTO missing FROM unnest(ledger) AS v
    WHERE v NOT IN (SELECT m.version FROM pgml_trigger.migrations AS m);
    SELECT string_agg(m.version, ', ') INTO unknown FROM pgml_trigger.migrations AS m WHERE m.version <> ALL (ledger);
    IF missing IS NOT NULL OR unknown IS NOT NULL THEN
        RAISE EXCEPTION 'the ledger of this database is not the last one of pgml_trigger 0.1.0'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = concat_ws('; ', 'not applied: ' || missing, 'unknown here: ' || unknown),
                  HINT = 'pgml-trigger install applies the missing ledger migrations, then converts';
    END IF;
    DROP TABLE pgml_trigger.migrations;
    FOR member IN
        SELECT format('%s %s', CASE c.relkind WHEN 'r' THEN 'TABLE' WHEN 'v' THEN 'VIEW' ELSE 'SEQUENCE' END,
                      c.oid::regclass)
        FROM pg_catalog.pg_class AS c
        WHERE c.relnamespace = 'pgml_trigger'::regnamespace AND c.relkind IN ('r', 'v', 'S')
        UNION ALL
        SELECT format('FUNCTION %s', p.oid::regprocedure)
        FROM pg_catalog.pg_proc AS p
        WHERE p.pronamespace = 'pgml_trigger'::regnamespace AND p.proname !~ '^score_[0-9]+$'
        UNION ALL
        SELECT 'EVENT TRIGGER pgml_trigger_forget_dropped'
    LOOP
        EXECUTE format('ALTER EXTENSION pgml_trigger ADD %s', member);
    END LOOP;
END
$$;
-- The schema is not a member (CREATE EXTENSION made it, or found it): granted here, within the
-- extension's script, its privileges are recorded as the extension's initial ones, as a fresh
-- CREATE EXTENSION records them, and pg_dump leaves them to CREATE EXTENSION.
GRANT USAGE ON SCHEMA pgml_trigger TO pgml_trigger_user;

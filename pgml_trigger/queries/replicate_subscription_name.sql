-- Replication slots are named after subscriptions and must be unique on the registry across every
-- subscriber: the subscriber's cluster identifier and database oid make the name unique.
SELECT format('pgml_trigger_%s_%s', s.system_identifier, d.oid)
FROM pg_catalog.pg_control_system() AS s, pg_catalog.pg_database AS d
WHERE d.datname = current_database()

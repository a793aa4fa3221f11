-- On the registry: every subscriber's replication slot, and the bytes of catalog changes it has not
-- confirmed yet (a slot also holds WAL for a subscriber that is down). A standby has no such slots.
SELECT l.slot_name AS subscriber_slot, l.active AS connected,
       CASE WHEN NOT pg_catalog.pg_is_in_recovery() THEN
           pg_catalog.pg_size_pretty(pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(),
                                                                l.confirmed_flush_lsn)) END AS behind,
       r.replay_lag
FROM pg_catalog.pg_replication_slots AS l
LEFT JOIN pg_catalog.pg_stat_replication AS r ON r.pid = l.active_pid
WHERE l.database = current_database() AND l.plugin = 'pgoutput' AND l.slot_name LIKE 'pgml\_trigger\_%'
ORDER BY l.slot_name

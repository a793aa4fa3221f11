-- On a scoring database: its subscription to the registry and how far behind it is.
SELECT s.subname AS subscription, s.subenabled AS enabled, w.pid IS NOT NULL AS receiving,
       (SELECT count(*) FROM pg_catalog.pg_subscription_rel AS r
        WHERE r.srsubid = s.oid AND r.srsubstate <> 'r') AS tables_syncing,
       w.received_lsn, w.latest_end_lsn, w.latest_end_time,
       date_trunc('milliseconds', now() - w.last_msg_receipt_time) AS since_last_message
FROM pg_catalog.pg_subscription AS s
JOIN pg_catalog.pg_database AS d ON d.oid = s.subdbid AND d.datname = current_database()
LEFT JOIN pg_catalog.pg_stat_subscription AS w ON w.subid = s.oid AND w.relid IS NULL
WHERE 'pgml_trigger_catalog' = ANY (s.subpublications)
ORDER BY s.subname

-- Tables of the subscription whose initial copy has not finished ('r' = ready).
SELECT count(*)
FROM pg_catalog.pg_subscription_rel AS r
JOIN pg_catalog.pg_subscription AS s ON s.oid = r.srsubid
WHERE s.subname = %(name)s AND r.srsubstate <> 'r'

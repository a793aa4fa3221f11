-- Two ledger migrations at once take turns; the lock ends with the transaction.
SELECT pg_advisory_xact_lock(hashtext('pgml_trigger.migrations'))

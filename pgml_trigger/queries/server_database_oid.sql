-- Where this database's shared files go, and whether it is a standby (generation.py trusts no file there).
SELECT oid, pg_catalog.pg_is_in_recovery() AS in_recovery FROM pg_catalog.pg_database WHERE datname = current_database()

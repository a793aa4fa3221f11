SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database()

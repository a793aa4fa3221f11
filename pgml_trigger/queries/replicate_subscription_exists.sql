SELECT EXISTS (SELECT FROM pg_catalog.pg_subscription AS s
               JOIN pg_catalog.pg_database AS d ON d.oid = s.subdbid
               WHERE d.datname = current_database() AND s.subname = %(name)s)

-- What the installer checks first: server version, plpython3u, and who we are.
SELECT current_setting('server_version_num')::integer AS version_num,
       current_setting('server_version') AS version,
       EXISTS (SELECT FROM pg_catalog.pg_available_extensions WHERE name = 'plpython3u') AS plpython_available,
       (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) AS is_superuser,
       current_database() AS database

-- Where the server looks for extensions: SHAREDIR/extension (pg_config is for superusers only).
SELECT setting FROM pg_catalog.pg_config WHERE name = 'SHAREDIR'

SELECT m.name, m.version, m.task, m.format, m.scoring_path AS path,
       pg_size_pretty(m.payload_bytes) AS size,
       coalesce((SELECT string_agg(a.alias, ', ' ORDER BY a.alias) FROM pgml_trigger.aliases AS a
                 WHERE a.name = m.name AND a.version = m.version), '') AS aliases,
       to_char(m.created_at, 'YYYY-MM-DD HH24:MI') AS created, m.created_by
FROM pgml_trigger.model_catalog AS m
ORDER BY m.name, m.version

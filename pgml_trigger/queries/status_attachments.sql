SELECT a.target::text AS "table", a.output_column AS "column", a.model_ref AS model,
       r.name || '@' || r.version AS scores_with, a.output,
       array_to_string(a.columns, ', ') AS features
FROM pgml_trigger.attachments AS a
LEFT JOIN LATERAL pgml_trigger.resolve_model(a.model_ref) AS r ON true
ORDER BY a.id

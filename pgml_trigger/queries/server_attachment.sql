SELECT target::text AS target, output_column::text AS output_column, model_ref, feature_names, columns, output,
       mode, log, challenger, explain_column::text AS explain_column, explain_top_k
FROM pgml_trigger.attachments
WHERE id = $1

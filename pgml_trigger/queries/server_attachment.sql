SELECT target::text AS target, output_column::text AS output_column, model_ref, feature_names, columns, output,
       mode, log, challenger
FROM pgml_trigger.attachments
WHERE id = $1

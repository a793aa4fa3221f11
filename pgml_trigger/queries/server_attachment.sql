SELECT target::text AS target, model_ref, feature_names, columns
FROM pgml_trigger.attachments
WHERE id = $1

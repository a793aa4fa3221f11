-- One row per element of the arrays; runs inside SECURITY DEFINER functions, as the log's owner.
INSERT INTO pgml_trigger.prediction_log (model_name, model_version, role, target, output_column, row_key,
                                         prediction, label, features, reasons)
SELECT $1, $2, $3, $4, $5, logged.row_key, logged.prediction, logged.label, logged.features::jsonb,
       logged.reasons::jsonb
FROM unnest($6::text[], $7::double precision[], $8::text[], $9::text[], $10::text[])
     AS logged(row_key, prediction, label, features, reasons)

SELECT target::text AS target, output_column FROM pgml_trigger.attachments ORDER BY id

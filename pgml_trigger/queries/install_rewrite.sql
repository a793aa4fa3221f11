-- Update scripts may not replace the functions attach() generated (they are not the extension's):
-- the installer brings them to the current _row_trigger_body() afterwards.
SELECT pgml_trigger.rewrite_row_triggers()

-- Attachments are gone by now, so CASCADE reaches only pgml_trigger's own objects.
DROP EVENT TRIGGER IF EXISTS pgml_trigger_forget_dropped;
DROP SCHEMA IF EXISTS pgml_trigger CASCADE;

-- Attachments are gone by now, so nothing outside pgml_trigger depends on it. The schema is not a
-- member of the extension (CREATE EXTENSION made it for the control file's schema =): it goes here.
DROP EXTENSION IF EXISTS pgml_trigger;
DROP SCHEMA IF EXISTS pgml_trigger CASCADE;

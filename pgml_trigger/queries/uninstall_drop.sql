-- Attachments are gone by now, so nothing outside pgml_trigger depends on it. The schema is not a
-- member of the extension (CREATE EXTENSION made it for the control file's schema =), and a
-- database the ledger set up has no extension at all: both go here.
DROP EXTENSION IF EXISTS pgml_trigger;
DROP EVENT TRIGGER IF EXISTS pgml_trigger_forget_dropped;
DROP SCHEMA IF EXISTS pgml_trigger CASCADE;

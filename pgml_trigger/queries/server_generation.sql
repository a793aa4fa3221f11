-- Bumped by every change to models, aliases and attachments (sql/0001_core.sql).
SELECT generation FROM pgml_trigger.catalog_state

-- Bumped by every change to models, aliases and attachments (sql/catalog.sql).
SELECT generation FROM pgml_trigger.catalog_state

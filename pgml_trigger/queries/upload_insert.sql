-- Composed in uploader.py: one identifier and one placeholder per column sent. Optional
-- columns left unset are not named, so a newer uploader still works against an older
-- schema. version, created_at and created_by are set by the models_before_insert trigger.
INSERT INTO pgml_trigger.models ({columns}) VALUES ({values}) RETURNING version

-- Runs as the caller: _save_catalog_snapshot (SECURITY DEFINER) reads the catalog's metadata as the owner of
-- models and writes it to the file parallel queries resolve model references from (sql/catalog.sql).
SELECT pgml_trigger._save_catalog_snapshot()

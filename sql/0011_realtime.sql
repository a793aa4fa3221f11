-- Real-time scoring (issue 10).

------------------------------------------------------------------------------
-- Writers publish the generation they bumped to (pgml_trigger/server/generation.py), so that readers
-- read it from the catalog only when it may have changed. As in 0001 and 0003 otherwise.
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pgml_trigger._catalog_changed() RETURNS trigger
LANGUAGE plpython3u SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
generation = plpy.execute("UPDATE pgml_trigger.catalog_state SET generation = generation + 1 RETURNING generation")
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
GD["pgml_trigger"].catalog_changed(generation[0]["generation"])
$$;

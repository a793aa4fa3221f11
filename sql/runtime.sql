------------------------------------------------------------------------------
-- runtime.sql: where the server's Python environment lives, and loading it.
--
-- Every PL/Python body in this extension is two lines: bootstrap the package
-- once per backend, then call pgml_trigger/server/entry.py.
------------------------------------------------------------------------------

-- Settings the DBA sets with ALTER DATABASE ... SET, read from the catalog, never as the session sees
-- them: a session's SET must not choose which code the server imports nor loosen a policy.
--   pgml_trigger.python_path      the server's Python environment (site-packages)
--   pgml_trigger.allowed_formats  formats a load may deserialize (default 'joblib,skops,onnx')
--   pgml_trigger.hmac_key_file    file with the HMAC key (readable by the server's OS user only)
--   pgml_trigger.strict_versions  on: refuse models saved with another scikit-learn than the server's
--   pgml_trigger.sql_triggers     off: row triggers never score linear models as SQL arithmetic
--   pgml_trigger.defer_graph_mb   a compiled graph this big waits while the model's own payload scores first
CREATE FUNCTION pgml_trigger._database_setting(setting_name text) RETURNS text
LANGUAGE sql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
    SELECT substr(setting, length(setting_name) + 2)
    FROM pg_catalog.pg_db_role_setting AS s, unnest(s.setconfig) AS setting
    WHERE s.setdatabase = (SELECT oid FROM pg_catalog.pg_database WHERE datname = current_database())
      AND s.setrole = 0
      AND starts_with(setting, setting_name || '=')
$$;
COMMENT ON FUNCTION pgml_trigger._database_setting(text) IS
    'a setting as ALTER DATABASE set it for this database (not as the session sees it), or NULL';

-- The database's pgml_trigger.python_path, else the host's default: the file pgml_trigger.python_path
-- that the installer writes beside this extension's control file. A restored database (pg_dump does not
-- carry ALTER DATABASE settings) thus scores at once on any host where the product is installed.
CREATE FUNCTION pgml_trigger._python_path() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(
        pgml_trigger._database_setting('pgml_trigger.python_path'),
        (SELECT nullif(btrim(pg_read_file(c.setting || '/extension/pgml_trigger.python_path', 0, 4096, true),
                             E' \t\r\n'), '')
         FROM pg_catalog.pg_config AS c WHERE c.name = 'SHAREDIR'))
$$;
COMMENT ON FUNCTION pgml_trigger._python_path() IS
    'the site-packages the server imports pgml_trigger from: the database''s setting, else the host''s default';

-- Once per backend: put the environment first on sys.path (ahead of the system's dist-packages, which
-- may hold older numpy/scikit-learn), import the server entry module and keep it in GD for every other
-- function. When the import fails, GD holds a stand-in whose every use raises one error in the calling
-- function itself (no PL/Python prefixes: the class lives in __main__, as entry.SqlError does), and
-- forgets itself, so the next call looks again once the environment is there.
CREATE FUNCTION pgml_trigger._bootstrap() RETURNS void
LANGUAGE plpython3u SECURITY DEFINER SET search_path = pg_catalog, pgml_trigger, pg_temp AS $$
import site, sys
path = plpy.execute("SELECT pgml_trigger._python_path() AS path")[0]["path"]
if path and path not in sys.path:
    before = list(sys.path)
    site.addsitedir(path)
    sys.path[:] = [p for p in sys.path if p not in before] + before
try:
    from pgml_trigger.server import entry
except ImportError as exc:
    database = plpy.execute("SELECT current_database() AS name")[0]["name"]
    error = type("pgml_trigger", (plpy.Error,), {"__module__": "__main__"})(
        f"the server cannot import the pgml_trigger Python package ({exc}); "
        f"its environment: {path or 'none is set for this database or host'}")
    error.sqlstate = "55000"
    error.hint = ("install the environment on the database host, as root: "
                  f"pgml-trigger install --dsn 'dbname={database}' (or install/install.sh with the same options)")

    class Missing:
        def catalog_changed(self):
            pass

        def __getattr__(self, name):
            GD.pop("pgml_trigger", None)
            raise error

    entry = Missing()
GD["pgml_trigger"] = entry
$$;

CREATE FUNCTION pgml_trigger.version() RETURNS text
LANGUAGE plpython3u STABLE AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
return GD["pgml_trigger"].version()
$$;
COMMENT ON FUNCTION pgml_trigger.version() IS 'version of the pgml_trigger Python package the server imports';

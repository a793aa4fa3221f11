# ruff: noqa: F821  (GD and plpy are globals of the PL/Python function that runs this file)
"""pgml_trigger._bootstrap() for a process in a parallel query, which may not run it: run, never imported.

Every backend's bootstrap copies this file to pg_stat_tmp/pgml_trigger/bootstrap.py, in the data directory, and
records the site-packages it imported pgml_trigger from in pg_stat_tmp/pgml_trigger/<database oid>/python_path
(parallel.prepare_workers). The scoring functions that may run in a parallel query start with it there
(sql/scoring.sql): found by the data directory alone, since reading the database's setting takes SPI.
"""



def _bootstrap():
    import ctypes  # here: exec() binds a module's top-level names where a function defined in it cannot see them
    import site
    import sys

    database_oid = ctypes.c_uint32.in_dll(ctypes.CDLL(None), "MyDatabaseId").value
    try:
        with open(f"pg_stat_tmp/pgml_trigger/{database_oid}/python_path") as recorded:
            path = recorded.read()
    except OSError:
        error = type("pgml_trigger", (plpy.Error,), {"__module__": "__main__"})(
            "pgml_trigger cannot start in a parallel query of this database before a session has used it: "
            "its Python environment is read from the catalog, which parallel workers cannot read")
        error.sqlstate = "55000"
        error.hint = ("call any pgml_trigger function once without parallel workers (e.g. SELECT "
                      "pgml_trigger.version()), or SET max_parallel_workers_per_gather = 0")
        raise error from None
    if path not in sys.path:
        before = list(sys.path)
        site.addsitedir(path)
        sys.path[:] = [p for p in sys.path if p not in before] + before
    from pgml_trigger.server import entry

    GD["pgml_trigger"] = entry


_bootstrap()

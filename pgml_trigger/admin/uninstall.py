"""Remove pgml_trigger from a database: ``install/uninstall.sh`` / ``pgml-trigger uninstall``.

``DROP EXTENSION pgml_trigger`` with a safer default: it refuses while scoring triggers are attached,
unless told to detach them (their tables and rows stay; only the triggers go), where DROP EXTENSION
would refuse too, or with CASCADE take the triggers without saying which. Models, aliases and history
go with the extension, then the schema (not a member: CREATE EXTENSION made it for the control file).
The extension's files and
the server's Python environment stay, for the host's other databases; the environment goes only on
request.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import InstallError
from ..sqlfiles import query


def uninstall(dsn: str, *, detach: bool = False, remove_environment: bool = False, log=print) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(dsn, autocommit=True) as conn:
        python_path = None
        if not conn.execute(query("uninstall_installed")).fetchone()[0]:
            log("pgml_trigger is not installed in this database")
        else:
            python_path = conn.execute(query("uninstall_python_path")).fetchone()[0]
            with conn.transaction():
                attached = conn.execute(query("uninstall_attachments")).fetchall()
                if attached and not detach:
                    listing = ", ".join(f"{target}.{column}" for target, column in attached)
                    raise InstallError(f"scoring triggers are attached to {listing}",
                                       hint="detach them first, or pass --detach to remove the triggers too")
                for target, column in attached:
                    conn.execute(query("uninstall_detach"), {"target": target, "output_column": column})
                    log(f"detached the scoring trigger on {target}.{column}")
                conn.execute(query("uninstall_drop"))
                database = conn.info.dbname
                conn.execute(sql.SQL(query("uninstall_reset_path")).format(database=sql.Identifier(database)))
            log("extension and schema pgml_trigger dropped; pgml_trigger.python_path reset")
    if remove_environment and python_path:
        _remove_environment(Path(python_path), log)


def _remove_environment(site_packages: Path, log) -> None:
    venv = next((parent for parent in site_packages.parents if (parent / "pyvenv.cfg").exists()), None)
    if venv is None:
        raise InstallError(f"{site_packages} is not inside a virtual environment; not removing anything")
    shutil.rmtree(venv)
    log(f"removed the server's Python environment {venv}")

"""pgml_trigger: machine-learning predictions inside PostgreSQL.

The package runs in two places: in the data scientist's process (``upload``,
the ``pgml-trigger`` CLI, the installer) and inside the database server,
where PL/Python imports ``pgml_trigger.server``. Heavy imports (scikit-learn,
pandas) happen only where they are used.
"""

from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["__version__", "upload"]


def __getattr__(name: str):
    if name == "upload":
        from .uploader.upload import upload

        return upload
    raise AttributeError(f"module 'pgml_trigger' has no attribute {name!r}")

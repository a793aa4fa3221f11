"""The model libraries pgml_trigger knows besides scikit-learn, and how to tell a library's installed version.

Each library has a module in uploader/frameworks/ of the same name, and `pgml-trigger install --with` may put
it into the server's environment. A plain tuple here, so that the installer reads it without importing
numpy or any model library.
"""

from __future__ import annotations

import functools

MODEL_LIBRARIES = ("xgboost", "lightgbm", "catboost")


@functools.cache
def installed_version(distribution: str) -> str | None:
    """The version of ``distribution`` where this process imports from; None when it is not installed.

    Cached: the server asks at every model load, and a library upgraded under a running process is not the one
    that process imported.
    """
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None

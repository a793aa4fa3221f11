"""MLflow models as what upload() stores: a model directory (with an ``MLmodel`` file), or a registry or run URI.

Runs in the uploader's process only, with MLflow installed there (the optional extra:
``pip install 'pgml_trigger[mlflow]'``); the database server never needs MLflow. ``resolve()``
reads the model as MLflow does, through the flavor its ``MLmodel`` names, and returns what upload()
stores: the flavor's native model object (a scikit-learn estimator, an XGBoost/LightGBM/CatBoost
model) or, for the onnx flavor, the ONNX graph; the feature names and types from the signature;
the run's metrics; and where it came from.

URIs are ``models:/<name>/<version>``, ``models:/<name>@<alias>``, ``models:/<name>/latest`` or
``/<stage>`` (these three recorded as the version they pointed to at upload, since they move), any
other ``models:/`` form MLflow resolves, and ``runs:/<run_id>/<path>``. MLflow finds its tracking
server and registry as it always does (``MLFLOW_TRACKING_URI``, ``MLFLOW_REGISTRY_URI``, or
``mlflow.set_tracking_uri()`` in the caller).
A directory is read as it is: no tracking server is asked, so it brings no metrics.
"""

from __future__ import annotations

import math
import re
import tempfile
import warnings
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

from ..errors import InvalidModel, MissingExtra
from ..schema import NUMBER, STRING

# Which flavor is read when an MLmodel has several: an ONNX graph as it is, else the native model.
FLAVORS = ("onnx", "sklearn", "xgboost", "lightgbm", "catboost")
URI_SCHEMES = ("models:/", "runs:/")
_MOVING = re.compile(r"^models:/(?P<name>[^/@]+)(@(?P<alias>[^/]+)|/(?P<which>[^/]+))$")
_NUMERIC = {"boolean", "integer", "long", "float", "double"}


@dataclass(frozen=True)
class MlflowModel:
    model: object  # the flavor's model object, or an onnx.ModelProto
    flavor: str
    feature_names: list[str] | None  # from the signature, for a model that does not name its own features
    feature_types: dict[str, str] | None  # NUMBER or STRING per signature column
    metrics: dict | None  # the run's metrics (latest value of each)
    source_uri: str
    mlflow_version: str


def is_mlflow_source(model) -> bool:
    """Whether upload() was given an MLflow URI, an MLflow model directory or its MLmodel file."""
    if isinstance(model, str) and model.startswith(URI_SCHEMES):
        return True
    if isinstance(model, (str, PathLike)):
        path = Path(model)
        return (path.is_dir() and (path / "MLmodel").is_file()) or (path.name == "MLmodel" and path.is_file())
    return False


def resolve(source) -> MlflowModel:
    mlflow = _mlflow()
    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's and its stores' deprecation chatter must not fail an upload
        if isinstance(source, str) and source.startswith(URI_SCHEMES):
            with tempfile.TemporaryDirectory(prefix="pgml_trigger-mlflow-") as scratch:
                try:
                    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=scratch))
                except MlflowException as exc:
                    raise InvalidModel(f"MLflow cannot find {source} (tracking URI {mlflow.get_tracking_uri()}): "
                                       f"{exc.message}") from exc
                meta, flavor, model = _read(local, source)
            source_uri = _pinned(mlflow, source)
            metrics, unread = _run_metrics(mlflow, meta.run_id)
        else:
            local = Path(source)
            local = local.parent if local.name == "MLmodel" else local
            meta, flavor, model = _read(local, str(source))
            source_uri, metrics, unread = str(local.resolve()), None, None
    if unread is not None:  # the model itself was read: its run's metrics are not worth failing the upload for
        # Pointing past resolve(), upload's _read() and upload() itself, at the caller's line.
        warnings.warn(f"pgml_trigger: the metrics of {source}'s run were not read: {unread}", stacklevel=4)
    names, types = _signature(meta, str(source))
    own_names = getattr(model, "feature_names_in_", None) is not None
    return MlflowModel(model=model, flavor=flavor, feature_names=None if own_names else names, feature_types=types,
                       metrics=metrics, source_uri=source_uri, mlflow_version=mlflow.__version__)


def _mlflow():
    try:
        import mlflow
    except ImportError as exc:
        raise MissingExtra("reading MLflow models needs MLflow, which is not installed here",
                           hint="pip install 'pgml_trigger[mlflow]'") from exc
    return mlflow


def _read(local: Path, shown: str):
    """(the MLmodel, the flavor read, the model object) of a model directory."""
    import importlib

    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    try:
        meta = Model.load(str(local))
    except (MlflowException, OSError) as exc:
        raise InvalidModel(f"{shown} is no MLflow model: {type(exc).__name__}: {exc}",
                           hint="point at the directory MLflow logged the model to (it holds an MLmodel file)") from exc
    flavor = next((name for name in FLAVORS if name in meta.flavors), None)
    if flavor is None:
        raise InvalidModel(f"the MLflow model {shown} has the flavors {', '.join(meta.flavors)}; pgml_trigger "
                           f"uploads {', '.join(FLAVORS)}",
                           hint="log the model with one of those flavors, or convert it to ONNX (mlflow.onnx)")
    try:
        module = importlib.import_module(f"mlflow.{flavor}")
        return meta, flavor, module.load_model(str(local))
    except ImportError as exc:
        raise InvalidModel(f"the MLflow model {shown} is a {flavor} model, and reading it needs {exc.name or flavor}, "
                           "which is not installed here", hint=f"pip install {exc.name or flavor}") from exc


def _pinned(mlflow, uri: str) -> str:
    """The URI of the version an alias, ``latest`` or a stage points to now: what was uploaded, whatever they
    point to later. Other URIs are immutable already (a version number, a run, a logged model's id)."""
    match = _MOVING.match(uri)
    if match is None or (match["which"] or "").isdigit():
        return uri
    client = mlflow.MlflowClient()
    if match["alias"] is not None:
        version = client.get_model_version_by_alias(match["name"], match["alias"]).version
    else:  # MLflow's stages (deprecated, still served) and "latest", the newest version of any stage
        stages = None if match["which"].lower() == "latest" else [match["which"]]
        version = max(int(found.version) for found in client.get_latest_versions(match["name"], stages))
    return f"models:/{match['name']}/{version}"


def _run_metrics(mlflow, run_id: str | None) -> tuple[dict | None, str | None]:
    """(the run's metrics, or why they could not be read)."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None, None
    try:
        metrics = mlflow.MlflowClient().get_run(run_id).data.metrics
    except MlflowException as exc:  # e.g. a registry whose runs live in a tracking server this user cannot read
        return None, exc.message
    # jsonb has no NaN or infinity; such a metric is left out rather than failing the upload.
    return {name: value for name, value in metrics.items() if math.isfinite(value)} or None, None


def _signature(meta, shown: str) -> tuple[list[str] | None, dict[str, str] | None]:
    """Feature names and types from a column-based signature; (None, None) without one."""
    inputs = meta.signature.inputs if meta.signature is not None else None
    if inputs is None or inputs.is_tensor_spec() or not inputs.has_input_names():
        return None, None
    types = {}
    for name, kind in zip(inputs.input_names(), inputs.input_types()):
        kind_name = getattr(kind, "name", str(kind))
        if kind_name == "string":
            types[str(name)] = STRING
        elif kind_name in _NUMERIC:
            types[str(name)] = NUMBER
        else:
            raise InvalidModel(f"the MLflow model {shown}'s signature gives column {name!r} the type {kind}; "
                               "features are numbers or text")
    return list(types), types


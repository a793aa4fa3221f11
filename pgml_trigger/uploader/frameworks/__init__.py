"""One module per model library, behind one small interface; the uploader knows libraries only through it.

A framework (``Framework`` below) says which fitted models are its own, and for them: how to describe
them (task, classes, features), serialize them (the payload the server deserializes when it cannot score
the ONNX graph), convert them to ONNX, and which library versions loading the payload needs. The
agreement check between the ONNX graph and the model itself is shared (compile.compile_model). A
scikit-learn Pipeline belongs to the framework of its last step, so a pipeline ending in an
XGBClassifier is converted with the XGBoost converter registered into skl2onnx.

Adding a library means adding a module here with a ``FRAMEWORK`` and listing it in
pgml_trigger/libraries.py; ``sklearn`` comes last and takes whatever no other framework claims. Models are
recognised by the module their class comes from, so looking one up never imports a library that is not installed.
"""

from __future__ import annotations

import importlib
from functools import cache

from ...errors import InvalidModel
from ...libraries import MODEL_LIBRARIES, installed_version
from ..compile import Compiled, compile_model
from ..describe import ModelInfo

_MODULES = (*MODEL_LIBRARIES, "sklearn")


class Framework:
    name = ""
    # The distribution whose objects the payload holds besides scikit-learn's (its version is recorded with
    # the model and compared at load), and which `pgml-trigger install --with` puts into the server.
    library: str | None = None

    def owns(self, model) -> bool:
        return self.library is not None and _library_of(final_step(model)) == self.library

    def prepare(self, model, *, feature_names=None, classes=None, task=None):
        """The object to describe, store and score: the model itself, or a native booster in the adapter that
        gives it predict()/predict_proba() (``classes`` and ``task`` are only for such boosters)."""
        if classes is not None or task is not None:
            raise InvalidModel(f"classes= and task= describe ONNX graphs and native boosters, not a "
                               f"{type(model).__name__}")
        return model

    def describe(self, model, feature_names=None, sample=None) -> ModelInfo:
        from ..describe import describe

        return describe(model, feature_names=feature_names, sample=sample)

    def serialize(self, model, fmt: str) -> bytes:
        from ... import formats

        payload = formats.dump(model, fmt)
        if fmt == "skops":
            refused = formats.untrusted_types(payload)
            if refused:
                raise InvalidModel(f"the model holds types the server does not load from skops: {', '.join(refused)}",
                                   hint="use only numpy, scipy and scikit-learn types, or convert the model to ONNX")
        return payload

    def to_onnx(self, model, info: ModelInfo) -> bytes:
        from ..compile import convert_sklearn

        return convert_sklearn(model, info)

    def feature_bounds(self, model, n_features: int):
        """Per-feature (low, high) the fitted model reveals, to draw check rows from without a sample; or None."""
        from ..compile import feature_bounds

        return feature_bounds(model, n_features)

    def compile(self, model, info: ModelInfo, sample=None) -> Compiled:
        """The ONNX graph, kept only where it agrees with the model on the check rows (compile.py)."""
        return compile_model(model, info, sample, convert=self.to_onnx, bounds=self.feature_bounds)

    def library_versions(self) -> dict[str, str]:
        return {} if self.library is None else {self.library: installed_version(self.library)}


def for_model(model) -> Framework:
    """The framework a fitted model (or the last step of a pipeline) belongs to."""
    return next(framework for framework in frameworks() if framework.owns(model))


@cache
def frameworks() -> tuple[Framework, ...]:
    return tuple(importlib.import_module(f"{__name__}.{module}").FRAMEWORK for module in _MODULES)


def register_with_skl2onnx(prefix: str, classifier, regressor, converter, regressor_options=None) -> None:
    """Register ``converter`` with skl2onnx for a library's scikit-learn API classes, so that a pipeline
    ending in one of them converts as one graph (the alias is skl2onnx's convention: library, class)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(classifier, f"{prefix}{classifier.__name__}", calculate_linear_classifier_output_shapes,
                                converter, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    update_registered_converter(regressor, f"{prefix}{regressor.__name__}", calculate_linear_regressor_output_shapes,
                                converter, options=regressor_options)


def final_step(model):
    """The estimator at the end of a (nested) scikit-learn Pipeline, or the model itself."""
    while type(model).__name__ == "Pipeline" and hasattr(model, "steps"):
        model = model.steps[-1][1]
    return model


def _library_of(model) -> str:
    return type(model).__module__.partition(".")[0]

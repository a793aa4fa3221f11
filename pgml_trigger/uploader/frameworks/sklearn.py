"""scikit-learn estimators and pipelines: what every other framework falls back on.

Described from the fitted estimator (describe.py), saved with joblib or skops (formats.py), converted
by skl2onnx (compile.py). Everything the interface's defaults do, so this only claims the models.
"""

from __future__ import annotations

from . import Framework


class SklearnFramework(Framework):
    name = "sklearn"

    def owns(self, model) -> bool:
        return True  # last in the registry: whatever no other library claims is described as scikit-learn


FRAMEWORK = SklearnFramework()

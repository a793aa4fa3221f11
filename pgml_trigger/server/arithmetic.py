"""A linear model's one-row predictions as double-precision arithmetic, where its compiled graph would score them.

An onnxruntime call costs a one-row prediction several microseconds before the model does anything, and a
compiled graph computes in float32. A version uploaded with a linear form (pgml_trigger/uploader/linear.py:
the scalers folded into one intercept and one row of coefficients per decision, checked at upload against the
model's predict()) is scored one row at a time here instead, exactly as its row trigger computes it in SQL:
``intercept + c1 * x1 + c2 * x2 + ...`` left to right, in float64. Batches and probabilities still go to the
graph (the form has no link function), and so does a row whose arithmetic overflows (the trigger's bound).
A model scored by its own payload keeps it: scikit-learn's own arithmetic is what its predictions must equal.
"""

from __future__ import annotations

import math
from operator import mul


class LinearRows:
    scoring_path = "arithmetic"

    def __init__(self, form: dict, classes: list | None, engine):
        """``engine``: what scores the rows the arithmetic cannot (its predict_row)."""
        self._decisions = [(float(intercept), [float(c) for c in coefficients])
                           for intercept, coefficients in zip(form["intercepts"], form["coefficients"])]
        self._scale = float(form["scale"])
        self._classes = classes
        self._engine = engine

    def predict_row(self, values):
        decisions = [sum(map(mul, coefficients, values), intercept) for intercept, coefficients in self._decisions]
        if not math.isfinite(sum(decisions)):  # beyond the form's bound: no exact answer here
            return self._engine.predict_row(values)
        if self._classes is None:
            return decisions[0] / self._scale
        if len(decisions) == 1:  # two classes: the sign of one decision
            return self._classes[1] if decisions[0] > 0 else self._classes[0]
        return self._classes[decisions.index(max(decisions))]  # the first of equal decisions, like argmax

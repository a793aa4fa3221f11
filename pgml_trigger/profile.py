"""The training-data profile an upload can carry, and the drift statistics computed against it.

The uploader profiles a sample of the training data (per numeric feature:
count, missing, mean, std, deciles and the share of rows in each decile bin;
per text feature: category shares). Inside the server, drift() bins recent
inputs the same way and compares:

* numeric features: the population stability index (PSI) over the training
  deciles; above 0.2 is flagged (under 0.1 is usually read as no shift);
* text features: the total variation distance between category shares
  (half the sum of absolute differences, categories unseen in training
  included); above 0.1 is flagged.

Pure numpy: runs in the uploader and in the server alike.
"""

from __future__ import annotations

import math

import numpy as np

PSI_THRESHOLD = 0.2
TVD_THRESHOLD = 0.1
_TOP_CATEGORIES = 50
_OTHER = "(other)"
_FLOOR = 1e-4  # keeps PSI finite when a bin is empty on one side


def training_profile(sample, names, types) -> dict:
    """Profile of ``sample`` (a DataFrame with the feature columns, or a 2-D array in feature order)."""
    columns = _columns(sample, names)
    return {name: (_numeric_profile(column) if kind == "number" else _text_profile(column))
            for name, kind, column in zip(names, types, columns)}


def _columns(sample, names):
    if hasattr(sample, "columns"):
        missing = [name for name in names if name not in sample.columns]
        if missing:
            raise ValueError(f"sample lacks the model's features {missing}")
        return [sample[name].to_numpy() for name in names]
    array = np.asarray(sample, dtype=object)
    if array.ndim != 2 or array.shape[1] != len(names):
        raise ValueError(f"sample must have {len(names)} columns, in feature order")
    return [array[:, i] for i in range(len(names))]


def _numeric_profile(column) -> dict:
    values = np.asarray(column, dtype=np.float64)
    present = values[~np.isnan(values)]
    if present.size == 0:
        return {"kind": "number", "count": int(values.size), "missing": int(values.size)}
    edges = np.unique(np.quantile(present, np.linspace(0.1, 0.9, 9)))
    return {"kind": "number", "count": int(values.size), "missing": int(values.size - present.size),
            "mean": float(present.mean()), "std": float(present.std()),
            "quantiles": [float(q) for q in np.quantile(present, np.linspace(0, 1, 11))],
            "bin_edges": [float(e) for e in edges], "bin_shares": _bin_shares(present, edges)}


def _text_profile(column) -> dict:
    values = [value for value in column if isinstance(value, str)]
    names, counts = np.unique(np.asarray(values, dtype=object), return_counts=True) if values else ([], [])
    order = np.argsort(counts)[::-1] if values else []
    shares = {str(names[i]): counts[i] / len(values) for i in order[:_TOP_CATEGORIES]}
    rest = 1.0 - sum(shares.values())
    if rest > 1e-12:
        shares[_OTHER] = rest
    return {"kind": "string", "count": len(column), "missing": len(column) - len(values),
            "shares": {name: float(share) for name, share in shares.items()}}


def _bin_shares(values: np.ndarray, edges) -> list[float]:
    # bin i holds edges[i-1] <= value < edges[i]: the same rule DriftMeter.add uses
    counts = np.bincount(np.searchsorted(np.asarray(edges), values, side="right"), minlength=len(edges) + 1)
    return [float(c) for c in counts / max(values.size, 1)]


class DriftMeter:
    """Accumulates one feature's recent values, chunk by chunk, against its training profile."""

    def __init__(self, profile: dict):
        self.profile = profile
        self.rows = 0
        if profile["kind"] == "number":
            self.statistic, self.threshold = "psi", PSI_THRESHOLD
            self._bins = np.zeros(len(profile.get("bin_edges", [])) + 1)
        else:
            self.statistic, self.threshold = "tvd", TVD_THRESHOLD
            self._counts: dict[str, int] = {}

    def add(self, values: list) -> None:
        if self.profile["kind"] == "number":
            present = np.asarray([v for v in values if v is not None], dtype=np.float64)
            present = present[~np.isnan(present)]
            edges = np.asarray(self.profile.get("bin_edges", []))
            self._bins += np.bincount(np.searchsorted(edges, present, side="right"), minlength=edges.size + 1)
            self.rows += present.size
            return
        known = self.profile["shares"]
        for value in values:
            if isinstance(value, str):
                key = value if value in known or _OTHER not in known else _OTHER
                self._counts[key] = self._counts.get(key, 0) + 1
                self.rows += 1

    def value(self) -> float | None:
        """The statistic, or None when there is nothing to compare."""
        if self.rows == 0:
            return None
        if self.profile["kind"] == "number":
            if "bin_shares" not in self.profile:
                return None
            actual = np.maximum(self._bins / self.rows, _FLOOR)
            expected = np.maximum(self.profile["bin_shares"], _FLOOR)
            return float(np.sum((actual - expected) * np.log(actual / expected)))
        known = self.profile["shares"]
        categories = set(known) | set(self._counts)
        return 0.5 * math.fsum(abs(known.get(c, 0.0) - self._counts.get(c, 0) / self.rows) for c in categories)

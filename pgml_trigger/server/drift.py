"""drift(): compare a table's recent rows with a model's training profile, feature by feature."""

from __future__ import annotations

import json

from ..errors import FeatureMissing, ModelLoadFailed
from ..profile import DriftMeter
from ..sqlfiles import query

TIME_COLUMNS = ("scored_at", "created_at")  # what `since` filters on, first found wins
_CHUNK = 10000


def drift(catalog, quote_ident, model_ref: str, source: str, since):
    model = catalog.drift_model(model_ref)
    label = f"{model['name']}@{model['version']}"
    if model["training_profile"] is None:
        raise ModelLoadFailed(f"model {label} was uploaded without a training profile",
                              hint="upload it again with sample= (a sample of the training data)")
    profile = json.loads(model["training_profile"])
    names, types = model["feature_names"], model["feature_types"]
    columns = catalog.columns_of(source)
    for name in names:
        if name not in columns:
            raise FeatureMissing(f'{source} has no column "{name}", a feature of model {label}')
    selected = ", ".join(f"{quote_ident(name)}::{'double precision' if kind == 'number' else 'text'} AS c{i}"
                         for i, (name, kind) in enumerate(zip(names, types)))
    where, argtypes, args = "", [], []
    if since is not None:
        time_column = next((c for c in TIME_COLUMNS if columns.get(c) == "D"), None)
        if time_column is None:
            raise FeatureMissing(f"{source} has no {' or '.join(TIME_COLUMNS)} column to select rows since {since}")
        where, argtypes, args = f"WHERE {quote_ident(time_column)} >= $1", ["timestamptz"], [since]
    meters = [DriftMeter(profile[name]) for name in names]
    text = query("server_drift_rows").format(columns=selected, source=source, since=where)
    for rows in catalog.stream(text, argtypes, args, _CHUNK):
        for i, meter in enumerate(meters):
            meter.add([row[f"c{i}"] for row in rows])
    results = []
    for name, meter in zip(names, meters):
        value = meter.value()
        results.append((name, meter.statistic, value, meter.threshold,
                        None if value is None else value > meter.threshold, meter.rows))
    return results

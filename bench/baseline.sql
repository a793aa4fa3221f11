-- Bench-only functions (schema bench), created by bench/run.py in its throwaway cluster.

CREATE SCHEMA bench;

-- The plain way to score inside PostgreSQL, without pgml_trigger's compiled path: unpickle the same
-- joblib payload once per session into GD and call model.predict on one row.
CREATE FUNCTION bench.sklearn_predict(model text, features double precision[]) RETURNS double precision
LANGUAGE plpython3u STABLE STRICT AS $$
estimator = GD.get(("bench.sklearn_predict", model))
if estimator is None:
    import io
    if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")  # puts joblib on sys.path
    import joblib
    payload = plpy.execute(plpy.prepare("SELECT payload FROM pgml_trigger.models WHERE name = $1 "
                                        "ORDER BY version DESC LIMIT 1", ["text"]), [model])[0]["payload"]
    estimator = GD[("bench.sklearn_predict", model)] = joblib.load(io.BytesIO(payload))
return float(estimator.predict([features])[0])
$$;

-- How a float8[][] reaches Python: PL/Python's list of lists, element by element ...
CREATE FUNCTION bench.rows_via_list(features double precision[]) RETURNS integer
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")  # puts numpy on sys.path
import numpy
return numpy.asarray(features, dtype=numpy.float64).shape[0]
$$;

-- ... or array_send() bytes parsed by pgml_trigger (what predict_batch does).
CREATE FUNCTION bench.rows_via_send(features bytea) RETURNS integer
LANGUAGE plpython3u STABLE STRICT AS $$
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
from pgml_trigger.schema import FeatureInput, FeatureSchema
from pgml_trigger.server.features import from_array_send
schema = FeatureSchema(names=tuple(f"x{i}" for i in range(30)), types=("number",) * 30,
                       inputs=(FeatureInput(),) * 30, input_kind="array")
return from_array_send(schema, features, "bench").shape[0]
$$;

-- predict_batch's floor inside the backend: the engine predict_batch scores with (the model as this backend's
-- pgml_trigger cache holds it: the same onnxruntime session) on the matrix predict_batch would parse from these
-- array_send() bytes, parsed before the clock starts. Seconds of the fastest of `runs` engine.predict_rows calls.
CREATE FUNCTION bench.engine_seconds(model text, features bytea, runs integer) RETURNS double precision
LANGUAGE plpython3u VOLATILE STRICT AS $$
import time
if "pgml_trigger" not in GD: plpy.execute("SELECT pgml_trigger._bootstrap()")
from pgml_trigger.server.features import from_array_send
runtime = GD["pgml_trigger"]  # pgml_trigger/server/entry.py
loaded = runtime._model(model, plpy.execute("SELECT statement_timestamp() AS now")[0]["now"])
matrix = from_array_send(loaded.schema, features, loaded.label)
best = float("inf")
for _ in range(runs):
    started = time.perf_counter()
    loaded.engine.predict_rows(matrix)
    best = min(best, time.perf_counter() - started)
return best
$$;

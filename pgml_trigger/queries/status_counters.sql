SELECT name, version, backends, calls, rows, errors, loads, round(seconds::numeric, 3) AS seconds,
       round(load_seconds::numeric, 3) AS load_seconds
FROM pgml_trigger.counters()
ORDER BY name, version

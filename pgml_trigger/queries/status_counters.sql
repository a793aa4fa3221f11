SELECT name, version, backends, calls, rows, errors, loads, round(seconds::numeric, 3) AS seconds
FROM pgml_trigger.counters()
ORDER BY name, version

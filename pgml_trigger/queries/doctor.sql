-- pgml-trigger doctor: what the server says about loading each model version.
SELECT name, version, format, scoring_path, allowed, loads, error, sklearn_recorded, sklearn_server, verdict
FROM pgml_trigger.doctor()

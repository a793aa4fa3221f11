-- Drifted features of each attachment whose model carries a training profile.
SELECT feature, statistic, round(value::numeric, 4) AS value, threshold, rows
FROM pgml_trigger.drift(%(model)s, %(target)s::regclass)
WHERE drifted

SELECT t.id,
       pgml_trigger.predict_label('tumor', t) AS label,
       pgml_trigger.predict_proba('tumor', t) AS "[p_benign, p_malignant]"
FROM tumors AS t
WHERE t.id IN (1, 20, 100)
ORDER BY t.id

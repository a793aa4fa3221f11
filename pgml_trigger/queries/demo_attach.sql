SELECT pgml_trigger.attach('tumors', 'tumor', 'diagnosis')

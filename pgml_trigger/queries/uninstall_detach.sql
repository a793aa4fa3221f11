SELECT pgml_trigger.detach(%(target)s::regclass, %(output_column)s)

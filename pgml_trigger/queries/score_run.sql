SELECT pgml_trigger.score(%(model)s, %(table)s::regclass, %(column)s, %(features)s, %(batch_size)s)

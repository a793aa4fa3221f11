SELECT pgml_trigger.set_alias(%(name)s, %(alias)s, %(version)s)

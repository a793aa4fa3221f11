-- The server loads the version just inserted, in this transaction, and scores the rows (null: only loads it).
SELECT pgml_trigger._check_version(%(name)s, %(version)s, %(rows)s)

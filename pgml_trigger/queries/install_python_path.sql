-- Composed with psycopg.sql: {database} is an Identifier, {path} a Literal.
ALTER DATABASE {database} SET pgml_trigger.python_path = {path}

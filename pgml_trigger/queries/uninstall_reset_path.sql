-- Composed with psycopg.sql: {database} is an Identifier.
ALTER DATABASE {database} RESET pgml_trigger.python_path

-- Composed in server/drift.py from quoted identifiers: the feature columns cast to
-- float8 or text, the source relation, and an optional WHERE on its time column.
SELECT {columns} FROM {source} {since}

-- Composed in server/drift.py from quoted identifiers and literals: the feature columns (or
-- logged jsonb fields) cast to float8 or text, the source relation, and an optional WHERE.
SELECT {columns} FROM {source} {where}

-- The 30 feature columns are composed in by demo.py.
CREATE TABLE tumors (
    id serial PRIMARY KEY,
    {columns},
    diagnosis text
)

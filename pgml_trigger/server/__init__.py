"""Code that runs inside PostgreSQL, imported by PL/Python (see entry.py)."""

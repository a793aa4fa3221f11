"""Administering a database: install and update (install.py, extension.py), uninstall, replication
(replicate.py), export and import of versions (transfer.py), status and the score servers.

Needs psycopg and nothing heavier: an installer never imports numpy or a model library.
"""

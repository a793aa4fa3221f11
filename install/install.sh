#!/usr/bin/env bash
# Install or upgrade the pgml_trigger extension in a PostgreSQL database. Run on the
# database host, as root (it writes the server's extension directory and, by default,
# /opt/pgml_trigger), with a superuser DSN:
#
#   install/install.sh --dsn "host=/var/run/postgresql dbname=app user=postgres"
#
# Options (all passed to `pgml-trigger install`): --venv DIR, --python-path DIR,
# --source PATH, --no-apt, --no-default-path, --no-host-files, --with xgboost,lightgbm,catboost.
# Safe to run again; see docs/install.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/python.sh"
exec "$python" -m pgml_trigger install --source "$here" "$@"

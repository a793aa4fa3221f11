#!/usr/bin/env bash
# Install or upgrade pgml_trigger in a PostgreSQL database. Run on the database
# host, as a user who can write the environment directory (root for the
# default /opt/pgml_trigger), with a superuser DSN:
#
#   install/install.sh --dsn "host=/var/run/postgresql dbname=app user=postgres"
#
# Options (all passed to `pgml-trigger install`): --venv DIR, --python-path DIR,
# --source PATH, --no-apt, --with xgboost,lightgbm,catboost. Safe to run again; see README
# "Installing on your server".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/python.sh"
exec "$python" -m pgml_trigger install --source "$here" "$@"

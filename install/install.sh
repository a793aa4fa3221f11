#!/usr/bin/env bash
# Install or upgrade pgml_trigger in a PostgreSQL database. Run on the database
# host, as a user who can write the environment directory (root for the
# default /opt/pgml_trigger), with a superuser DSN:
#
#   install/install.sh --dsn "host=/var/run/postgresql dbname=app user=postgres"
#
# Options (all passed to `pgml-trigger install`): --venv DIR, --python-path DIR,
# --source PATH, --no-apt. Safe to run again; see README "Installing on your server".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

# The installer itself needs only psycopg; give it a private environment
# when the chosen Python lacks it, never touching the system's packages.
if ! "$python" -c "import psycopg" 2>/dev/null; then
    bootstrap="${TMPDIR:-/tmp}/pgml_trigger-installer"
    if [ ! -x "$bootstrap/bin/python" ]; then
        "$python" -m venv "$bootstrap"
    fi
    "$bootstrap/bin/python" -m pip install --quiet --disable-pip-version-check "psycopg[binary]>=3.1"
    python="$bootstrap/bin/python"
fi

PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m pgml_trigger install --source "$here" "$@"

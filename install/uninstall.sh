#!/usr/bin/env bash
# DROP EXTENSION pgml_trigger in a database (superuser DSN), refusing while scoring
# triggers are attached unless given --detach; --remove-environment also
# deletes the server's Python environment (other databases may share it).
#
#   install/uninstall.sh --dsn "dbname=app user=postgres" [--detach] [--remove-environment]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/python.sh"
exec "$python" -m pgml_trigger uninstall "$@"

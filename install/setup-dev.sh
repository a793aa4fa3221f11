#!/usr/bin/env bash
# Everything a fresh machine needs to run the demo and the tests: the
# PostgreSQL server with PL/Python and PgBouncer (apt, when root) and this package with its
# test dependencies for python3. Safe to run again; fast when all is there.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

newest_major() {
    ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sed -E 's#/usr/lib/postgresql/([0-9]+)/.*#\1#' | sort -n | tail -1
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    major="$(newest_major)"
    if [ -z "$major" ]; then
        apt-get update -q && apt-get install -y -q postgresql
        major="$(newest_major)"
    fi
    if [ ! -f "/usr/lib/postgresql/$major/lib/plpython3.so" ]; then
        apt-get update -q && apt-get install -y -q "postgresql-plpython3-$major"
    fi
    # tests/test_pooling.py runs the suite's cluster behind PgBouncer (transaction and session pools)
    if ! command -v pgbouncer >/dev/null; then
        apt-get update -q && apt-get install -y -q pgbouncer
    fi
fi

"$python" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e "$here[test]"

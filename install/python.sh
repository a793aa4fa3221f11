# Sourced by install.sh and uninstall.sh: sets $here (the checkout) and
# $python, an interpreter that can import psycopg. The DBA scripts need only
# psycopg; when the chosen Python lacks it they get a private environment,
# never touching the system's packages.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if ! "$python" -c "import psycopg" 2>/dev/null; then
    bootstrap="${TMPDIR:-/tmp}/pgml_trigger-installer"
    if [ ! -x "$bootstrap/bin/python" ]; then
        "$python" -m venv "$bootstrap"
    fi
    "$bootstrap/bin/python" -m pip install --quiet --disable-pip-version-check "psycopg[binary]>=3.1"
    python="$bootstrap/bin/python"
fi
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"

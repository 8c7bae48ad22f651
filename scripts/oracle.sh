#!/usr/bin/env bash
# The oracle on more worlds than the tests' fixed batch: random seeded worlds whose calls are known,
# backfilled into one real Prometheus, judged in every mode through retire's CLI (tests/oracle/).
#   bash scripts/oracle.sh --worlds 500 --seed 1 [--modes raw,coverage] [--workers 2] [--markdown FILE]
# Prints one line per mode and every false safe; exits 1 if there is any.
# Uses ./.venv (made by scripts/setup.sh when missing), or the Python named by $ORACLE_PYTHON
# (e.g. another checkout's venv; this checkout comes first on PYTHONPATH either way).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${ORACLE_PYTHON:-}"
if [ -z "$python" ]; then
    [ -d .venv ] || bash scripts/setup.sh
    python=.venv/bin/python
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m tests.oracle "$@"

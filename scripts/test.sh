#!/usr/bin/env bash
# The test command: install everything, lint, type-check, run the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k advisor).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Tests write only inside their temporary directories: a file the suite leaves in the work tree
# (reports named after option values were once committed by mistake) fails the run.
untracked() { git ls-files --others --exclude-standard 2>/dev/null | sort; }
before=$(untracked)
.venv/bin/python -m pytest "$@"
left=$(comm -13 <(echo "$before") <(untracked))
if [ -n "$left" ]; then
    echo "test: the suite left files in the work tree:" >&2
    echo "$left" | head -20 >&2
    exit 1
fi

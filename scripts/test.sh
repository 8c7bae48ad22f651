#!/usr/bin/env bash
# The test command: install everything, lint, type-check, run the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k advisor).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"

#!/usr/bin/env bash
# The benchmark suite (not part of CI): installs what it needs, then runs bench/run.py.
# Extra arguments go to it: --tier smoke, --markdown, --runs N.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python bench/run.py "$@"

#!/usr/bin/env bash
# The test command: install everything, lint, type-check, run the whole suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k advisor; -n 0 runs it in one process).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
# Tests write only inside their temporary directories: anything the suite adds to or changes in
# the work tree (reports named after option values were once committed by mistake) fails the run.
changed() { git status --porcelain=v1 --untracked-files=all 2>/dev/null | sort; }
before=$(changed)
# Four workers on two cores: most of the suite waits on real servers and real time, not the CPU.
# loadscope keeps a module on one worker, so its module-scoped servers start once, and hands
# modules out in collection order (no reorder: tests/conftest.py puts the slow tiers first); pytest's
# timeout (300 s, per test) bounds every test on every worker. The 25 slowest steps (a module's
# servers show as the setup of its first test) are printed at the end: where the time goes.
.venv/bin/python -m pytest -n 4 --dist loadscope --no-loadscope-reorder --durations=25 "$@"
left=$(comm -13 <(echo "$before") <(changed))
if [ -n "$left" ]; then
    echo "test: the suite changed the work tree (git status):" >&2
    echo "$left" | head -20 >&2
    exit 1
fi

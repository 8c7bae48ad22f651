#!/usr/bin/env bash
# The demo: install what is needed, start a real Prometheus with a day of synthetic TF Serving
# traffic, make an example model directory, and print `retire report` for them.
# Extra arguments go to the demo (e.g. --keep to leave Prometheus running).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --demo
exec .venv/bin/python -m retire.lab.demo "$@"

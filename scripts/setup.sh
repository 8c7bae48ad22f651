#!/usr/bin/env bash
# Installs everything the demo and the tests need on a Debian machine, from nothing:
# Prometheus (with promtool), VictoriaMetrics, retire with its test extras in ./.venv, and a real
# Triton Inference Server (PyPI nvidia-pytriton bundles the tritonserver binary) in ./.venv/triton.
# Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
{ command -v prometheus && command -v promtool; } >/dev/null || missing+=(prometheus)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import retire, pytest, aiosmtpd, hypothesis" 2>/dev/null; then
    echo "setup: installing retire and its test extras into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e '.[test]'

# The real-Triton test tier (tests/test_triton.py) runs the `tritonserver` binary that PyPI's
# nvidia-pytriton bundles, with its Python backend. It lives in a venv of its own inside .venv:
# nvidia-pytriton pins numpy<2 (its Python backend stub returns empty output tensors with numpy 2),
# while pandas 3 needs numpy>=2, so the two cannot share one environment. retire.lab.triton finds
# it at <sys.prefix>/triton; the Python backend's models run with this venv's python.
triton_pin="nvidia-pytriton==0.7.0"
if ! compgen -G ".venv/triton/lib/python3*/site-packages/nvidia_pytriton-0.7.0.dist-info" >/dev/null; then
    echo "setup: installing $triton_pin (Triton Inference Server for the tests) into .venv/triton" >&2
    [ -x .venv/triton/bin/python ] || .venv/bin/python -m venv .venv/triton
    .venv/triton/bin/python -m pip install -q "$triton_pin"
fi

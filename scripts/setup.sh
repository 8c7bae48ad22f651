#!/usr/bin/env bash
# Installs everything the demo and the tests need on a Debian machine, from nothing:
# Prometheus (with promtool), VictoriaMetrics, retire with its test extras in ./.venv, a real
# Triton Inference Server (PyPI nvidia-pytriton bundles the tritonserver binary) in ./.venv/triton
# and a real Seldon MLServer in ./.venv/mlserver.
# Safe to run again: it skips what is already there.
#
#   bash scripts/setup.sh          everything (the tests' command, scripts/test.sh)
#   bash scripts/setup.sh --demo   only what the demo runs: Prometheus and retire itself (no test
#                                  extras, no VictoriaMetrics, no Triton or MLServer venvs)
set -euo pipefail
cd "$(dirname "$0")/.."
demo=""
[ "${1:-}" = "--demo" ] && demo=1

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
updated=""
apt_install() {
    command -v apt-get >/dev/null || return 1
    echo "setup: installing Debian packages: $*" >&2
    if [ -z "$updated" ]; then
        $sudo apt-get update -qq || return 1
        updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
{ command -v prometheus && command -v promtool; } >/dev/null || missing+=(prometheus)
[ -n "$demo" ] || command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
if ((${#missing[@]})); then
    apt_install "${missing[@]}"
fi

# A virtualenv in ./.venv. Debian splits `venv`'s pip bootstrap into the python3-venv package,
# so `python3 -m venv` fails without it: install it, or else fall back to virtualenv from pip.
make_venv() {
    rm -rf .venv
    python3 -m venv .venv 2>/dev/null && return 0
    rm -rf .venv
    if apt_install python3-venv; then
        python3 -m venv .venv && return 0
        rm -rf .venv
    fi
    echo "setup: python3 -m venv is unavailable; using virtualenv from pip instead" >&2
    python3 -m pip install -q --user virtualenv 2>/dev/null \
        || python3 -m pip install -q --user --break-system-packages virtualenv
    python3 -m virtualenv -q .venv
}
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
    make_venv
fi
if [ -n "$demo" ]; then
    if ! .venv/bin/python -c "import retire, typer, httpx, rich, pandas" 2>/dev/null; then
        echo "setup: installing retire into .venv" >&2
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e .
    fi
    exit 0
fi
if ! .venv/bin/python -c "import retire, pytest, xdist, aiosmtpd, hypothesis" 2>/dev/null; then
    echo "setup: installing retire and its test extras into .venv" >&2
    .venv/bin/python -m pip install -q --upgrade pip
fi
.venv/bin/python -m pip install -q -e '.[test]'

# The real-Triton test tier (tests/e2e/test_triton.py) runs the `tritonserver` binary that PyPI's
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

# The real-MLServer test tier (tests/e2e/test_mlserver.py) runs PyPI's mlserver from a venv of its
# own (about 330 MB; its fastapi, pydantic and grpc pins are not retire's). uvloop is pinned:
# with uvloop 0.23 MLServer's inference worker dies at start ("There is no current event loop").
# retire.lab.mlserver finds it at <sys.prefix>/mlserver.
mlserver_pins=("mlserver==1.7.1" "uvloop==0.21.0")
if ! compgen -G ".venv/mlserver/lib/python3*/site-packages/mlserver-1.7.1.dist-info" >/dev/null \
    || ! compgen -G ".venv/mlserver/lib/python3*/site-packages/uvloop-0.21.0.dist-info" >/dev/null; then
    echo "setup: installing ${mlserver_pins[*]} (MLServer for the tests) into .venv/mlserver" >&2
    [ -x .venv/mlserver/bin/python ] || .venv/bin/python -m venv .venv/mlserver
    .venv/mlserver/bin/python -m pip install -q "${mlserver_pins[@]}"
fi

"""A real Triton Inference Server on 127.0.0.1, for the real-server test tier.

PyPI's `nvidia-pytriton` bundles the `tritonserver` binary, its libraries and the Python backend;
`scripts/setup.sh` installs it into a venv of its own, `<sys.prefix>/triton` (its numpy<2 pin
cannot share an environment with pandas 3). `Triton` runs that binary directly, as pytriton itself
does: the backends copied into a work directory with the Python backend stub built for the venv's
Python beside `libtriton_python.so`, the bundled libraries on `LD_LIBRARY_PATH`, and the venv's
`bin/` first on `PATH` so the stub imports that venv's numpy. Models are tiny Python-backend echo
models (`write_model`), so everything runs on the CPU in seconds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from retire.lab.servers import LabError, _Server, free_port

ENV_VAR = "RETIRE_TRITON_ENV"  # overrides where the venv holding nvidia-pytriton is

MODEL_PY = '''\
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Echo: Y = X."""

    def execute(self, requests):
        out = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", np.array(x, dtype=np.float32))]))
        return out
'''

CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 0
input [ {{ name: "X" data_type: TYPE_FP32 dims: [ 1 ] }} ]
output [ {{ name: "Y" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [ {{ kind: KIND_CPU count: 1 }} ]
{policy}"""


@dataclass(frozen=True)
class Install:
    """Where the pieces of a bundled Triton are."""

    binary: Path  # tritonserver
    backends: Path  # backends/ as shipped (python/ without a stub)
    stub: Path  # triton_python_backend_stub for the venv's Python
    libs: Path  # the wheel's bundled shared libraries
    bin_dir: Path  # the venv's bin/: its python is the Python backend's interpreter
    libpython_dir: Path | None  # where the venv's libpython3.X.so lives, if not in a system path


def find_install(env: Path | None = None) -> Install:
    """The Triton installed by scripts/setup.sh (or in `$RETIRE_TRITON_ENV`)."""
    env = env or Path(os.environ.get(ENV_VAR) or Path(sys.prefix) / "triton")
    sites = sorted(env.glob("lib/python3*/site-packages/pytriton/tritonserver"))
    if not sites:
        raise LabError(
            f"no Triton Inference Server in {env} (nvidia-pytriton); run scripts/setup.sh, which installs "
            f"it there, or set {ENV_VAR} to a venv that has it"
        )
    dist = sites[-1]
    python_version = dist.parents[2].name.removeprefix("python")  # lib/python3.11/site-packages
    install = Install(
        binary=dist / "bin" / "tritonserver",
        backends=dist / "backends",
        stub=dist / "python_backend_stubs" / python_version / "triton_python_backend_stub",
        libs=dist.parents[1] / "nvidia_pytriton.libs",
        bin_dir=env / "bin",
        libpython_dir=_libpython_dir(env / "bin" / "python"),
    )
    for path in (install.binary, install.stub, install.libs):
        if not path.exists():
            raise LabError(f"incomplete Triton install: {path} is missing; rerun scripts/setup.sh")
    return install


def _libpython_dir(python: Path) -> Path | None:
    """The Python backend stub links libpython3.X.so; a pyenv or source-built Python keeps it
    outside the system library path."""
    probe = "import sysconfig; print(sysconfig.get_config_var('LIBDIR') or '')"
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, check=False)
    libdir = Path(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else None
    return libdir if libdir is not None and any(libdir.glob("libpython3*.so*")) else None


def policy_text(policy: str | None) -> str:
    """`version_policy` for config.pbtxt: None (Triton's default, latest 1), "all", "latest N" or
    "specific 1,3"."""
    if policy is None:
        return ""
    kind, _, arg = policy.partition(" ")
    if kind == "all":
        return "version_policy: { all { } }\n"
    if kind == "latest":
        return f"version_policy: {{ latest {{ num_versions: {int(arg)} }} }}\n"
    if kind == "specific":
        versions = ", ".join(str(int(v)) for v in arg.split(","))
        return f"version_policy: {{ specific {{ versions: [ {versions} ] }} }}\n"
    raise ValueError(f"unknown version policy {policy!r}")


def write_model(repo: Path, name: str, versions: Iterable[int | str], policy: str | None = None) -> Path:
    """A Python-backend echo model `<repo>/<name>/` with one directory per version."""
    root = repo / name
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.pbtxt").write_text(CONFIG.format(name=name, policy=policy_text(policy)))
    for v in versions:
        (root / str(v)).mkdir(exist_ok=True)
        (root / str(v) / "model.py").write_text(MODEL_PY)
    return root


class Triton(_Server):
    """`tritonserver` in explicit model control mode, loading every model of `repository` at
    start, with HTTP, gRPC and metrics on free 127.0.0.1 ports."""

    name = "triton"
    ready_path = "/v2/health/ready"
    port_taken = "already in use"
    ready_timeout = 240.0  # every Python model instance starts a stub process; 2 busy cores are slow

    def __init__(self, repository: Path, workdir: Path, *flags: str, install: Install | None = None) -> None:
        super().__init__(workdir)
        self.repository = repository
        self.flags = flags
        self.install = install or find_install()
        self.grpc_port = 0
        self.metrics_port = 0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def metrics_target(self) -> str:
        """host:port for a Prometheus scrape job."""
        return f"127.0.0.1:{self.metrics_port}"

    def _backends(self) -> Path:
        target = self.workdir / "backends"
        if not (target / "python" / "triton_python_backend_stub").exists():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(self.install.backends, target, ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(self.install.stub, target / "python" / "triton_python_backend_stub")
        return target

    def command(self) -> list[str]:
        ports = {self.port}
        while len(ports) < 3:  # free_port() may hand out the same free port twice
            ports.add(free_port())
        self.grpc_port, self.metrics_port = sorted(ports - {self.port})
        return [
            str(self.install.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={self._backends()}",
            "--model-control-mode=explicit",
            "--load-model=*",
            "--http-address=127.0.0.1",
            f"--http-port={self.port}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={self.grpc_port}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={self.metrics_port}",
            "--allow-gpu-metrics=false",
            "--exit-timeout-secs=5",
            *self.flags,
        ]

    def popen_env(self) -> dict[str, str]:
        env = dict(os.environ)
        libs = [str(self.install.libs)]
        if self.install.libpython_dir is not None:
            libs.insert(0, str(self.install.libpython_dir))
        env["LD_LIBRARY_PATH"] = ":".join([*libs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
        env["PATH"] = f"{self.install.bin_dir}:{env.get('PATH', '')}"
        env.pop("PYTHONPATH", None)  # the stub must import the Triton venv's numpy, not ours
        env.pop("PYTHONHOME", None)
        return env

    def summarize(self, log: str) -> str:
        """Triton's errors (`E...` lines, `error: ...`) and its last lines; the wide option table
        it prints at start would otherwise fill the message."""
        lines = log.splitlines()
        errors = [line for line in lines if line.startswith(("E", "error:", "/")) or "error" in line.lower()]
        text = "\n".join(dict.fromkeys([*errors[-20:], *lines[-3:]]))[-4000:]
        return f"{text}\n(log: {self.workdir / 'triton.log'})"

    def stop(self) -> None:
        """Triton ends its Python stub processes itself; any left (Triton killed) go with its
        process group, which is ours alone (start_new_session)."""
        process = self.process
        super().stop()
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    # --- the HTTP/REST API (KServe v2 protocol and Triton's repository extension) ---

    def infer(self, model: str, version: int | str | None = None, value: float = 1.0) -> None:
        """One real inference request; raises unless the echo came back."""
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "") + "/infer"
        body = {"inputs": [{"name": "X", "shape": [1], "datatype": "FP32", "data": [value]}]}
        response = httpx.post(self.url + path, json=body, timeout=30)
        if response.status_code != 200:
            raise LabError(f"infer {model}/{version}: HTTP {response.status_code} {response.text[:300]}")
        outputs = response.json().get("outputs") or [{}]
        if outputs[0].get("data") != [value]:
            raise LabError(f"infer {model}/{version}: unexpected answer {response.text[:300]}")

    def load(self, model: str) -> None:
        """Load (or reload) a model through the repository API: Triton rereads its directory."""
        self._repository_post(f"/v2/repository/models/{model}/load")

    def unload(self, model: str) -> None:
        self._repository_post(f"/v2/repository/models/{model}/unload")

    def index(self) -> list[dict[str, Any]]:
        """The repository index: every model (and loaded version) with its state."""
        answer = self._repository_post("/v2/repository/index")
        return list(answer) if isinstance(answer, list) else []

    def metrics(self) -> str:
        return httpx.get(self.metrics_url, timeout=10).text

    def _repository_post(self, path: str) -> Any:
        response = httpx.post(self.url + path, timeout=120)
        if response.status_code != 200:
            raise LabError(f"POST {path}: HTTP {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

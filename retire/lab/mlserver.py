"""A real Seldon MLServer on 127.0.0.1, for the real-server test tier.

PyPI's `mlserver` runs in a venv of its own, `<sys.prefix>/mlserver` (`scripts/setup.sh` installs
it with `uvloop==0.21.0` pinned: with uvloop 0.23 its inference worker dies at start with "There is
no current event loop"). `MLServer` runs `mlserver start <repository>` from that venv with its HTTP,
gRPC and metrics ports on free 127.0.0.1 ports, its working directory (where it keeps `.metrics/`
and `.envs/`) inside the lab's own directory, and bytecode writing off, so nothing lands in the
version folders. Models are tiny echo models (`write_model`): a Python `MLModel` subclass in a file
beside each `model-settings.json`, no ML framework, ready in seconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx

from retire.lab.servers import LabError, _Server, free_port

ENV_VAR = "RETIRE_MLSERVER_ENV"  # overrides where the venv holding mlserver is

MODEL_PY = '''\
from mlserver import MLModel
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Echo(MLModel):
    """Y = X; a negative input fails the request (a client whose calls all fail)."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = payload.inputs[0]
        data = list(x.data)
        if any(v < 0 for v in data):
            raise ValueError("negative input")
        out = ResponseOutput(name="Y", shape=x.shape, datatype=x.datatype, data=data)
        return InferenceResponse(model_name=self.name, model_version=self.version, outputs=[out])


class Broken(Echo):
    """A model whose load fails."""

    async def load(self) -> bool:
        raise RuntimeError("this model cannot load")
'''


def find_python(env: Path | None = None) -> Path:
    """The python of the venv holding mlserver (scripts/setup.sh, or `$RETIRE_MLSERVER_ENV`)."""
    env = env or Path(os.environ.get(ENV_VAR) or Path(sys.prefix) / "mlserver")
    python = env / "bin" / "python"
    if not python.exists() or not any(env.glob("lib/python3*/site-packages/mlserver/__init__.py")):
        raise LabError(
            f"no MLServer in {env} (PyPI mlserver); run scripts/setup.sh, which installs it there, "
            f"or set {ENV_VAR} to a venv that has it"
        )
    return python


def write_model(
    repo: Path,
    folder: str,
    name: str | None,
    version: str | None,
    implementation: str = "echo.Echo",
) -> Path:
    """An echo model `<repo>/<folder>/`: its model-settings.json (`name` and `parameters.version`
    left out when None: MLServer then takes the folder's name, and the model has no version) and
    the file holding its `MLModel` subclass."""
    root = repo / folder
    root.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {"implementation": implementation}
    if name is not None:
        settings["name"] = name
    if version is not None:
        settings["parameters"] = {"version": version}
    (root / "model-settings.json").write_text(json.dumps(settings, indent=1) + "\n")
    (root / "echo.py").write_text(MODEL_PY)
    return root


class MLServer(_Server):
    """`mlserver start <repository>`: every model-settings.json under it is loaded at start."""

    name = "mlserver"
    ready_path = "/v2/health/ready"
    ready_timeout = 90.0  # about 5 s alone; 2 busy cores are slower

    def __init__(self, repository: Path, workdir: Path, python: Path | None = None, **env: str) -> None:
        super().__init__(workdir)
        self.repository = repository
        self.python = python or find_python()
        self.env = env  # more MLSERVER_* settings
        self.grpc_port = 0
        self.metrics_port = 0

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def metrics_target(self) -> str:
        """host:port for a Prometheus scrape job."""
        return f"127.0.0.1:{self.metrics_port}"

    def command(self) -> list[str]:
        ports = {self.port}
        while len(ports) < 3:  # free_port() may hand out the same free port twice
            ports.add(free_port())
        self.grpc_port, self.metrics_port = sorted(ports - {self.port})
        return [str(self.python), "-m", "mlserver.cli.main", "start", str(self.repository)]

    def popen_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER_")}
        env.pop("PYTHONPATH", None)  # the server imports its own venv's packages, not ours
        env.pop("PYTHONHOME", None)
        env.update(
            MLSERVER_HOST="127.0.0.1",
            MLSERVER_HTTP_PORT=str(self.port),
            MLSERVER_GRPC_PORT=str(self.grpc_port),
            MLSERVER_METRICS_PORT=str(self.metrics_port),
            MLSERVER_METRICS_DIR=str(self.workdir / "metrics"),
            MLSERVER_ENVIRONMENTS_DIR=str(self.workdir / "envs"),
            PYTHONDONTWRITEBYTECODE="1",
            **self.env,
        )
        return env

    def popen_cwd(self) -> Path:
        return self.workdir

    def start(self) -> MLServer:
        super().start()
        try:  # the metrics port is its own server, started beside the HTTP one
            self.wait_metrics()
        except LabError:
            self.stop()
            raise
        return self

    def wait_metrics(self, timeout: float = 30.0) -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.metrics_url, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise LabError(f"MLServer's metrics port {self.metrics_port} did not answer within {timeout:.0f}s")

    def stop(self) -> None:
        """MLServer ends its inference workers itself; any left (MLServer killed) go with its
        process group, which is ours alone (start_new_session)."""
        process = self.process
        super().stop()
        if process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)

    # --- the HTTP API (Open Inference Protocol, MLServer's repository extension) ---

    def infer(self, model: str, version: str | None = None, value: float = 1.0) -> int:
        """One real inference request; the HTTP status (200, or 4xx/5xx when it failed)."""
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "") + "/infer"
        body = {"inputs": [{"name": "X", "shape": [1], "datatype": "FP32", "data": [value]}]}
        response = httpx.post(self.url + path, json=body, timeout=30)
        if response.status_code == 200 and response.json()["outputs"][0]["data"] != [value]:
            raise LabError(f"infer {model}/{version}: unexpected answer {response.text[:300]}")
        return response.status_code

    def index(self) -> list[dict[str, Any]]:
        """The repository index: every model-settings.json found, with a state."""
        answer = self._post("/v2/repository/index", {})
        return list(answer) if isinstance(answer, list) else []

    def load(self, model: str) -> None:
        self._post(f"/v2/repository/models/{model}/load")

    def unload(self, model: str) -> None:
        self._post(f"/v2/repository/models/{model}/unload")

    def ready(self, model: str, version: str | None = None) -> int:
        path = f"/v2/models/{model}" + (f"/versions/{version}" if version is not None else "") + "/ready"
        return httpx.get(self.url + path, timeout=10).status_code

    def metrics(self) -> str:
        return httpx.get(self.metrics_url, timeout=10).text

    def _post(self, path: str, body: object = None) -> Any:
        response = httpx.post(self.url + path, json=body, timeout=60)
        if response.status_code != 200:
            raise LabError(f"POST {path}: HTTP {response.status_code} {response.text[:300]}")
        return response.json() if response.content else None

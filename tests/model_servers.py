"""Small real HTTP servers on 127.0.0.1 that speak the model servers' unload APIs, with their
faults: Triton's repository API (explicit model control), TorchServe's management API, TF
Serving's REST status API with its polled --model_config_file, and Seldon MLServer's repository
API.

They are stand-ins, not the servers: the real Triton is tested in tests/e2e/test_unload_triton.py;
TorchServe cannot run here (its worker imports torch at start, a ~800 MB wheel this machine does
not have), so its API is played by `FakeTorchServe`, written from TorchServe's management API
documentation (describe, set-default, unregister, register from the model store). No TF Serving
binary is on this machine either (`tensorflow-serving-api` on PyPI holds only the protos), so
`FakeTFServing` plays it, from its documentation and source (below). Each fault is a
real misbehaviour on the wire (an error status, a late answer, a version that goes down), never a
patched function. Every request is logged with its headers, so a test can check what reached the
server.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.fake_servers import Server


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class Model:
    versions: list[str]  # on disk
    loaded: set[str]
    config: dict[str, Any] = field(default_factory=dict)


class _Base:
    """The HTTP side: one handler method per request; `faults` are set by the test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[Seen] = []
        self.faults: set[str] = set()
        self.delay = 0.0  # seconds before answering a change (a "slow" fault)
        self.trickle = 0.0  # seconds between the bytes of an answer (a fault a server plays once)
        self.trickled = 0.0  # set by `answer` for the answer it gives now

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        raise NotImplementedError

    @contextmanager
    def running(self) -> Iterator[str]:
        me = self

        class H(BaseHTTPRequestHandler):
            def _handle(self, method: str) -> None:
                length = int(self.headers.get("content-length", 0) or 0)
                raw = self.rfile.read(length).decode(errors="replace") if length else ""
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                me.log.append(Seen(method, self.path, dict(self.headers), raw))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                with me.lock:
                    status, payload = me.answer(method, parts.path, query, body)
                data = b"" if payload is None else json.dumps(payload).encode()
                pause, me.trickled = me.trickled, 0.0
                if pause:
                    data = b" " * 60 + (data or b"{}")  # something to trickle (JSON may lead with spaces)
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    for i in range(len(data)) if pause else ():  # a byte at a time
                        self.wfile.write(data[i : i + 1])
                        self.wfile.flush()
                        time.sleep(pause)
                    self.wfile.write(b"" if pause else data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PUT(self) -> None:
                self._handle("PUT")

            def do_DELETE(self) -> None:
                self._handle("DELETE")

            def log_message(self, *args: object) -> None:
                pass

        server = Server(("127.0.0.1", 0), H)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()

    def slow(self) -> None:
        """Late, holding the lock: the server finishes one change before it answers anything else
        (as a server busy loading does)."""
        if self.delay:
            time.sleep(self.delay)
            self.delay = 0.0  # once: the next change is answered at once


class FakeTriton(_Base):
    """Triton's HTTP API as `retire unload` uses it. Faults:
    - "refuse": a load with a `specific` policy answers 400 and changes nothing;
    - "slow": the next load answers after `delay` seconds (and is done);
    - "kept-down": the next load also unloads the first kept version (it goes down mid-way);
    - "ignore": the load answers 200 but unloads nothing;
    - "disagree": after a load, the index says every version READY while the dropped ones are
      not ready;
    - "no-config": `GET /v2/models/<m>/config` answers 503 (the status API still answers)."""

    def __init__(self, models: dict[str, list[str]]) -> None:
        super().__init__()
        self.models = {
            name: Model(
                list(vs),
                set(vs),
                {"name": name, "backend": "python", "version_policy": {"all": {}}, "max_batch_size": 0},
            )
            for name, vs in models.items()
        }
        self.loads: list[dict[str, Any]] = []  # every config loaded, in order
        self.disagree: set[tuple[str, str]] = set()

    def loaded(self, model: str) -> set[str]:
        with self.lock:
            return set(self.models[model].loaded)

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if (method, parts) == ("POST", ["v2", "repository", "index"]):
            out = []
            for name, m in self.models.items():
                for v in m.versions:
                    ready = v in m.loaded or (name, v) in self.disagree
                    entry = {"name": name, "version": v, "state": "READY" if ready else "UNAVAILABLE"}
                    if not ready:
                        entry["reason"] = "unloaded"
                    out.append(entry)
            return 200, out
        if method == "GET" and len(parts) == 4 and parts[:2] == ["v2", "models"] and parts[3] == "config":
            if "no-config" in self.faults:
                return 503, {"error": "overloaded"}
            m = self.models.get(parts[2])
            return (200, m.config) if m else (400, {"error": f"Request for unknown model: '{parts[2]}'"})
        if method == "GET" and len(parts) == 6 and parts[:2] == ["v2", "models"] and parts[5] == "ready":
            m = self.models.get(parts[2])
            return (200, None) if m and parts[4] in m.loaded else (400, {"error": "not ready"})
        if method == "POST" and len(parts) == 5 and parts[:3] == ["v2", "repository", "models"]:
            return self._load(parts[3], body)
        return 404, {"error": "not found"}

    def _load(self, name: str, body: Any) -> tuple[int, Any]:
        m = self.models.get(name)
        if m is None:
            return 400, {"error": f"failed to load '{name}'"}
        config = json.loads(body["parameters"]["config"]) if body and "parameters" in body else m.config
        if "refuse" in self.faults and "specific" in config["version_policy"]:
            return 400, {"error": f"load failed for model '{name}': version 1 is at capacity"}
        self.loads.append(config)
        self.slow()
        if "ignore" in self.faults:
            return 200, None
        policy = config["version_policy"]
        if "specific" in policy:
            wanted = {str(v) for v in policy["specific"]["versions"]} & set(m.versions)
        elif "all" in policy:
            wanted = set(m.versions)
        else:
            n = int(policy["latest"]["num_versions"])
            wanted = set(sorted(m.versions, key=int)[-n:])
        before = set(m.loaded)
        m.loaded, m.config = wanted, config
        if "kept-down" in self.faults:  # once: loading it again brings it back
            self.faults.discard("kept-down")
            kept = sorted(before & wanted, key=int)
            if kept:
                m.loaded.discard(kept[0])
        if "disagree" in self.faults:
            self.disagree = {(name, v) for v in before - wanted}
        return 200, None


class FakeTorchServe(_Base):
    """TorchServe's management API as `retire unload` uses it: describe (`GET /models/<m>/all`,
    `GET /models/<m>`), set-default, unregister (403 for the default version), register from the
    model store (`POST /models?url=<.mar>`). Faults: "refuse" (unregister answers 500)."""

    def __init__(self, models: dict[str, dict[str, str]], default: dict[str, str]) -> None:
        super().__init__()
        self.registered = {m: dict(vs) for m, vs in models.items()}  # model -> version -> .mar
        self.default = dict(default)
        self.store = {url: (m, v) for m, vs in models.items() for v, url in vs.items()}

    def _describe(self, model: str, version: str) -> dict[str, Any]:
        return {
            "modelName": model,
            "modelVersion": version,
            "modelUrl": self.registered[model][version],
            "minWorkers": 1,
            "maxWorkers": 1,
            "workers": [{"id": "9000", "status": "READY"}],
        }

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts[0] != "models":
            return 404, {"code": 404, "type": "ResourceNotFoundException", "message": "not found"}
        if method == "POST" and parts == ["models"]:
            url = query.get("url", "")
            if url not in self.store or self.store[url][0] != query.get("model_name"):
                return 400, {"code": 400, "message": f"Model not found in model store: {url}"}
            model, version = self.store[url]
            if version in self.registered.setdefault(model, {}):
                return 409, {"code": 409, "message": f"Model version {version} is already registered."}
            self.registered[model][version] = url
            return 200, {"status": f'Model "{model}" Version: {version} registered with 1 initial workers'}
        model = parts[1] if len(parts) > 1 else ""
        if model not in self.registered or not self.registered[model]:
            return 404, {
                "code": 404,
                "type": "ModelNotFoundException",
                "message": f"Model not found: {model}",
            }
        if method == "GET" and parts[2:] == ["all"]:
            return 200, [self._describe(model, v) for v in self.registered[model]]
        if method == "GET" and len(parts) == 2:
            return 200, [self._describe(model, self.default[model])]
        if method == "PUT" and len(parts) == 4 and parts[3] == "set-default":
            if parts[2] not in self.registered[model]:
                return 404, {"code": 404, "message": f"Model version {parts[2]} does not exist"}
            self.default[model] = parts[2]
            return 200, {
                "status": f'Default version successfully updated for model "{model}" to "{parts[2]}"'
            }
        if method == "DELETE" and len(parts) == 3:
            version = parts[2]
            if "refuse" in self.faults:
                return 500, {"code": 500, "message": "Internal error while unregistering"}
            if version not in self.registered[model]:
                return 404, {"code": 404, "message": f"Model version {version} does not exist"}
            if self.default[model] == version:
                return 403, {"code": 403, "message": "Cannot remove default version for model " + model}
            del self.registered[model][version]
            return 200, {"status": f'Model "{model}" unregistered'}
        return 405, {"code": 405, "message": "method not allowed"}


class FakeTFServing(_Base):
    """Stands in for TF Serving (no binary runs here): its REST status API, `GET /v1/models/<m>`
    (`model_version_status`: version and state, as get_model_status_impl.cc answers; an unknown
    model is 404 "Could not find any versions of model <m>"), and, as the server does with
    --model_config_file_poll_wait_seconds, a thread that reads the config file every `poll`
    seconds with protobuf's text_format against the ModelServerConfig schema (the descriptor of
    model_server_config.proto that tests/actions/test_tfserving_config.py reads back with) and
    loads, per model, the versions its policy picks among the version directories in its
    base_path (file_system_storage_path_source.cc: `specific` loads those of its list on disk,
    `latest N` the newest N, `all` all). Versions it served and no longer wants become END. A file
    that does not parse is ignored: the server keeps the config it has. Faults:
    - "ignore": a changed file is never applied (every version stays as it was);
    - "kept-down": the next applied change also ends the oldest version it keeps;
    - "unloading": the versions a change drops stay UNLOADING;
    - "hang": every status request answers after `delay` seconds;
    - "hang-after": like "hang", from the first change applied on."""

    def __init__(self, config: Path, poll: float = 0.1) -> None:
        super().__init__()
        self.config = config
        self.poll = poll
        self.states: dict[str, dict[str, str]] = {}  # model -> version -> state
        self.applied: list[str] = []  # the text of every config applied, in order
        self._apply()

    def available(self, model: str) -> set[str]:
        with self.lock:
            return {v for v, s in self.states.get(model, {}).items() if s == "AVAILABLE"}

    def _apply(self) -> None:
        from retire.actions.tfserving_config import loads
        from retire.errors import InventoryError
        from retire.servers.tfserving import version_of
        from retire.sources.disk.server_configs import parse_tfserving_text, tfserving_policy

        try:
            text = self.config.read_text(encoding="utf-8")
            root = parse_tfserving_text(text, self.config.name)
        except (OSError, UnicodeDecodeError, InventoryError):
            return  # the server keeps the config it has
        if self.applied and (text == self.applied[-1] or "ignore" in self.faults):
            return
        first = not self.applied
        self.applied.append(text)
        if not first and "hang-after" in self.faults:
            self.faults.add("hang")
        wanted: dict[str, set[str]] = {}
        for c in root.model_config_list.config:
            base = Path(c.base_path)
            try:
                names = os.listdir(base if base.is_absolute() else self.config.parent / base)
            except OSError:
                names = []
            disk = {n for name in names if (n := version_of(name)) is not None}
            policy = tfserving_policy(c.model_version_policy)
            wanted[c.name] = {str(v) for v in loads(policy, disk) & disk}
        for model in set(wanted) | set(self.states):
            states = self.states.setdefault(model, {})
            keep = wanted.get(model, set())
            dropped = {v for v, s in states.items() if s == "AVAILABLE"} - keep
            for v in keep:
                states[v] = "AVAILABLE"
            for v in dropped:
                states[v] = "UNLOADING" if "unloading" in self.faults else "END"
            if not first and dropped and "kept-down" in self.faults:
                self.faults.discard("kept-down")
                states[min(keep, key=int)] = "END"

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if "hang" in self.faults:
            time.sleep(self.delay)
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method != "GET" or len(parts) != 3 or parts[:2] != ["v1", "models"]:
            return 404, {"error": "Malformed request"}
        states = self.states.get(parts[2])
        if not states:
            return 404, {"error": f"Could not find any versions of model {parts[2]}"}
        return 200, {
            "model_version_status": [
                {"version": v, "state": s, "status": {"error_code": "OK", "error_message": ""}}
                for v, s in sorted(states.items(), key=lambda vs: -int(vs[0]))
            ]
        }

    @contextmanager
    def running(self) -> Iterator[str]:
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(self.poll):
                with self.lock:
                    self._apply()

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            with super().running() as url:
                yield url
        finally:
            stop.set()
            thread.join(timeout=5)


class FakeMLServer(_Base):
    """Stands in for Seldon MLServer (1.7) where a fault must be played: its repository index and
    load call, and the per-version ready endpoint, as `retire unload` uses them (the real MLServer
    is tested in tests/e2e/test_unload_mlserver.py). Like MLServer it reads the repository from
    disk: the index lists every `model-settings.json` under the root (hidden directories not
    entered), each with its model's state (the default's, not its own); `POST
    /v2/repository/models/<m>/load` loads every version of <m> the repository holds now and
    unloads the others; `GET /v2/models/<m>/versions/<v>/ready` answers 200, or 404 "Model <m>
    with version <v> not found". Faults:
    - "refuse": the next load answers 500 and changes nothing (as MLServer does when loading a
      version fails: it stops before unloading any), "refuse-always": every load does;
    - "slow": the next load answers after `delay` seconds (and is done);
    - "kept-down": the next load also unloads the first kept version (it goes down mid-way);
    - "ignore": a load answers 200 and changes nothing;
    - "lie": the ready endpoint says 200 for every version, loaded or not;
    - `trickle` > 0: the answer to the next load comes a byte at a time, that many seconds apart;
    - "proxy-404": the ready endpoint of a version not loaded answers 404 without MLServer's
      "not found" (a proxy's answer: no proof that the version is gone)."""

    def __init__(self, repo: Path) -> None:
        super().__init__()
        self.repo = repo
        self.loads: list[str] = []
        self.loaded: dict[str, set[str]] = {}
        for name, version in self._on_disk():
            self.loaded.setdefault(name, set()).add(version)

    def _on_disk(self) -> list[tuple[str, str]]:
        out = []
        for top, dirs, files in os.walk(self.repo, followlinks=True):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            if "model-settings.json" in files:
                try:
                    doc = json.loads((Path(top) / "model-settings.json").read_text())
                except (OSError, ValueError):
                    continue
                version = (doc.get("parameters") or {}).get("version")
                out.append((doc.get("name") or Path(top).name, version or "None"))
        return out

    def versions(self, model: str) -> set[str]:
        with self.lock:
            return set(self.loaded.get(model, set()))

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if (method, parts) == ("POST", ["v2", "repository", "index"]):
            return 200, [
                {
                    "name": name,
                    "state": "READY" if self.loaded.get(name) else "UNAVAILABLE",
                    "reason": "",
                    **({"version": version} if version != "None" else {}),
                }
                for name, version in self._on_disk()
            ]
        if method == "GET" and len(parts) == 6 and parts[:2] == ["v2", "models"] and parts[5] == "ready":
            if parts[4] in self.loaded.get(parts[2], set()) or "lie" in self.faults:
                return 200, None
            if "proxy-404" in self.faults:
                return 404, {"error": "no route to upstream"}
            return 404, {"error": f"Model {parts[2]} with version {parts[4]} not found"}
        if method == "GET" and len(parts) == 4 and parts[:2] == ["v2", "models"] and parts[3] == "ready":
            return (
                (200, None) if self.loaded.get(parts[2]) else (404, {"error": f"Model {parts[2]} not found"})
            )
        if method == "POST" and len(parts) == 5 and parts[:3] == ["v2", "repository", "models"]:
            return self._load(parts[3]) if parts[4] == "load" else (404, {"error": "not found"})
        return 404, {"error": "not found"}

    def _load(self, name: str) -> tuple[int, Any]:
        self.loads.append(name)
        wanted = {v for m, v in self._on_disk() if m == name}
        if not wanted:
            return 404, {"error": f"Model {name} not found"}
        self.trickled, self.trickle = self.trickle, 0.0  # once: this answer, a byte at a time
        if "refuse" in self.faults or "refuse-always" in self.faults:
            self.faults.discard("refuse")
            return 500, {"error": f"Couldn't load model '{name}': out of memory"}
        self.slow()
        if "ignore" in self.faults:
            return 200, None
        before = self.loaded.get(name, set())
        self.loaded[name] = set(wanted)
        if "kept-down" in self.faults:  # once: loading it again brings it back
            self.faults.discard("kept-down")
            kept = sorted(before & wanted)
            if kept:
                self.loaded[name].discard(kept[0])
        return 200, None

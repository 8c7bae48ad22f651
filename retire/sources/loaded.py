"""Which versions a model server has loaded, asked of the server itself (`--server URL`).

Retiring a *loaded* idle version frees memory; retiring a directory the server never loaded frees
disk only. Only the server knows which is which (its version policy, reloads, failed loads), and
each says it in its own documented status API:

| server     | request                          | loaded when                                       |
|------------|----------------------------------|---------------------------------------------------|
| TF Serving | `GET /v1/models/<name>` (REST)   | `model_version_status[].state == "AVAILABLE"`     |
| Triton     | `POST /v2/repository/index`      | an entry `{name, version, state: "READY"}`        |
| TorchServe | `GET /models/<name>/all` (mgmt)  | a registered version with a worker `"READY"`      |

A model the server answered for but does not list a version of has not loaded it (Triton lists
only versions it loaded or tried to; TF Serving and TorchServe answer "not found" for a model they
do not serve). A model nobody asked about is unknown, never "not loaded". Every failure is a
`ServerError` (exit code 3, as for Prometheus) with a one-line message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from retire.errors import ServerError
from retire.sources.prometheus.client import Connection, redact_url

if TYPE_CHECKING:
    import httpx

# Preset names (and plain server names) -> (the status API to ask, the preset whose version
# spelling the answer is joined with).
SERVERS = {
    "tfserving-patched": ("tfserving", "tfserving-patched"),
    "tfserving": ("tfserving", "tfserving-patched"),
    "triton": ("triton", "triton"),
    "torchserve": ("torchserve", "torchserve"),
}
_API = {
    "tfserving": "TF Serving REST API (port 8501 by default)",
    "triton": "Triton HTTP API (port 8000 by default)",
    "torchserve": "TorchServe management API (port 8081 by default)",
}

Key = tuple[str, str]


@dataclass(frozen=True)
class Loaded:
    """The server's answer: per (model, version) whether it is loaded, and the server's own word."""

    server: str  # "tfserving", "triton" or "torchserve"
    url: str  # without any password
    versions: Mapping[Key, bool] = field(default_factory=lambda: MappingProxyType({}))
    states: Mapping[Key, str] = field(default_factory=lambda: MappingProxyType({}))
    models: frozenset[str] = frozenset()  # models the server answered for

    def loaded(self, model: str, version: str) -> bool | None:
        """True or False for a model the server answered for; None (unknown) otherwise."""
        if model not in self.models:
            return None
        return self.versions.get((model, version), False)


def ask(
    server: str,
    url: str,
    models: Iterable[str] = (),
    *,
    timeout: float = 10.0,
    connection: Connection | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Loaded:
    """Ask the server at `url` which versions of `models` it has loaded (Triton answers for all
    of its models in one request; the others are asked model by model)."""
    import httpx

    from retire.servers import SERVERS as PRESETS

    if server not in SERVERS:
        raise ServerError(f"--server: no status API known for {server!r}; use one of {', '.join(SERVERS)}")
    kind, preset = SERVERS[server]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ServerError(f"--server: {redact_url(url)!r} is not an http(s) URL such as http://host:8000")
    conn = connection or Connection()
    headers = dict(conn.headers)
    if conn.bearer_token:
        headers["Authorization"] = f"Bearer {conn.bearer_token}"
    auth = httpx.BasicAuth(*conn.basic_auth) if conn.basic_auth else None
    client = httpx.Client(
        base_url=url.rstrip("/"),
        headers=headers,
        auth=auth,
        timeout=timeout,
        verify=conn.verify,
        cert=conn.client_cert,
        transport=transport,
        follow_redirects=False,
    )
    canonical = PRESETS[preset].canonical
    asker = _Asker(kind, redact_url(url.rstrip("/")), client, timeout, conn.secrets, canonical)
    with client:
        if kind == "triton":
            return asker.triton(models)
        if kind == "tfserving":
            return asker.per_model(models, asker.tfserving)
        return asker.per_model(models, asker.torchserve)


class _Asker:
    def __init__(
        self,
        kind: str,
        display: str,
        client: httpx.Client,
        timeout: float,
        secrets: tuple[str, ...],
        canonical: Callable[[str], str],
    ) -> None:
        self.canonical = canonical  # the server's version spelling, as the inventory joins it
        self.kind = kind
        self.display = display
        self.client = client
        self.timeout = timeout
        self.secrets = secrets

    # --- transport and JSON, with every failure as one ServerError line ---

    def _scrub(self, text: str) -> str:
        """This connection's secrets, then every secret retire knows (retire.redact: base64 and
        URL-encoded forms, short credentials), out of a one-line message."""
        from retire.redact import scrub

        for secret in self.secrets:
            text = text.replace(secret, "***")
        return " ".join(scrub(text).split())[:200]

    def request(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        import httpx

        where = f"{self.display}{path}"
        try:
            response = self.client.request(method, path, json=body)
        except httpx.TimeoutException:
            raise ServerError(
                f"model server {where} did not answer within {self.timeout:g}s; check --server"
            ) from None
        except httpx.HTTPError as e:
            raise ServerError(
                f"cannot reach model server {where}: {self._scrub(str(e)) or type(e).__name__}; "
                f"check --server (the {_API[self.kind]})"
            ) from None
        try:
            payload = json.loads(response.content) if response.content else None
        except ValueError:
            kind = response.headers.get("content-type", "?").split(";")[0]
            raise ServerError(
                f"model server {where} answered HTTP {response.status_code} with {kind}, not JSON; "
                f"is --server the {_API[self.kind]}?"
            ) from None
        return response.status_code, payload

    def unexpected(self, path: str, what: str, entry: object = None) -> ServerError:
        if entry is not None:
            what = f"{what}: {self._scrub(json.dumps(entry))}"
        return ServerError(
            f"model server {self.display}{path} answered {what}; is --server the {_API[self.kind]}?"
        )

    def http_error(self, path: str, status: int, payload: Any) -> ServerError:
        detail = payload.get("error") or payload.get("message") if isinstance(payload, dict) else None
        said = f": {self._scrub(str(detail))}" if detail else ""
        return self.unexpected(path, f"HTTP {status}{said}")

    # --- the three servers ---

    def triton(self, models: Iterable[str]) -> Loaded:
        path = "/v2/repository/index"
        status, payload = self.request("POST", path, {})
        if status != 200:
            raise self.http_error(path, status, payload)
        if not isinstance(payload, list):
            raise self.unexpected(path, "JSON that is not a list of models")
        versions: dict[Key, bool] = {}
        states: dict[Key, str] = {}
        answered = set(models)  # the index lists every model of the repository, loaded or not
        for entry in payload:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise self.unexpected(path, "an index entry without a name", entry)
            answered.add(entry["name"])
            version, state = entry.get("version"), entry.get("state", "")
            if version is None or version == "":
                continue  # a model with no version loaded (explicit control, never loaded)
            if not isinstance(version, str) or not isinstance(state, str):
                raise self.unexpected(path, "an index entry of unexpected types", entry)
            key = (entry["name"], self.canonical(version))
            states[key] = state
            versions[key] = state == "READY"
        return self._loaded(versions, states, answered)

    def per_model(self, models: Iterable[str], one: Any) -> Loaded:
        versions: dict[Key, bool] = {}
        states: dict[Key, str] = {}
        answered = set()
        for model in dict.fromkeys(models):
            for version, state, loaded in one(model):
                versions[(model, version)] = loaded
                states[(model, version)] = state
            answered.add(model)
        return self._loaded(versions, states, answered)

    def tfserving(self, model: str) -> list[tuple[str, str, bool]]:
        path = f"/v1/models/{quote(model, safe='')}"
        status, payload = self.request("GET", path)
        not_found = f"Could not find any versions of model {model}"  # get_model_status_impl.cc
        if status == 404 and isinstance(payload, dict) and str(payload.get("error", "")).endswith(not_found):
            return []  # the server serves no version of it
        if status != 200:
            raise self.http_error(path, status, payload)
        entries = payload.get("model_version_status") if isinstance(payload, dict) else None
        if not isinstance(entries, list):
            raise self.unexpected(path, "JSON without a model_version_status list")
        out = []
        for entry in entries:
            version = entry.get("version") if isinstance(entry, dict) else None
            state = entry.get("state") if isinstance(entry, dict) else None
            if isinstance(version, bool) or not isinstance(version, (int, str)) or not isinstance(state, str):
                raise self.unexpected(path, "a version status without version and state", entry)
            out.append((self.canonical(str(version)), state, state == "AVAILABLE"))
        return out

    def torchserve(self, model: str) -> list[tuple[str, str, bool]]:
        path = f"/models/{quote(model, safe='')}/all"
        status, payload = self.request("GET", path)
        if status == 404 and isinstance(payload, dict) and payload.get("type") == "ModelNotFoundException":
            return []  # not registered
        if status != 200:
            raise self.http_error(path, status, payload)
        if not isinstance(payload, list):
            raise self.unexpected(path, "JSON that is not a list of model versions")
        out = []
        for entry in payload:
            ok = isinstance(entry, dict) and isinstance(entry.get("modelVersion"), str)
            workers = entry.get("workers") if isinstance(entry, dict) else None
            if not ok or not isinstance(workers, list) or not all(isinstance(w, dict) for w in workers):
                raise self.unexpected(path, "a model version without modelVersion and workers", entry)
            if entry.get("modelName", model) != model:
                raise self.unexpected(path, f"model {entry.get('modelName')!r} when asked for {model!r}")
            statuses = [str(w.get("status", "?")) for w in workers]
            ready = "READY" in statuses
            state = "READY" if ready else (",".join(sorted(set(statuses))) or "NO_WORKERS")
            out.append((self.canonical(entry["modelVersion"]), state, ready))
        return out

    def _loaded(self, versions: dict[Key, bool], states: dict[Key, str], models: set[str]) -> Loaded:
        return Loaded(
            self.kind, self.display, MappingProxyType(versions), MappingProxyType(states), frozenset(models)
        )

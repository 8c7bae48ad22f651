"""Which versions a model server has loaded, asked of the server itself (`--server URL`).

Retiring a *loaded* idle version frees memory; retiring a directory the server never loaded frees
disk only. Only the server knows which is which (its version policy, reloads, failed loads), and
each says it in its own documented status API, read by its module in retire/servers
(`Server.ask_loaded`); this module holds what they share: the connection, and every failure as
one line.

A model the server answered for but does not list a version of has not loaded it (Triton lists
only versions it loaded or tried to; TF Serving and TorchServe answer "not found" for a model they
do not serve). A model nobody asked about is unknown, never "not loaded". Every failure is a
`ServerError` (exit code 3, as for Prometheus) with a one-line message.

Every request is bounded as a whole (connect, status line, headers, body) by `--timeout` and the
run's `--deadline`, whichever ends first, as Prometheus's are (retire.sources.prometheus.client
says how and why connections are not kept alive).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from retire import redact
from retire.deadline import NO_DEADLINE, Deadline, Watchdog
from retire.errors import ServerError
from retire.sources.prometheus.connection import Connection, redact_url

if TYPE_CHECKING:
    import httpx

Key = tuple[str, str]
Status = tuple[str, str, bool]  # (version, the server's word for its state, loaded)


class StatusApi(Protocol):
    """What a conversation needs of the server it talks to (a `retire.servers.Server`). A
    protocol, so this source does not import the servers above it (tests/test_layers.py)."""

    @property
    def name(self) -> str: ...
    @property
    def status_api(self) -> str: ...
    @property
    def canonical(self) -> Callable[[str], str]: ...
    @property
    def ask_loaded(self) -> Callable[[Asker, Iterable[str]], Loaded]: ...


@dataclass(frozen=True)
class Loaded:
    """The server's answer: per (model, version) whether it is loaded, and the server's own word."""

    server: str  # the server's short name (retire.servers: Server.name)
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
    srv: StatusApi,
    url: str,
    models: Iterable[str] = (),
    *,
    timeout: float = 10.0,
    connection: Connection | None = None,
    transport: httpx.BaseTransport | None = None,
    deadline: Deadline = NO_DEADLINE,
) -> Loaded:
    """Ask `srv` (`retire.servers.status_server` finds it by name) at `url` which versions of
    `models` it has loaded (Triton answers for all of its models in one request; the others are
    asked model by model)."""
    with conversation(
        srv, url, timeout=timeout, connection=connection, transport=transport, deadline=deadline
    ) as asker:
        return srv.ask_loaded(asker, models)


@contextlib.contextmanager
def conversation(
    srv: StatusApi,
    url: str,
    *,
    timeout: float = 10.0,
    connection: Connection | None = None,
    transport: httpx.BaseTransport | None = None,
    deadline: Deadline = NO_DEADLINE,
) -> Iterator[Asker]:
    """A conversation with the model server at `url` (`ask`, and `retire unload`'s changes).
    Without `connection`, nothing but what the URL itself holds is sent: no Prometheus header,
    token or password ever reaches the model server."""
    import httpx

    redact.register_url(url)  # httpx sends its user info as Basic credentials, which servers echo
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
        limits=httpx.Limits(max_keepalive_connections=0),  # see the module's docstring
    )
    with client:
        yield Asker(srv, redact_url(url.rstrip("/")), client, timeout, conn.secrets, deadline)


class Refused(ServerError):
    """The model server refused a change (`retire unload`): what was asked and answered is kept."""

    def __init__(self, message: str, exchange: dict[str, Any]) -> None:
        super().__init__(message)
        self.exchange = exchange


class Asker:
    """One status API conversation: requests, and every failure as one ServerError line. Each
    server module reads its own answers with it (Server.ask_loaded)."""

    def __init__(
        self,
        server: StatusApi,
        display: str,
        client: httpx.Client,
        timeout: float,
        secrets: tuple[str, ...],
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        self.server = server
        self.canonical = server.canonical  # the server's version spelling, as the inventory joins it
        self.api = server.status_api
        self.display = display
        self.client = client
        self.timeout = timeout
        self.secrets = secrets
        self.deadline = deadline

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
        limit, by_run = self.deadline.limit(self.timeout)
        if by_run:
            late = ServerError(
                f"model server {where} did not answer before the run's --deadline "
                f"({self.deadline.shown}) passed; raise --deadline, or check --server"
            )
        else:
            late = ServerError(
                f"model server {where} did not answer within {self.timeout:g}s; check --server"
            )
        if limit <= 0:
            raise late  # the run's deadline passed: no new request
        dog = Watchdog(limit)
        try:
            with dog:  # the whole request, whatever the server trickles (retire.deadline)
                response = self.client.request(
                    method, path, json=body, timeout=limit, extensions={"trace": dog.trace}
                )
        except httpx.HTTPError as e:
            if dog.fired or isinstance(e, httpx.TimeoutException):
                raise late from None
            raise ServerError(
                f"cannot reach model server {where}: {self._scrub(str(e)) or type(e).__name__}; "
                f"check --server (the {self.api})"
            ) from None
        if dog.fired:  # the answer may have been cut short: never read it
            raise late
        try:
            payload = json.loads(response.content) if response.content else None
        except ValueError:
            kind = response.headers.get("content-type", "?").split(";")[0]
            raise ServerError(
                f"model server {where} answered HTTP {response.status_code} with {kind}, not JSON; "
                f"is --server the {self.api}?"
            ) from None
        return response.status_code, payload

    def scrubbed(self, payload: object) -> object:
        """An answer as the journal keeps it: every secret retire knows out (a server may echo the
        request's credentials), and at most a few kilobytes."""
        from retire.redact import scrub

        text = json.dumps(payload)
        for secret in self.secrets:
            text = text.replace(secret, "***")
        text = scrub(text)
        if len(text) > 4000:
            return text[:4000] + "..."
        try:
            return json.loads(text)
        except ValueError:
            return text  # scrubbing cut into an escape: keep the text

    def refused(self, path: str, status: int, payload: Any, exchange: dict[str, Any]) -> Refused:
        """The server answered a change with an error: one line, and the exchange for the journal."""
        return Refused(self.http_error(path, status, payload).message, exchange)

    def unexpected(self, path: str, what: str, entry: object = None) -> ServerError:
        if entry is not None:
            what = f"{what}: {self._scrub(json.dumps(entry))}"
        return ServerError(f"model server {self.display}{path} answered {what}; is --server the {self.api}?")

    def http_error(self, path: str, status: int, payload: Any) -> ServerError:
        detail = payload.get("error") or payload.get("message") if isinstance(payload, dict) else None
        said = f": {self._scrub(str(detail))}" if detail else ""
        return self.unexpected(path, f"HTTP {status}{said}")

    # --- what every server module reads its answers with ---

    def per_model(self, models: Iterable[str], one: Callable[[str], list[Status]]) -> Loaded:
        """Ask `one(model)` for each model in turn (servers whose API answers per model)."""
        versions: dict[Key, bool] = {}
        states: dict[Key, str] = {}
        answered = set()
        for model in dict.fromkeys(models):
            for version, state, loaded in one(model):
                versions[(model, version)] = loaded
                states[(model, version)] = state
            answered.add(model)
        return self.loaded(versions, states, answered)

    def loaded(self, versions: dict[Key, bool], states: dict[Key, str], models: set[str]) -> Loaded:
        return Loaded(
            self.server.name,
            self.display,
            MappingProxyType(versions),
            MappingProxyType(states),
            frozenset(models),
        )

"""Seldon MLServer (PyPI `mlserver`, used by Seldon Core and KServe; 1.7.1 run by the tests).

Versions are declared in each model's `model-settings.json` (`name`, `implementation`,
`parameters.version`), found anywhere under the repository root (retire.sources.disk.model_settings
says how, and what MLServer would not load). Versions are strings, joined as written.

The metrics port (8082 by default, `/metrics`) exports, labelled `model` and `version` as the
request named them, `model_infer_request_success_total`, `model_infer_request_failure_total` and
the summary `model_infer_request_duration` (handlers/dataplane.py). The preset reads the summary's
`_count`: MLServer times every request, failed or not, so it counts every call; the success
counter alone would make a version whose every call fails (a client still calling a broken model)
look idle. A request that names no version is counted under `version="None"` (gRPC: an empty
version, which Prometheus stores as no label), whichever version served it. The series are created
on a version's first request, not at load.

`--server` asks the repository index (`POST /v2/repository/index`), which lists every
model-settings.json it finds with a state. That state is the state of the model's default version,
not of the entry's own (MLServer 1.7 asks its registry for the model without the version): a
version whose load failed is listed READY beside a loaded one. So each version the index calls
READY is asked again, `GET /v2/models/<name>/versions/<version>/ready` (200: loaded and ready;
404: not loaded).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from retire.servers import Server

if TYPE_CHECKING:
    from pathlib import Path

    from retire.sources.disk.inventory import Inventory
    from retire.sources.loaded import Asker, Key, Loaded

UNVERSIONED = "None"  # str(None): the version label of a request that names no version


def version_of(name: str) -> int | None:
    return None  # versions are read from each model-settings.json, not from directory names


def store(root: Path) -> Inventory:
    """The model repository: every model-settings.json under it."""
    from retire.sources.disk.model_settings import scan_model_settings

    return scan_model_settings(root)


def ask_loaded(asker: Asker, models: Iterable[str]) -> Loaded:
    """The repository index, then each version it calls READY asked on its own."""
    path = "/v2/repository/index"
    status, payload = asker.request("POST", path, {})
    if status != 200:
        raise asker.http_error(path, status, payload)
    if not isinstance(payload, list):
        raise asker.unexpected(path, "JSON that is not a list of models")
    versions: dict[Key, bool] = {}
    states: dict[Key, str] = {}
    answered = set(models)  # the index lists every model-settings.json it finds, loaded or not
    for entry in payload:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise asker.unexpected(path, "an index entry without a name", entry)
        version, state = entry.get("version"), entry.get("state")
        if (version is not None and not isinstance(version, str)) or not isinstance(state, str):
            raise asker.unexpected(path, "an index entry of unexpected types", entry)
        name = entry["name"]
        answered.add(name)
        key = (name, asker.canonical(version or UNVERSIONED))
        if state == "READY":
            state = _ready(asker, name, version or None)
        states[key] = state
        versions[key] = state == "READY"
    return asker.loaded(versions, states, answered)


def _ready(asker: Asker, model: str, version: str | None) -> str:
    """READY, or NOT_LOADED when this version itself is not (the index said READY for its model)."""
    path = f"/v2/models/{quote(model, safe='')}"
    if version is not None:
        path += f"/versions/{quote(version, safe='')}"
    path += "/ready"
    status, payload = asker.request("GET", path)
    if status == 200:
        return "READY"
    if status == 404 and isinstance(payload, dict) and "not found" in str(payload.get("error", "")):
        return "NOT_LOADED"
    if status == 400:  # registered, not ready (loading)
        return "NOT_READY"
    raise asker.http_error(path, status, payload)


SERVER = Server(
    preset="mlserver",
    name="mlserver",
    metric="model_infer_request_duration_count",
    model_label="model",
    version_label="version",
    version_of=version_of,
    not_a_version="not a model-settings.json MLServer loads",
    status_api="MLServer HTTP API (port 8080 by default)",
    ask_loaded=ask_loaded,
    store=store,
    unattributed=(UNVERSIONED,),
    canonical=str,  # MLServer labels a call with the version exactly as the request wrote it
)

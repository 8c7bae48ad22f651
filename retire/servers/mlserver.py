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

Unloading (`retire unload`): MLServer has no per-version unload call. `POST
/v2/repository/models/<name>/load` loads every version the repository holds now and unloads the
versions it no longer holds (handlers/model_repository.py, "Remove stale models"); the versions it
keeps are loaded again beside their old instance, which goes once the new one is ready, so they
keep serving. So a version is unloaded by moving its folder out of the repository first
(retire/actions/unload_folders.py) and loaded back by moving it back. Once its folder is gone the
index no longer lists it: whether it is still loaded is asked of its own ready endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from retire.servers import Exchange, Server, Unloader

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


# --- unloading (a version's folder leaves the repository, then the model is loaded again) ---


def setup(asker: Asker, model: str) -> dict[str, Any]:
    """The versions the repository index lists for the model now (what a load would load);
    journaled as what the model had. retire adds where each moved folder was."""
    index = ask_loaded(asker, [model])
    return {"listed": sorted(v for (m, v) in index.versions if m == model)}


def _load(asker: Asker, model: str) -> list[Exchange]:
    """`POST /v2/repository/models/<m>/load`: the versions the repository holds, no others."""
    path = f"/v2/repository/models/{quote(model, safe='')}/load"
    status, payload = asker.request("POST", path, {})
    exchange: Exchange = {"request": f"POST {path}", "status": status, "answer": asker.scrubbed(payload)}
    if status != 200:
        raise asker.refused(path, status, payload, exchange)
    return [exchange]


def unload(
    asker: Asker, model: str, keep: tuple[str, ...], drop: tuple[str, ...], had: dict[str, Any]
) -> list[Exchange]:
    """The dropped versions' folders have left the repository: loading the model unloads them."""
    return _load(asker, model)


def reload(
    asker: Asker,
    model: str,
    versions: tuple[str, ...],
    had: dict[str, Any],
    loaded_now: tuple[str, ...],
    whole: bool,
) -> list[Exchange]:
    """Their folders are back in the repository: loading the model loads them. Nothing of the
    journal is sent; the server reads only its own repository."""
    return _load(asker, model)


def ask_version(asker: Asker, model: str, version: str) -> bool | None:
    """`GET /v2/models/<m>/versions/<v>/ready`: loaded, not (404), or loading (None)."""
    state = _ready(asker, model, None if version == UNVERSIONED else version)
    return True if state == "READY" else False if state == "NOT_LOADED" else None


def state(asker: Asker, model: str) -> dict[str, bool | None]:
    """Each version the index lists, asked on its own (the index's state is the model's default's)."""
    path = "/v2/repository/index"
    status, payload = asker.request("POST", path, {})
    if status != 200:
        raise asker.http_error(path, status, payload)
    if not isinstance(payload, list):
        raise asker.unexpected(path, "JSON that is not a list of models")
    out: dict[str, bool | None] = {}
    for entry in payload:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise asker.unexpected(path, "an index entry without a name", entry)
        version = entry.get("version")
        if version is not None and not isinstance(version, str):
            raise asker.unexpected(path, "an index entry of unexpected types", entry)
        if entry["name"] == model:
            key = asker.canonical(version or UNVERSIONED)
            out[key] = ask_version(asker, model, key)
    return out


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
    unloader=Unloader(
        api="MLServer model repository API: folders moved out of the repository, then the model loaded",
        setup=setup,
        unload=unload,
        reload=reload,
        state=state,
        moves_folders=True,
        ask_version=ask_version,
    ),
)

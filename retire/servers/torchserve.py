"""TorchServe: a model store of `.mar` archives, each naming its model and version in
`MAR-INF/MANIFEST.json`. A request that names no version is counted under
`model_version="default"`, which may be any version of the model. The management API says which
registered versions have a READY worker."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from retire.errors import ServerError
from retire.servers import Exchange, Server, Unloader

if TYPE_CHECKING:
    from retire.sources.disk.inventory import Inventory
    from retire.sources.loaded import Asker, Loaded, Status


def version_of(name: str) -> int | None:
    return None  # versions are read from each archive's manifest, not from directory names


def store(root: Path) -> Inventory:
    """The model store: one `.mar` archive per model version."""
    from retire.sources.disk.inventory import scan_model_store

    return scan_model_store(root)


def ask_loaded(asker: Asker, models: Iterable[str]) -> Loaded:
    """`GET /models/<name>/all` per model (management API): loaded when a worker is READY."""
    return asker.per_model(models, lambda model: _status(asker, model))


def _status(asker: Asker, model: str) -> list[Status]:
    path = f"/models/{quote(model, safe='')}/all"
    status, payload = asker.request("GET", path)
    if status == 404 and isinstance(payload, dict) and payload.get("type") == "ModelNotFoundException":
        return []  # not registered
    if status != 200:
        raise asker.http_error(path, status, payload)
    if not isinstance(payload, list):
        raise asker.unexpected(path, "JSON that is not a list of model versions")
    out = []
    for entry in payload:
        ok = isinstance(entry, dict) and isinstance(entry.get("modelVersion"), str)
        workers = entry.get("workers") if isinstance(entry, dict) else None
        if not ok or not isinstance(workers, list) or not all(isinstance(w, dict) for w in workers):
            raise asker.unexpected(path, "a model version without modelVersion and workers", entry)
        if entry.get("modelName", model) != model:
            raise asker.unexpected(path, f"model {entry.get('modelName')!r} when asked for {model!r}")
        statuses = [str(w.get("status", "?")) for w in workers]
        ready = "READY" in statuses
        state = "READY" if ready else (",".join(sorted(set(statuses))) or "NO_WORKERS")
        out.append((asker.canonical(entry["modelVersion"]), state, ready))
    return out


# --- unloading (management API; README "Unload") ---


def _q(text: str) -> str:
    return quote(text, safe="")


def _call(asker: Asker, method: str, path: str, what: str) -> Exchange:
    status, payload = asker.request(method, path)
    exchange: Exchange = {"request": f"{method} {path}", "what": what, "status": status}
    exchange["answer"] = asker.scrubbed(payload)
    if status != 200:
        raise asker.refused(path, status, payload, exchange)
    return exchange


def setup(asker: Asker, model: str) -> dict[str, Any]:
    """Each registered version's archive and workers (`GET /models/<m>/all`), and which one is
    the default (`GET /models/<m>`): what registering them again needs."""
    path = f"/models/{_q(model)}/all"
    status, payload = asker.request("GET", path)
    if status != 200:
        raise asker.http_error(path, status, payload)
    if not isinstance(payload, list):
        raise asker.unexpected(path, "JSON that is not a list of model versions")
    versions: dict[str, dict[str, Any]] = {}
    for entry in payload:
        if not isinstance(entry, dict) or not isinstance(entry.get("modelVersion"), str):
            raise asker.unexpected(path, "a model version without modelVersion", entry)
        if not isinstance(entry.get("modelUrl"), str):
            raise asker.unexpected(path, "a model version without modelUrl (its .mar)", entry)
        workers = entry.get("minWorkers")
        versions[entry["modelVersion"]] = {
            "url": entry["modelUrl"],
            "initial_workers": workers if isinstance(workers, int) and workers > 0 else 1,
        }
    path = f"/models/{_q(model)}"
    status, payload = asker.request("GET", path)
    if status != 200:
        raise asker.http_error(path, status, payload)
    first = payload[0] if isinstance(payload, list) and payload else None
    default = first.get("modelVersion") if isinstance(first, dict) else None
    if not isinstance(default, str):
        raise asker.unexpected(path, "no default version")
    return {"versions": versions, "default": default}


# An archive in the model store, by name only: the journal is untrusted, and a URL would make the
# server fetch and run whatever it points at.
_MAR = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*\.mar")


def _natural(text: str) -> tuple[tuple[int, object], ...]:
    """Version strings in natural order ("10.0" after "2.0"), as the inventory orders them."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", text) if p)


def unload(
    asker: Asker, model: str, keep: tuple[str, ...], drop: tuple[str, ...], had: dict[str, Any]
) -> list[Exchange]:
    """`DELETE /models/<m>/<v>` per version; the default version cannot be deleted (403), so the
    newest kept version is made the default first."""
    out = []
    if had["default"] in drop:
        newest = max(keep, key=_natural)
        path = f"/models/{_q(model)}/{_q(newest)}/set-default"
        out.append(_call(asker, "PUT", path, f"make {newest} the default"))
    for version in drop:
        out.append(_call(asker, "DELETE", f"/models/{_q(model)}/{_q(version)}", f"unregister {version}"))
    return out


def reload(
    asker: Asker,
    model: str,
    versions: tuple[str, ...],
    had: dict[str, Any],
    loaded_now: tuple[str, ...],
    whole: bool,
) -> list[Exchange]:
    """Register each version again from the model store (`POST /models?url=<its .mar>`, waiting
    for its workers), then make the default what it was. Of what the journal says only the archive
    names (plain `.mar` names in the model store, and only the one a fresh scan of the store says
    is that model and version: `had["on_disk"]`) and worker counts are used."""
    out = []
    for version in versions:
        known = had.get("versions", {}).get(version)
        url = known.get("url") if isinstance(known, dict) else None
        workers = known.get("initial_workers") if isinstance(known, dict) else None
        if not isinstance(url, str) or not _MAR.fullmatch(url) or not isinstance(workers, int):
            raise ServerError(
                f"the journal names no archive in the model store for {model} {version} (a .mar file "
                "name); register it by hand"
            )
        on_disk = had.get("on_disk", {}).get(version)
        if url != on_disk:  # whose manifest names this model and version, in a fresh scan
            held = f"the model store holds {on_disk}" if on_disk else "the model store holds none"
            raise ServerError(
                f"the journal says {model} {version} was registered from {url}, but {held} for it "
                "(by its manifest); register it by hand"
            )
        query = urlencode(
            {
                "url": url,
                "model_name": model,
                "initial_workers": max(1, min(workers, 64)),
                "synchronous": "true",
            }
        )
        out.append(_call(asker, "POST", f"/models?{query}", f"register {version} from {url}"))
    default = had.get("default")
    if not isinstance(default, str):
        raise ServerError(f"the journal names no default version of {model}; set it by hand")
    if whole or default in versions:  # whole: the default it had, whatever happened since
        path = f"/models/{_q(model)}/{_q(default)}/set-default"
        out.append(_call(asker, "PUT", path, f"make {default} the default again"))
    return out


def state(asker: Asker, model: str) -> dict[str, bool | None]:
    """`GET /models/<m>/all`: a version is loaded when a worker is READY."""
    answer = ask_loaded(asker, [model])
    return {v: loaded for (m, v), loaded in answer.versions.items() if m == model}


SERVER = Server(
    preset="torchserve",
    name="torchserve",
    metric="ts_inference_requests_total",
    model_label="model_name",
    version_label="model_version",
    version_of=version_of,
    not_a_version="not a .mar model archive",
    status_api="TorchServe management API (port 8081 by default)",
    ask_loaded=ask_loaded,
    store=store,
    unattributed=("default",),
    unloader=Unloader(
        api="TorchServe management API",
        setup=setup,
        unload=unload,
        reload=reload,
        state=state,
        not_durable=(
            "TorchServe registers at start what its --models names (with --models all, every "
            "archive in the store), so a replica started later may serve them again; move their "
            "archives out of the store with `retire offload` to make it last"
        ),
    ),
)

"""TorchServe: a model store of `.mar` archives, each naming its model and version in
`MAR-INF/MANIFEST.json`. A request that names no version is counted under
`model_version="default"`, which may be any version of the model. The management API says which
registered versions have a READY worker."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from retire.servers import Server

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
)

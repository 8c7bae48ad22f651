"""NVIDIA Triton Inference Server.

Triton lists a model's subdirectories, ignores any name longer than one character that starts
with `0` ("ignore version directory '03' which contains leading zeros"), parses the rest with
`std::stoll`, and then loads version N from the directory named exactly `N`. So only canonical
decimal names are served: `03/`, `+3/` or `3abc/` never are, and reading them as version 3 would
list a version nobody serves and move "newest" protection off the real newest. Each model's
`config.pbtxt` holds its `version_policy`. The counter `nv_inference_request_success` exists from
load (at 0) until unload. The repository index lists every model and the versions it loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from retire.servers import Exchange, Server, Unloader

if TYPE_CHECKING:
    from pathlib import Path

    from retire.sources.disk.server_configs import VersionPolicy
    from retire.sources.loaded import Asker, Key, Loaded

_CANONICAL = re.compile(r"0|[1-9][0-9]*")
_SKIPPED = {"warmup", "initial_state", "configs"}  # Triton's own folders inside a model


def version_of(name: str) -> int | None:
    if name in _SKIPPED or not _CANONICAL.fullmatch(name):
        return None
    number = int(name)
    return number if number < 2**63 else None


def label_is_version(label: str) -> bool:
    return version_of(label) is not None


def read_policy(path: Path) -> VersionPolicy:
    """A model's config.pbtxt version policy (the reader is imported only when one is read)."""
    from retire.sources.disk.server_configs import read_triton_policy

    return read_triton_policy(path)


def ask_loaded(asker: Asker, models: Iterable[str]) -> Loaded:
    """`POST /v2/repository/index`: one answer for every model of the repository, loaded or not;
    a version is loaded when its entry is READY."""
    path = "/v2/repository/index"
    status, payload = asker.request("POST", path, {})
    if status != 200:
        raise asker.http_error(path, status, payload)
    if not isinstance(payload, list):
        raise asker.unexpected(path, "JSON that is not a list of models")
    versions: dict[Key, bool] = {}
    states: dict[Key, str] = {}
    answered = set(models)  # the index lists every model of the repository, loaded or not
    for entry in payload:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise asker.unexpected(path, "an index entry without a name", entry)
        answered.add(entry["name"])
        version, state = entry.get("version"), entry.get("state", "")
        if version is None or version == "":
            continue  # a model with no version loaded (explicit control, never loaded)
        if not isinstance(version, str) or not isinstance(state, str):
            raise asker.unexpected(path, "an index entry of unexpected types", entry)
        key = (entry["name"], asker.canonical(version))
        states[key] = state
        versions[key] = state == "READY"
    return asker.loaded(versions, states, answered)


# --- unloading (explicit model control; README "Unload") ---


def _model_path(model: str) -> str:
    return quote(model, safe="")


def setup(asker: Asker, model: str) -> dict[str, Any]:
    """`GET /v2/models/<m>/config`: the config the server runs the model with. Every change starts
    from it (a minimal hand-written config makes Triton reload every version) and the undo loads
    it back."""
    path = f"/v2/models/{_model_path(model)}/config"
    status, payload = asker.request("GET", path)
    if status != 200:
        raise asker.http_error(path, status, payload)
    if not isinstance(payload, dict) or not isinstance(payload.get("version_policy"), dict):
        raise asker.unexpected(path, "a config without a version_policy object")
    return {"config": payload}


def _load(asker: Asker, model: str, config: dict[str, Any]) -> Exchange:
    """`POST /v2/repository/models/<m>/load` with the config as a string parameter: held in the
    server's memory only (config.pbtxt is untouched; a plain load goes back to it)."""
    path = f"/v2/repository/models/{_model_path(model)}/load"
    body = {"parameters": {"config": json.dumps(config, sort_keys=True)}}
    status, payload = asker.request("POST", path, body)
    exchange: Exchange = {
        "request": f"POST {path}",
        "version_policy": config.get("version_policy"),
        "status": status,
        "answer": asker.scrubbed(payload),
    }
    if status != 200:
        raise asker.refused(path, status, payload, exchange)
    return exchange


def _specific(had: dict[str, Any], versions: Iterable[str]) -> dict[str, Any]:
    """The config it had, with ONLY its version policy changed to exactly `versions`."""
    config = dict(had["config"])
    config["version_policy"] = {"specific": {"versions": sorted(int(v) for v in set(versions))}}
    return config


def unload(
    asker: Asker, model: str, keep: tuple[str, ...], drop: tuple[str, ...], had: dict[str, Any]
) -> list[Exchange]:
    """Load the model again with `specific` = the kept versions: Triton unloads the others and
    leaves the kept ones running (their processes and counters)."""
    return [_load(asker, model, _specific(had, keep))]


def reload(
    asker: Asker,
    model: str,
    versions: tuple[str, ...],
    had: dict[str, Any],
    loaded_now: tuple[str, ...],
    whole: bool,
) -> list[Exchange]:
    """Load `versions` back. A reload only ever adds versions: `whole`, the model gets the version
    policy it had (the journal's, or the setup read before a failed change) only where that policy,
    read against the versions on disk now, loads every version loaded now and every one asked
    for; otherwise (versions added or loaded since, a policy edited in the untrusted journal)
    `specific` = what is loaded now plus `versions`, and the model's own policy returns at its
    next plain load (config.pbtxt). The rest of the config is the one the server runs now."""
    config = dict(setup(asker, model)["config"])
    wanted = {*loaded_now, *versions}
    policy = had.get("config", {}).get("version_policy") if isinstance(had.get("config"), dict) else None
    loads = _would_load(policy, had.get("on_disk", {}))
    if whole and loads is not None and wanted <= loads:
        config["version_policy"] = policy
        return [_load(asker, model, config)]
    return [_load(asker, model, _specific({"config": config}, wanted))]


def _would_load(policy: object, on_disk: dict[str, str]) -> set[str] | None:
    """The versions a version policy loads from those on disk (None: not a policy read here)."""
    numbers = sorted(n for v in on_disk if (n := version_of(v)) is not None)
    if not isinstance(policy, dict) or len(policy) != 1:
        return None
    kind, arg = next(iter(policy.items()))
    if not isinstance(arg, dict):
        return None
    if kind == "all" and not arg:
        return {str(n) for n in numbers}
    if kind == "latest" and set(arg) <= {"num_versions"}:
        n = _whole(arg.get("num_versions", 1))
        return {str(v) for v in numbers[-n:]} if n is not None and n > 0 else None
    if kind == "specific" and set(arg) <= {"versions"} and isinstance(arg.get("versions", []), list):
        listed = [_whole(v) for v in arg.get("versions", [])]
        return None if any(v is None for v in listed) else {str(v) for v in listed}
    return None


def _whole(value: object) -> int | None:
    """An int64 as Triton's JSON gives it (a number, or a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isascii() and value.isdigit() else None


def state(asker: Asker, model: str) -> dict[str, bool | None]:
    """The repository index, then `GET /v2/models/<m>/versions/<v>/ready` for each version it
    lists: loaded where both say so, not where neither does; a version still UNLOADING or LOADING
    (the load answers before the unloaded versions' processes have ended) is neither yet."""
    index = ask_loaded(asker, [model])
    out: dict[str, bool | None] = {}
    for (name, version), listed in sorted(index.versions.items()):
        if name != model:
            continue
        if version_of(version) is None:
            what = f"a version {version!r} of {model} that is no Triton version (a number)"
            raise asker.unexpected("/v2/repository/index", what)
        if index.states.get((name, version)) in _SETTLING:
            out[version] = None  # its memory is not given back (or taken) yet
            continue
        path = f"/v2/models/{_model_path(model)}/versions/{quote(version, safe='')}/ready"
        status, _ = asker.request("GET", path)
        ready = status == 200
        out[version] = ready if ready == listed else None
    return out


_SETTLING = ("UNLOADING", "LOADING")


SERVER = Server(
    preset="triton",
    name="triton",
    metric="nv_inference_request_success",
    failure_metric="nv_inference_request_failure",  # failed calls are counted apart
    model_label="model",
    version_label="version",
    version_of=version_of,
    not_a_version="not a version Triton loads (it reads version N only from a directory named exactly N, "
    "without leading zeros)",
    status_api="Triton HTTP API (port 8000 by default)",
    ask_loaded=ask_loaded,
    policy_file="config.pbtxt",
    read_policy=read_policy,
    canonical=str,  # Triton labels a version with its directory's exact name
    label_is_version=label_is_version,
    unloader=Unloader(
        api="Triton model repository API (explicit model control)",
        setup=setup,
        unload=unload,
        reload=reload,
        state=state,
        durable_policy=True,
    ),
)

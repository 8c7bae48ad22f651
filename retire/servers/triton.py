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

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from retire.servers import Server

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
)

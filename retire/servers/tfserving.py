"""TensorFlow Serving with the patched per-version call counter of the original write-up.

TF Serving reads a version directory's name with `safe_strto64` (surrounding white space,
digits, int64 range) and serves non-negative numbers: `00123/` is version 123. The counter is
created on a version's first call, so "no series" means "never called in the window" only where
the query reaches that server (README "How verdicts are made"). Its --model_config_file lists
models, base paths and version policies; its REST API says which versions are AVAILABLE.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import quote

from retire.servers import ConfigUnloader, Server

if TYPE_CHECKING:
    from pathlib import Path

    from retire.sources.disk.server_configs import ModelEntry
    from retire.sources.loaded import Asker, Loaded, Status

INT64_MAX = 2**63 - 1
_SPACES = " \t\n\v\f\r"


def version_of(name: str) -> int | None:
    text = name.strip(_SPACES)
    if not text.isascii() or not text.isdigit():
        return None  # also refuses "-1": negative versions are not served
    number = int(text)
    return number if number <= INT64_MAX else None


def canonical(label: str) -> str:
    number = version_of(label)
    return str(number) if number is not None else label


def label_is_version(label: str) -> bool:
    return version_of(label) is not None


def read_model_config(path: Path) -> list[ModelEntry]:
    """TF Serving's --model_config_file (the reader is imported only when one is read: start-up)."""
    from retire.sources.disk.server_configs import read_tfserving_config

    return read_tfserving_config(path)


def ask_loaded(asker: Asker, models: Iterable[str]) -> Loaded:
    """`GET /v1/models/<name>` per model: a version is loaded when its state is AVAILABLE."""
    return asker.per_model(models, lambda model: _status(asker, model))


def _status(asker: Asker, model: str) -> list[Status]:
    path = f"/v1/models/{quote(model, safe='')}"
    status, payload = asker.request("GET", path)
    not_found = f"Could not find any versions of model {model}"  # get_model_status_impl.cc
    if status == 404 and isinstance(payload, dict) and str(payload.get("error", "")).endswith(not_found):
        return []  # the server serves no version of it
    if status != 200:
        raise asker.http_error(path, status, payload)
    entries = payload.get("model_version_status") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        raise asker.unexpected(path, "JSON without a model_version_status list")
    out = []
    for entry in entries:
        version = entry.get("version") if isinstance(entry, dict) else None
        state = entry.get("state") if isinstance(entry, dict) else None
        if isinstance(version, bool) or not isinstance(version, (int, str)) or not isinstance(state, str):
            raise asker.unexpected(path, "a version status without version and state", entry)
        out.append((asker.canonical(str(version)), state, state == "AVAILABLE"))
    return out


# TF Serving's ManagerState words (servable_state.h): AVAILABLE serves; END is unloaded (or
# failed to load); START, LOADING and UNLOADING are on the way, and confirm nothing yet.
_SETTLED = {"AVAILABLE": True, "END": False}


def state(asker: Asker, model: str) -> dict[str, bool | None]:
    """`GET /v1/models/<name>`: per version listed, AVAILABLE (True), END (False) or on its way
    (None); a version the server no longer lists is not loaded (`retire unload`)."""
    out: dict[str, bool | None] = {}
    for version, word, _ in _status(asker, model):
        if version_of(version) is None:
            what = f"a version {version!r} of {model} that is no TF Serving version (a number)"
            raise asker.unexpected(f"/v1/models/{quote(model, safe='')}", what)
        now = _SETTLED.get(word)
        out[version] = now if version not in out or out[version] == now else None  # listed twice
    return out


SERVER = Server(
    preset="tfserving-patched",
    name="tfserving",
    metric=":tensorflow:serving:model_call_count",
    model_label="model_name",
    version_label="model_version",
    version_of=version_of,
    not_a_version="not a version directory (name is not a non-negative integer)",
    status_api="TF Serving REST API (port 8501 by default)",
    ask_loaded=ask_loaded,
    read_model_config=read_model_config,
    canonical=canonical,
    label_is_version=label_is_version,
    config_unloader=ConfigUnloader(
        config="TF Serving --model_config_file",
        picks_up="at its next poll (--model_config_file_poll_wait_seconds)",
        state=state,
    ),
)

"""Model servers: what each exports and how it reads its model directories.

Each server is one small module holding one `Server`; `_MODULES` lists them, and `SERVERS` maps a
`--preset` name to each. Everything that differs between servers lives there (metric and labels,
the version-directory rule, the config readers, label conventions, the status API), so every entry
point (`--model-dir`, `--model-base-path`, `--model-config`, a model store, `--server`) applies the
same server's rules: a directory the server would not load is never listed as a version, and
"newest" protection is computed over what the server really serves. Adding a server is one module
plus one line in `_MODULES`; tests/servers checks that nothing else names one.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from retire.sources.disk.inventory import Inventory
    from retire.sources.disk.server_configs import ModelEntry, VersionPolicy
    from retire.sources.loaded import Asker, Loaded

# The registry: one line per server module in retire/servers/. The first is the default preset.
_MODULES = (
    "tfserving",
    "tfserving_stock",
    "triton",
    "torchserve",
    "mlserver",
)


# One request and what the server answered, as the unload journal keeps it (secrets scrubbed).
Exchange = dict[str, Any]


@dataclass(frozen=True)
class Unloader:
    """How a server unloads some versions of a model while the others keep serving, and loads
    them back (`retire unload`, retire/actions/unload.py). Each call makes its requests through
    the status API conversation (`Asker`: bounded, one-line errors, secrets scrubbed) and returns
    what it asked and what the server answered, for the journal."""

    api: str  # for messages: which API is asked
    # (asker, model) -> the model's setup now (Triton: the config the server returns), journaled
    # before the change so that the undo can put it back.
    setup: Callable[[Asker, str], dict[str, Any]]
    # (asker, model, versions to keep loaded, versions to unload, setup) -> the exchanges made.
    unload: Callable[[Asker, str, tuple[str, ...], tuple[str, ...], dict[str, Any]], list[Exchange]]
    # (asker, model, versions to load back, the setup they had (with "on_disk": version -> the
    # base name of its file on disk now, from a fresh scan), versions loaded now, whether every
    # version the setup loaded comes back) -> the exchanges made.
    reload: Callable[[Asker, str, tuple[str, ...], dict[str, Any], tuple[str, ...], bool], list[Exchange]]
    # (asker, model) -> per version the server lists: loaded (True), not (False), or its own
    # answers disagree (None: neither confirms anything).
    state: Callable[[Asker, str], dict[str, bool | None]]
    # --- servers that load what their repository holds (MLServer) ---
    # True: there is no per-version unload call; a version goes when its folder leaves the
    # repository (moved into the archive by offload's mover, retire/actions/unload_folders.py) and
    # the model is loaded again, and comes back the same way.
    moves_folders: bool = False
    # (asker, model, version) -> loaded (True), not (False), or unsure (None), for a version
    # `state` does not list (MLServer's index lists only what the repository holds).
    ask_version: Callable[[Asker, str, str], bool | None] | None = None
    # True: the server reads its version policy at start from a file in the repository (Triton's
    # config.pbtxt), which retire rewrites once every replica confirmed the change, so that a
    # replica started later does not load the versions back (actions/triton_config.py).
    durable_policy: bool = False
    # Where the change cannot be made to last: why, said after each model's unload (a replica
    # started later may load the versions again).
    not_durable: str = ""


@dataclass(frozen=True)
class ConfigUnloader:
    """How a server that polls a model config file unloads versions (TF Serving): retire rewrites
    the file (`--model-config`, retire/actions/unload_file.py) and the server picks it up on its
    own; no call changes anything. The status API (`--server`) only confirms."""

    config: str  # what the file is, for messages
    picks_up: str  # when the server reads it again, for messages
    # (asker, model) -> per version the server lists: loaded (True), not loaded (False), or on
    # its way in or out (None: neither confirms anything yet).
    state: Callable[[Asker, str], dict[str, bool | None]]


@dataclass(frozen=True)
class Server:
    """One kind of model server, as `retire` needs to know it."""

    preset: str  # the --preset name
    name: str  # the server's own short name (Loaded.server; also accepted by status_server)
    metric: str
    model_label: str
    version_label: str  # "": the server counts calls per model only (its evidence is per model)
    # A version directory's name -> the version number the server reads from it, or None when
    # the server would not load that directory as a version.
    version_of: Callable[[str], int | None]
    # Why a name was not taken as a version, in the server's own terms (shown with --verbose).
    not_a_version: str
    # The status API that says which versions are loaded (`--server`), for messages, and how to
    # read it: (the connection, the models asked about) -> the answer.
    status_api: str
    ask_loaded: Callable[[Asker, Iterable[str]], Loaded]
    # A model store reader for servers that keep each version as an archive in one directory
    # (TorchServe's .mar files); None: the tree <root>/<model>/<version>/.
    store: Callable[[Path], Inventory] | None = None
    # The per-model config file holding the version policy (Triton), and its reader.
    policy_file: str | None = None
    read_policy: Callable[[Path], VersionPolicy] | None = None
    # The reader of a --model-config file (TF Serving's --model_config_file); None: refused.
    read_model_config: Callable[[Path], list[ModelEntry]] | None = None
    # The counter of failed calls, where the server counts them apart from `metric` (Triton):
    # a version with failed calls is never safe (queries/failed_calls.promql).
    failure_metric: str | None = None
    # Version label values that name no version: calls under them may reach any version.
    unattributed: tuple[str, ...] = ()
    # A version label value -> the join key of the version on disk it names ("007" -> "7" where
    # directory names are numbers; as written where versions are strings, TorchServe).
    canonical: Callable[[str], str] = str
    # Whether a version label value could name a version directory at all (None: any text could).
    label_is_version: Callable[[str], bool] | None = None
    # How `retire unload` asks it to unload versions (None: not yet; the command refuses).
    unloader: Unloader | None = None
    # Where its version policy lives in a config file it polls instead (TF Serving): `retire
    # unload` rewrites that file (retire/actions/unload_file.py).
    config_unloader: ConfigUnloader | None = None

    @property
    def per_model(self) -> bool:
        return not self.version_label

    @property
    def defaults(self) -> dict[str, str]:
        """What a preset fills in unless set explicitly (flag, env or file): README "Deployments"."""
        return {"metric": self.metric, "model_label": self.model_label, "version_label": self.version_label}


def _registry() -> dict[str, Server]:
    servers = [importlib.import_module(f"retire.servers.{m}").SERVER for m in _MODULES]
    return {s.preset: s for s in servers}


SERVERS: dict[str, Server] = _registry()
DEFAULT_PRESET = next(iter(SERVERS))
# What each kind of model server exports: the metric and label names a preset fills in.
PRESETS: dict[str, dict[str, str]] = {name: s.defaults for name, s in SERVERS.items()}
# Pins (--pin, --only, restore) are read by the default server's rule, TF Serving's numbers
# ("007" is version 7), whatever the preset: one rule wherever a person writes a version.
canonical_version = SERVERS[DEFAULT_PRESET].canonical


def server(preset: str) -> Server:
    return SERVERS[preset]


def status_server(name: str) -> Server:
    """The server whose status API `--server` asks, by preset or short name (a usage error if none)."""
    from retire.errors import ServerError

    found = find(name)
    if found is None:
        names = ", ".join(dict.fromkeys(n for s in SERVERS.values() for n in (s.preset, s.name)))
        raise ServerError(f"--server: no status API known for {name!r}; use one of {names}")
    return found


def find(name: str) -> Server | None:
    """A server by --preset name or by its own short name (`tfserving` for `tfserving-patched`).
    Presets of one server (stock and patched TF Serving) share its name and its status API."""
    return SERVERS.get(name) or next((s for s in SERVERS.values() if s.name == name), None)

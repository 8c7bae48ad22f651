"""Model servers: what each exports and how it reads its model directories.

Each server is one small module holding one `Server`; `SERVERS` maps a `--preset` name to it.
Everything that differs between servers lives there, so every entry point (`--model-dir`,
`--model-base-path`, `--model-config`, a model store) applies the same server's rules: a
directory the server would not load is never listed as a version, and "newest" protection is
computed over what the server really serves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Server:
    """One kind of model server, as `retire` needs to know it."""

    preset: str
    metric: str
    model_label: str
    version_label: str
    # A version directory's name -> the version number the server reads from it, or None when
    # the server would not load that directory as a version.
    version_of: Callable[[str], int | None]
    # Why a name was not taken as a version, in the server's own terms (shown with --verbose).
    not_a_version: str
    layout: str = "tree"  # "tree": <root>/<model>/<version>/; "store": TorchServe's .mar files
    policy_file: str | None = None  # per-model config holding the version policy (Triton)
    model_config: bool = False  # reads TF Serving's --model_config_file
    # Version label values that name no version: calls under them may reach any version.
    unattributed: tuple[str, ...] = ()
    # A version label value -> the join key of the version on disk it names ("007" -> "7" where
    # directory names are numbers; as written where versions are strings, TorchServe).
    canonical: Callable[[str], str] = str
    # Whether a version label value could name a version directory at all (None: any text could).
    label_is_version: Callable[[str], bool] | None = None


def _registry() -> dict[str, Server]:
    from retire.servers import tfserving, torchserve, triton

    return {s.preset: s for s in (tfserving.SERVER, triton.SERVER, torchserve.SERVER)}


SERVERS: dict[str, Server] = _registry()
DEFAULT_PRESET = "tfserving-patched"


def server(preset: str) -> Server:
    return SERVERS[preset]

"""NVIDIA Triton Inference Server.

Triton lists a model's subdirectories, ignores any name longer than one character that starts
with `0` ("ignore version directory '03' which contains leading zeros"), parses the rest with
`std::stoll`, and then loads version N from the directory named exactly `N`. So only canonical
decimal names are served: `03/`, `+3/` or `3abc/` never are, and reading them as version 3 would
list a version nobody serves and move "newest" protection off the real newest. Each model's
`config.pbtxt` holds its `version_policy`. The counter `nv_inference_request_success` exists from
load (at 0) until unload.
"""

from __future__ import annotations

import re

from retire.servers import Server

_CANONICAL = re.compile(r"0|[1-9][0-9]*")
_SKIPPED = {"warmup", "initial_state", "configs"}  # Triton's own folders inside a model


def version_of(name: str) -> int | None:
    if name in _SKIPPED or not _CANONICAL.fullmatch(name):
        return None
    number = int(name)
    return number if number < 2**63 else None


def label_is_version(label: str) -> bool:
    return version_of(label) is not None


SERVER = Server(
    preset="triton",
    metric="nv_inference_request_success",
    model_label="model",
    version_label="version",
    version_of=version_of,
    not_a_version="not a version Triton loads (it reads version N only from a directory named exactly N, "
    "without leading zeros)",
    policy_file="config.pbtxt",
    canonical=str,  # Triton labels a version with its directory's exact name
    label_is_version=label_is_version,
)

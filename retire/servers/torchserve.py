"""TorchServe: a model store of `.mar` archives, each naming its model and version in
`MAR-INF/MANIFEST.json`. A request that names no version is counted under
`model_version="default"`, which may be any version of the model."""

from __future__ import annotations

from retire.servers import Server


def version_of(name: str) -> int | None:
    return None  # versions are read from each archive's manifest, not from directory names


SERVER = Server(
    preset="torchserve",
    metric="ts_inference_requests_total",
    model_label="model_name",
    version_label="model_version",
    version_of=version_of,
    not_a_version="not a .mar model archive",
    layout="store",
    unattributed=("default",),
)

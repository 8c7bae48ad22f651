"""Synthetic fleets for the benchmarks: many models, many versions, realistic shapes, written fast.

A fleet is `models` x `versions`, served by `replicas` pods (every pod serves every model, as TF
Serving does). Per model, the newest two versions are busy; older ones are, by a fixed pattern,
steady at a low rate, flat (called long ago, counter unchanged), or never called (no series). The
same parameters always give the same data, so a generated TSDB can be cached by `Fleet.key`.

This is the bulk counterpart of `synth.py` (which describes hand-made scenarios one series at a
time); both write the same OpenMetrics shapes for `promtool`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from retire.lab.synth import TFS_METRIC

HOUR = 3600.0


@dataclass(frozen=True)
class Fleet:
    models: int
    versions: int
    replicas: int = 1
    hours: float = 25.0
    interval: float = 60.0
    file_size: int = 64

    @property
    def key(self) -> str:
        text = repr(sorted(asdict(self).items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def size(self) -> int:
        return self.models * self.versions

    def kind(self, model: int, version: int) -> str:
        """busy, steady, flat or none: what traffic a version gets."""
        if version >= self.versions - 2:
            return "busy"
        return ("steady", "flat", "none")[(model * 7 + version * 3) % 3]

    def qps(self, model: int, version: int) -> float:
        kind = self.kind(model, version)
        if kind == "busy":
            return 1.0 + (model % 5)
        if kind == "steady":
            return 0.01 * (1 + version % 7)
        return 0.0


def _series_lines(fleet: Fleet, end: float) -> Iterator[str]:
    first = math.ceil((end - fleet.hours * HOUR) / fleet.interval) * fleet.interval
    times = np.arange(first, end + 1e-9, fleet.interval)
    stamps = [f"{t:.0f}" for t in times]
    elapsed = times - times[0]
    yield f"# TYPE {TFS_METRIC} unknown\n"
    for m in range(fleet.models):
        for v in range(fleet.versions):
            kind = fleet.kind(m, v)
            if kind == "none":
                continue
            base = 1000 + 37 * (m + v)  # calls before the history starts
            values = base + np.floor(fleet.qps(m, v) * elapsed).astype(np.int64)
            texts = values.astype(str).tolist()
            for r in range(fleet.replicas):
                labels = f'model_name="model_{m:04d}",model_version="{v + 1}",instance="tfs-{r}",job="tfs"'
                prefix = f"{TFS_METRIC}{{{labels}}} "
                yield "".join(f"{prefix}{x} {s}\n" for x, s in zip(texts, stamps, strict=True))
    yield "# TYPE up gauge\n"
    for r in range(fleet.replicas):
        prefix = f'up{{instance="tfs-{r}",job="tfs"}} '
        yield "".join(f"{prefix}1 {s}\n" for s in stamps)


def write_openmetrics(path: Path, fleet: Fleet, end: float) -> int:
    """Write the fleet's history; return the number of counter series."""
    series = 0
    with path.open("w", encoding="utf-8", buffering=1 << 22) as f:
        for chunk in _series_lines(fleet, end):
            f.write(chunk)
            series += 1
        f.write("# EOF\n")
    return series - 2 - fleet.replicas  # minus the two TYPE lines and the up series


def make_tree(root: Path, fleet: Fleet, end: float) -> None:
    """`<root>/model_NNNN/<version>/` with one small file each, mtimes well in the past."""
    payload = b"\0" * fleet.file_size
    old = end - 30 * 86400
    for m in range(fleet.models):
        model = root / f"model_{m:04d}"
        for v in range(fleet.versions):
            path = model / str(v + 1)
            path.mkdir(parents=True, exist_ok=True)
            (path / "saved_model.pb").write_bytes(payload)
            os.utime(path, (old, old))

"""Scrape histories with per-target scrape times, for the attacks on issue #21's changes.

`retire.lab.synth` scrapes every pod at one interval; the attacks here need targets whose
interval differs or changes over time, scrapes missed around one instant, `up` series that carry
other labels than the metric, or no `up` at all. A `Pod` lists its scrape attempts; a `Counter`
its calls. Written as OpenMetrics for `promtool` to backfill into a real Prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

METRIC = ":tensorflow:serving:model_call_count"
Spans = tuple[tuple[float, float], ...]


def every(interval: float, start: float, stop: float, offset: float = 0.0) -> np.ndarray:
    """Scrape times at `offset` past multiples of `interval` in [start, stop] (absolute)."""
    first = math.ceil((start - offset) / interval) * interval + offset
    return np.arange(first, stop + 1e-9, interval)


def _inside(t: np.ndarray, spans: Spans) -> np.ndarray:
    out = np.zeros(len(t), dtype=bool)
    for a, b in spans:
        out |= (t >= a) & (t < b)
    return out


@dataclass(frozen=True)
class Pod:
    """A scrape target. `scrapes`: absolute times of its scrape attempts; `down`: spans where
    scrapes failed (`up` = 0, no samples); `lost`: spans where nothing was stored at all
    (Prometheus down, data not arrived, the pod left service discovery). `labels`: its target
    labels, on `up` and on its series; `up_labels`: more labels on its `up` only (None: no `up`)."""

    scrapes: np.ndarray
    labels: dict[str, str]
    down: Spans = ()
    lost: Spans = ()
    up_labels: dict[str, str] | None = field(default_factory=dict)

    def stored(self) -> tuple[np.ndarray, np.ndarray]:
        """(times with a stored sample, and whether that scrape succeeded)."""
        t = self.scrapes[~_inside(self.scrapes, self.lost)]
        return t, ~_inside(t, self.down)


@dataclass(frozen=True)
class Counter:
    """A version's call counter on one pod: created on its first call (at 1, TF Serving) and
    wiped by each restart. `hidden`: spans where its samples are not stored though the scrape
    succeeded (a relabel rule dropping it)."""

    pod: Pod
    model: str
    version: str
    calls: tuple[float, ...] = ()
    restarts: tuple[float, ...] = ()
    hidden: Spans = ()
    labels: dict[str, str] = field(default_factory=dict)

    def values(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        calls = np.sort(np.asarray(self.calls, dtype=float))
        restarts = np.sort(np.asarray(self.restarts, dtype=float))
        idx = np.searchsorted(restarts, t, side="right") - 1
        boot = np.where(idx >= 0, restarts[np.clip(idx, 0, None)] if restarts.size else -np.inf, -np.inf)
        value = np.searchsorted(calls, t, side="right") - np.searchsorted(calls, boot, side="right")
        return value.astype(float), value >= 1


def _labels(labels: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{esc(v)}"' for k, v in labels.items() if v)


def _t(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".")


def lines(counters: Iterable[Counter], pods: Iterable[Pod]) -> Iterator[tuple[str, str]]:
    """(family, sample line) pairs."""
    for c in counters:
        t, ok = c.pod.stored()
        values, exists = c.values(t)
        keep = ok & exists & ~_inside(t, c.hidden)
        labels = {"model_name": c.model, "model_version": c.version, **c.pod.labels, **c.labels}
        head = f"{METRIC}{{{_labels(labels)}}}"
        for i in np.flatnonzero(keep):
            yield METRIC, f"{head} {int(values[i])} {_t(t[i])}\n"
    for p in pods:
        if p.up_labels is None:
            continue
        t, ok = p.stored()
        head = f"up{{{_labels({**p.labels, **p.up_labels})}}}"
        for i in range(len(t)):
            yield "up", f"{head} {1 if ok[i] else 0} {_t(t[i])}\n"


def write(path: Path, counters: Iterable[Counter], pods: Iterable[Pod]) -> None:
    families: dict[str, list[str]] = {METRIC: [], "up": []}
    for family, line in lines(counters, pods):
        families[family].append(line)
    with path.open("w", encoding="utf-8") as f:
        f.write(f"# TYPE {METRIC} unknown\n")
        f.writelines(families[METRIC])
        f.write("# TYPE up gauge\n")
        f.writelines(families["up"])
        f.write("# EOF\n")

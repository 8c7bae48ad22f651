"""A world as a scraping Prometheus would have stored it (OpenMetrics text for
`promtool tsdb create-blocks-from openmetrics`), and its model directories.

Per pod, every scheduled scrape in the history (T - W - 2h to T) that is not in a global outage and
not after the ingestion-lag cut stores an `up` sample (0 during the pod's own outages) and, when
up, one sample per existing counter series: calls since the process (re)started; a series exists
from its first call (TF Serving, TorchServe) or from the pod's start at 0 (Triton).

Many worlds share one Prometheus without seeing each other: each has its own metric
(`w<id>_calls`), its own jobs (`w<id>-...`), and its `up` series carry `world="<id>"`.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from retire.lab.synth import Scenario, VersionDir, make_model_tree
from tests.oracle.worlds import DAY, SEC, Series, World


def _labels(pairs: Iterable[tuple[str, str | None]]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return ",".join(f'{k}="{esc(v)}"' for k, v in pairs if v)


def _stamps(t: np.ndarray) -> list[str]:
    """Millisecond times as OpenMetrics seconds, exactly (no float rounding)."""
    return [f"{x // SEC}.{x % SEC:03d}" for x in t.tolist()]


def series_lines(world: World, series: Series) -> Iterator[str]:
    t, up = world.stored(series.pod)
    t = t[up]
    if not len(t):
        return
    values = series.value(t)
    keep = np.ones(len(t), dtype=bool) if series.zero_init else values >= 1
    p = world.preset
    labels = _labels(
        [
            (p.model_label, series.model_label),
            (p.version_label, series.version_label),
            ("instance", series.pod.instance),
            ("job", series.pod.job),
        ]
    )
    prefix = f"{world.metric}{{{labels}}} "
    for v, s in zip(values[keep].tolist(), _stamps(t[keep]), strict=True):
        yield f"{prefix}{v} {s}\n"


def metric_lines(world: World) -> Iterator[str]:
    """The world's counter family (a family's samples must be together)."""
    yield f"# TYPE {world.metric} unknown\n"
    for series in world.series:
        yield from series_lines(world, series)


def up_lines(world: World) -> Iterator[str]:
    """`up` per pod, without the `# TYPE` line: all worlds' `up` samples form one family."""
    for pod in world.pods:
        t, up = world.stored(pod)
        prefix = (
            f"up{{{_labels([('instance', pod.instance), ('job', pod.job), ('world', str(world.wid))])}}} "
        )
        for u, s in zip(up.astype(int).tolist(), _stamps(t), strict=True):
            yield f"{prefix}{u} {s}\n"


def pool_lines(world: World) -> Iterator[str]:
    """Prometheus's own `prometheus_target_scrape_pool_targets` per job of the world, where it
    scrapes itself, without the `# TYPE` line (one family for all worlds)."""
    for job in world.jobs:
        t, alive = world.pool_samples(job)
        prefix = (
            f"prometheus_target_scrape_pool_targets{{"
            f"{_labels([('instance', f'w{world.wid}-prometheus:9090'), ('job', 'prometheus'), ('scrape_job', job)])}}} "
        )
        for a, s in zip(alive.tolist(), _stamps(t), strict=True):
            yield f"{prefix}{a} {s}\n"


def write_openmetrics(path: Path, worlds: Iterable[World]) -> int:
    """One OpenMetrics file for many worlds; returns the number of samples written."""
    n = 0
    with (
        path.open("w", encoding="utf-8") as f,
        tempfile.TemporaryFile("w+", dir=path.parent) as ups,
        tempfile.TemporaryFile("w+", dir=path.parent) as pools,
    ):
        for world in worlds:
            for line in metric_lines(world):
                f.write(line)
                n += 1
            for line in up_lines(world):
                ups.write(line)
                n += 1
            for line in pool_lines(world):
                pools.write(line)
                n += 1
        for family, lines in (("up", ups), ("prometheus_target_scrape_pool_targets", pools)):
            f.write(f"# TYPE {family} gauge\n")
            lines.seek(0)
            shutil.copyfileobj(lines, f)
        f.write("# EOF\n")
    return n


def make_models(root: Path, world: World) -> Path:
    """The world's version directories (a model store of .mar archives for TorchServe), all
    changed 30 days before T, so --min-age never protects one."""
    where = root / f"w{world.wid}"
    if world.preset.store:
        disk = tuple(
            VersionDir("", f"{m}_v{v}.mar", age=30 * DAY / SEC, manifest=(m, v), size=256)
            for m, v in world.disk
        )
    else:
        disk = tuple(VersionDir(m, v, age=30 * DAY / SEC, size=256) for m, v in world.disk)
    make_model_tree(where, Scenario(f"w{world.wid}", disk=disk), end=world.T / SEC)
    where.mkdir(parents=True, exist_ok=True)
    return where

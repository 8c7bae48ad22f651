"""Synthetic TF Serving traffic, written as OpenMetrics for `promtool` to backfill, plus matching
model directories. Used by the demo, the tests and the benchmarks, so all three exercise the same
shapes of data.

A scenario is described in seconds relative to its end instant (negative = in the past) and
mirrors how the real exporter behaves:

- the counter series of a (model, version, pod) is created on the version's first call, at 1
  (TF Serving); `zero_init=True` creates it at 0 when the process starts (Triton);
- a restart resets the counter, and the series is absent until the next call;
- a pod outage means failed scrapes: `up` is 0 and no samples are stored, while calls go on;
- a global outage (Prometheus down) stores nothing at all, not even `up`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TFS_METRIC = ":tensorflow:serving:model_call_count"
HOUR = 3600.0


@dataclass(frozen=True)
class Traffic:
    """Calls to one version on one pod: a steady rate over [start, stop), plus single calls."""

    model: str
    version: str
    pod: str = "tfs-0"
    qps: float = 0.0
    start: float = -math.inf
    stop: float = 0.0
    calls: tuple[float, ...] = ()
    restarts: tuple[float, ...] = ()
    zero_init: bool = False
    labels: tuple[tuple[str, str], ...] = ()  # more labels on this series (after the usual ones)
    vanish: float | None = None  # no samples from this time on (the metric is dropped; targets stay up)
    constant: float | None = None  # the counter reads this value at every scrape (e.g. +Inf)


@dataclass(frozen=True)
class Outage:
    """No samples in [start, stop): for one pod (`up` = 0), or for everything when pod is None.
    `gone`: the pod left service discovery (replaced): no `up` either, as if never scraped."""

    start: float
    stop: float
    pod: str | None = None
    gone: bool = False


@dataclass(frozen=True)
class VersionDir:
    model: str
    name: str  # directory name, e.g. "00123" or "README" for a non-version entry
    age: float = 7 * 86400.0  # seconds before the scenario's end: the directory's mtime
    size: int = 1024
    is_file: bool = False
    content: str | None = None  # for a file: its text (e.g. a Triton config.pbtxt)
    manifest: tuple[str, str] | None = None  # TorchServe: a .mar archive for (model, version)


@dataclass(frozen=True)
class Scenario:
    name: str
    traffic: tuple[Traffic, ...] = ()
    outages: tuple[Outage, ...] = ()
    disk: tuple[VersionDir, ...] = ()
    job: str = "tfs"
    metric: str = TFS_METRIC
    model_label: str = "model_name"
    version_label: str = "model_version"
    extra_pods: tuple[str, ...] = ()  # pods that are scraped but serve nothing
    scrape_offset: float = 0.0  # scrapes happen at this offset from multiples of the interval
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def pods(self) -> list[str]:
        return sorted({t.pod for t in self.traffic} | set(self.extra_pods))


def _label_text(labels: dict[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    # Prometheus stores an empty label as no label: a traffic's "" model or version is none.
    return ",".join(f'{k}="{esc(v)}"' for k, v in labels.items() if v)


def _counter(t: np.ndarray, traffic: Traffic) -> tuple[np.ndarray, np.ndarray]:
    """Counter values at relative times t, and whether the series exists then."""
    lo = traffic.start if math.isfinite(traffic.start) else -1000 * HOUR

    def calls_until(x: np.ndarray) -> np.ndarray:
        steady = np.floor(traffic.qps * (np.clip(x, lo, traffic.stop) - lo))
        singles = np.searchsorted(np.array(sorted(traffic.calls), dtype=float), x, side="right")
        result: np.ndarray = steady + singles
        return result

    if traffic.constant is not None:
        return np.full_like(t, traffic.constant, dtype=float), np.ones_like(t, dtype=bool)
    restarts = np.sort(np.array(traffic.restarts, dtype=float))
    idx = np.searchsorted(restarts, t, side="right") - 1
    boot = np.where(idx >= 0, restarts[np.clip(idx, 0, None)] if restarts.size else lo, lo)
    since_boot = calls_until(t) - calls_until(boot)
    exists = np.ones_like(t, dtype=bool) if traffic.zero_init else since_boot >= 1
    return since_boot, exists


def _value(x: float) -> str:
    """A sample value as OpenMetrics spells it (whole numbers plain, `+Inf`, `NaN`)."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    return str(int(x))


def scrape_times(end: float, history: float, interval: float, offset: float = 0.0) -> np.ndarray:
    """Relative scrape times at `offset` past multiples of the interval, covering [end-history, end]."""
    first = math.ceil((end - history - offset) / interval) * interval + offset
    return np.arange(first, end + 1e-9, interval) - end


def _mask_outages(t: np.ndarray, outages: Iterable[Outage], pod: str) -> tuple[np.ndarray, np.ndarray]:
    """(scraped, down) masks for a pod at times t."""
    scraped = np.ones_like(t, dtype=bool)
    down = np.zeros_like(t, dtype=bool)
    for o in outages:
        inside = (t >= o.start) & (t < o.stop)
        if o.pod is None or (o.gone and o.pod == pod):
            scraped &= ~inside
        elif o.pod == pod:
            down |= inside
    return scraped, down


def openmetrics_lines(scenario: Scenario, end: float, history: float, interval: float) -> Iterator[str]:
    """The scenario's samples as OpenMetrics text lines (without the final `# EOF`)."""
    t = scrape_times(end, history, interval, scenario.scrape_offset)
    absolute = [f"{end + x:.3f}".rstrip("0").rstrip(".") for x in t]
    base = {"job": scenario.job, **scenario.labels}
    yield f"# TYPE {scenario.metric} unknown\n"
    for tr in scenario.traffic:
        scraped, down = _mask_outages(t, scenario.outages, tr.pod)
        values, exists = _counter(t, tr)
        keep = scraped & ~down & exists
        if tr.vanish is not None:
            keep &= t < tr.vanish
        labels = _label_text(
            {
                scenario.model_label: tr.model,
                scenario.version_label: tr.version,
                "instance": tr.pod,
                **base,
                **dict(tr.labels),
            }
        )
        prefix = f"{scenario.metric}{{{labels}}} "
        for i in np.flatnonzero(keep):
            yield f"{prefix}{_value(values[i])} {absolute[i]}\n"
    yield "# TYPE up gauge\n"
    for pod in scenario.pods:
        scraped, down = _mask_outages(t, scenario.outages, pod)
        prefix = f"up{{{_label_text({'instance': pod, **base})}}} "
        for i in np.flatnonzero(scraped):
            yield f"{prefix}{0 if down[i] else 1} {absolute[i]}\n"


def write_openmetrics(
    path: Path, scenarios: Iterable[Scenario], end: float, history: float = 26 * HOUR, interval: float = 60.0
) -> None:
    """One OpenMetrics file for several scenarios (told apart by their labels)."""
    with path.open("w", encoding="utf-8") as f:
        families: dict[str, list[str]] = {}
        for scenario in scenarios:
            family = None
            for line in openmetrics_lines(scenario, end, history, interval):
                if line.startswith("# TYPE "):
                    family = line
                    families.setdefault(family, [])
                else:
                    assert family is not None
                    families[family].append(line)
        # OpenMetrics wants each family's samples together.
        for family, lines in families.items():
            f.write(family)
            f.writelines(lines)
        f.write("# EOF\n")


def make_model_tree(root: Path, scenario: Scenario, end: float) -> None:
    """The scenario's model directories under root, with sizes and mtimes as described."""
    for d in scenario.disk:
        model_dir = root / d.model if d.model else root
        model_dir.mkdir(parents=True, exist_ok=True)
        path = model_dir / d.name
        if d.manifest is not None:
            _write_mar(path, *d.manifest, size=d.size)
        elif d.is_file:
            path.write_text(d.content if d.content is not None else "not a version\n")
        else:
            (path / "variables").mkdir(parents=True, exist_ok=True)
            # Sparse: the same st_size (what the inventory counts) without writing the bytes; the
            # demo's "models" are hundreds of MiB each and the suite builds the demo three times.
            with (path / "saved_model.pb").open("wb") as f:
                f.truncate(max(d.size - 16, 0))
            (path / "variables" / "variables.index").write_bytes(b"\1" * min(d.size, 16))
        when = end - d.age
        os.utime(path, (when, when))


def write_import_text(
    path: Path, scenarios: Iterable[Scenario], end: float, history: float = 26 * HOUR, interval: float = 60.0
) -> None:
    """The same samples in Prometheus text format with millisecond timestamps, the format of
    VictoriaMetrics' `/api/v1/import/prometheus`."""
    with path.open("w", encoding="utf-8") as f:
        for scenario in scenarios:
            for line in openmetrics_lines(scenario, end, history, interval):
                if line.startswith("#"):
                    continue
                head, ts = line.rstrip("\n").rsplit(" ", 1)
                f.write(f"{head} {round(float(ts) * 1000)}\n")


def _write_mar(path: Path, model: str, version: str, size: int) -> None:
    """A minimal TorchServe model archive: a zip with MAR-INF/MANIFEST.json and a weights file."""
    import json
    import zipfile

    about = {
        "modelName": model,
        "modelVersion": version,
        "serializedFile": "model.pt",
        "handler": "handler.py",
    }
    manifest = {"runtime": "python", "model": about}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("MAR-INF/MANIFEST.json", json.dumps(manifest))
        z.writestr("model.pt", b"\0" * size)

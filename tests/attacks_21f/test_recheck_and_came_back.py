"""Attacks on two changes: 8ec80db (`raw_source._recheck_ended` / `_created_anew`: a flat series
that ended in the window, with fewer samples than its target's successful scrapes, is re-read
against its target's raw `up`; absent at a successful scrape between its first and last samples
means created anew) and 22eb064 (`up._confirm_gone`'s `came_back`: with --at in the past, a
target whose `up` has samples after its last one before --at is not taken as replaced).

Each case: model m<i> with versions 1 (older) and 2 (newest, protected) on disk; pod tfs-0 holds
version 1's series, flat all window (its calls a day before the window); pod tfs-1 (same job)
takes calls of version 1 in the window in the way the case's comment says, hidden from every
query but the re-read (8ec80db) or the read after --at (22eb064). Version 1 must not be safe.
The history is written as OpenMetrics and backfilled with promtool into one real Prometheus
(and imported into VictoriaMetrics for the VM tests); `retire report --format json` runs in the
modes of tests/attacks_21c (raw, --coverage, --threshold 0.001, --split-by-model, --window 12h
--step 5m, a --selector on the model) where the case's times fit them, or at the case's --at.
Controls (the same shape present at the window's end, or the pre-change behaviour) say which
results are new. Attacks that work (false safe) are strict xfails whose reason says how; those
that do not are plain tests. A small proxy adds `warnings` or `isPartial` to chosen answers
(servers that lie), and one case is written up to a few seconds ago (--at seconds ago, now - end
small; --at in the future).

Pods are scraped every 60 s at :30 past the minute; END is 17 s past a minute.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs

import httpx
import numpy as np
import pytest

from retire.lab.servers import Prometheus, VictoriaMetrics, backfill
from retire.lab.synth import HOUR, Scenario, VersionDir, make_model_tree
from retire.sources.prometheus import raw_source
from retire.sources.prometheus import up as up_module
from tests.attacks_21.history import METRIC, Pod, every
from tests.attacks_21c.test_unlabelled_attacks import Raw, calls_at, counter
from tests.conftest import rows, run_cli, statuses
from tests.scenarios import END

pytestmark = pytest.mark.prometheus

MIN = 60.0
DAY = 24 * HOUR
TRITON = "nv_inference_request_success"


def scrape_at(t: float) -> float:
    """The first scrape (every 60 s at :30) at or after `t`."""
    return math.ceil((t - 30) / 60) * 60 + 30


def up(pod: Pod, ok: float = 1.0, at: dict[float, float] | None = None) -> Raw:
    """The `up` series of `pod`: `ok` at its successful scrapes, 0 at failed ones; `at`: values
    put in at chosen scrape times."""
    t, good = pod.stored()
    v = np.where(good, ok, 0.0)
    for when, value in (at or {}).items():
        assert (t == when).sum() == 1, when
        v[t == when] = value
    return Raw("up", pod.labels, t, v)


@dataclass(frozen=True)
class Case:
    name: str
    model: str
    series: list[Raw]
    at: float = END
    modes: tuple[str, ...] = ("raw", "coverage", "threshold", "split", "selector-model")
    preset: tuple[str, ...] = ()
    model_label: str = "model_name"
    disk: Scenario = field(init=False)

    def __post_init__(self) -> None:
        dirs = tuple(VersionDir(self.model, str(v), age=10 * DAY) for v in (1, 2))
        object.__setattr__(self, "disk", Scenario(self.name, disk=dirs))


CASES: dict[str, Case] = {}
# name -> {mode: reason}: the attacks that work, as strict xfails
BROKEN: dict[str, dict[str, str]] = {}
ALL24 = ("raw", "coverage", "threshold", "split", "selector-model")
ALL24_BUT_THRESHOLD = ("raw", "coverage", "split", "selector-model")


def pods(name: str, start: float, tfs1: dict[str, object] | None = None) -> tuple[Pod, Pod, dict[str, str]]:
    base = {"job": name, "scenario": name}
    p0 = Pod(every(60, start, END, 30), {**base, "instance": "tfs-0"})
    p1 = Pod(every(60, start, END, 30), {**base, "instance": "tfs-1"}, **(tfs1 or {}))  # type: ignore[arg-type]
    return p0, p1, base


def add(name: str, build: Callable[[str, str], list[Raw]], **kw: object) -> None:
    """Register `name`: `build(name, model)` gives its series (metric and `up`)."""
    model = f"m{len(CASES)}"
    CASES[name] = Case(name, model, build(name, model), **kw)  # type: ignore[arg-type]


def own(model: str) -> dict[str, str]:
    return {"model_name": model, "model_version": "1"}


# ---------------------------------------------------------------------------------------------
# 8ec80db: flat series that ended in the window, re-read against their target's `up`.
# ---------------------------------------------------------------------------------------------


def first_minutes(at: float, window: float, ended: bool = True) -> Callable[[str, str], list[Raw]]:
    """X (version 1 on tfs-1) at 20 since a day before the window. A restart 10 s before the
    window's start W wipes it (its last sample at W-47s is what `offset` reads as its value at the
    window's start, within the 5-minute lookback); tfs-1 is scraped fine at W+13s and W+73s, X
    absent; 20 calls at W+100s..W+109.5s create it anew at 20, sampled from W+133s on. With
    `ended`, a second restart 8 h before --at ends it: flat (20 == 20), gone, fewer samples than
    tfs-1's scrapes, so re-read; its first sample in the window is after the absence."""

    def build(name: str, model: str) -> list[Raw]:
        w = at - window
        p0, p1, _ = pods(name, at - window - 2 * HOUR)
        base = tuple(w - HOUR + 10.0 * i for i in range(20))
        restarts = (w - 10, at - 8 * HOUR) if ended else (w - 10,)
        x = counter(p1, METRIC, own(model), (*base, *calls_at(w + 100, spacing=0.5)), restarts)
        # Premises: a sample within the lookback before W, none at W+13 and W+73, back at W+133.
        assert (x.times == w - 47).any() and not np.isin([w + 13, w + 73], x.times).any()
        assert (x.times == w + 133).any() and set(x.values[x.times > w - 300].tolist()) == {20.0}
        return [counter(p0, METRIC, own(model), base), x, up(p0), up(p1)]

    return build


add("first-minutes", first_minutes(END, DAY))
add("first-minutes-12h", first_minutes(END, 12 * HOUR), modes=("window12h-step5m",))
add("first-minutes-at", first_minutes(END - 6 * HOUR, DAY), at=END - 6 * HOUR, modes=("raw", "threshold"))
# Control: the same, present at the end (`series_facts`: fewer samples than scrapes, recreated).
add("first-minutes-present", first_minutes(END, DAY, ended=False), modes=("raw",))
# Fixed after 8ec80db (was a false safe in every mode but --threshold): X, present at the start
# through the 5-minute lookback, absent at the first scrapes of the window, then created anew; the
# re-read now checks the scrapes from the window's start where the series had a value then.


def finer(name: str, model: str) -> list[Raw]:
    """X sampled every 30 s, at :00 and :30 (federated or pushed with tfs-1's job and instance,
    honor_labels), tfs-1's own `up` every 60 s at :30: half of X's stamps are tfs-1's scrapes. A
    restart at :35 two hours into the window wipes X; at :00 it is absent; 20 calls at :05-:14.5
    bring it back to 20 by :30. A second restart 10 h into the window ends it: its ~1,200 samples
    are fewer than tfs-1's 1,440 successful scrapes (it lived 10 h of 24), so it is re-read."""
    w = END - DAY
    p0, p1, _ = pods(name, END - 26 * HOUR)
    restart = scrape_at(w + 2 * HOUR) + 5
    base = tuple(w - HOUR + 10.0 * i for i in range(20))
    x = counter(
        p1,
        METRIC,
        own(model),
        (*base, *calls_at(restart + 30, spacing=0.5)),
        (restart, w + 10 * HOUR + 7),
        times=every(30, END - 26 * HOUR, END, 0),
    )
    assert not (x.times == restart + 25).any() and (x.times == restart + 55).any()
    assert np.isin(
        p1.stored()[0][(p1.stored()[0] > restart - 60) & (p1.stored()[0] < restart + 100)], x.times
    ).all()
    assert len(x.times[x.times > w]) < 1440
    return [counter(p0, METRIC, own(model), base), x, up(p0), up(p1)]


add("finer-ended", finer)
# Fixed after 8ec80db (was a false safe in every mode): every sample of an ended series must be at
# one of its target's successful scrapes, else it cannot be told (`unsampled`).


def slow_owner(name: str, model: str) -> list[Raw]:
    """Two `up` series of tfs-1's job and instance: its scrape every 60 s ({job,instance}), and a
    second scrape config of the same job and address every 5 minutes whose relabelling adds
    pod="tfs-1-abc"; X carries pod="tfs-1-abc" (exported by the server itself), so the 5-minute
    `up` is its target (`targets._owners`: the owner with the most labels). X at 20, restarted 40 s
    after a 5-minute scrape an hour into the window, absent at the next three 1-minute scrapes,
    created anew at 20 by 20 calls before the fourth, and ended by a restart 3 h into the window:
    ~177 samples, fewer than the slow `up`'s 288 scrapes, so it is re-read against the slow `up`."""
    w = END - DAY
    p0, p1, base_labels = pods(name, END - 26 * HOUR)
    slow = Pod(every(300, END - 26 * HOUR, END, 30), {**base_labels, "instance": "tfs-1", "pod": "tfs-1-abc"})
    b = math.ceil((w + HOUR - 30) / 300) * 300 + 30
    base = tuple(w - HOUR + 10.0 * i for i in range(20))
    x = counter(p1, METRIC, own(model), (*base, *calls_at(b + 185, spacing=0.5)), (b + 40, w + 3 * HOUR))
    x = Raw(x.metric, {**x.labels, "pod": "tfs-1-abc"}, x.times, x.values)
    assert not np.isin([b + 60, b + 120, b + 180], x.times).any() and (x.times == b + 240).any()
    assert len(x.times[x.times > w]) < 288
    return [counter(p0, METRIC, own(model), base), x, up(p0), up(p1), up(slow)]


add("slow-owner-up", slow_owner, modes=("raw", "coverage", "threshold"))
# Fixed after 8ec80db (was a false safe): its samples at the 1-minute scrapes are not at the
# slow owner's scrapes, so it cannot be told (`unsampled`).

RECREATED_CALLS = calls_at(END - 7 * HOUR - 15, spacing=0.5)


def recreated_then_ends(
    ended: bool = True,
    tfs1: dict[str, object] | None = None,
    up_ok: float = 1.0,
    up_at: Callable[[Pod], dict[float, float]] | None = None,
    shift: float = 0.0,
    restarts: Sequence[float] = (END - 8 * HOUR,),
    calls: Sequence[float] = RECREATED_CALLS,
    v2_on_tfs1: bool = False,
) -> Callable[[str, str], list[Raw]]:
    """tests/attacks_21c's `recreated-then-ends-twin`: X at 20; a restart at END-8h wipes it, 20
    calls in 10 s at END-7h-15s bring it back to 20 (an hour of scrapes without it), and with
    `ended` a restart at END-2h ends it. `up_ok`: tfs-1's `up` at a successful scrape; `up_at`:
    values put in at chosen scrapes; `shift`: X's stamps this far after tfs-1's scrapes."""

    def build(name: str, model: str) -> list[Raw]:
        p0, p1, _ = pods(name, END - 26 * HOUR, tfs1)
        base = tuple(END - 25 * HOUR + 10.0 * i for i in range(20))
        every_restart = (*restarts, END - 2 * HOUR) if ended else tuple(restarts)
        x = counter(p1, METRIC, own(model), (*base, *calls), every_restart)
        x = Raw(x.metric, x.labels, x.times + shift, x.values)
        out = [counter(p0, METRIC, own(model), base), x, up(p0)]
        if v2_on_tfs1:
            out.append(counter(p1, METRIC, {"model_name": model, "model_version": "2"}, base))
        if p1.up_labels is not None:
            out.append(up(p1, up_ok, at=up_at(p1) if up_at else None))
        return out

    return build


def one_nan(p: Pod) -> dict[float, float]:
    return {scrape_at(END - 12 * HOUR): math.nan}


add("nan-up-ended", recreated_then_ends(up_at=one_nan), modes=("raw", "threshold"))
add("nan-up-present", recreated_then_ends(ended=False, up_at=one_nan), modes=("raw", "threshold"))
# Fixed after 8ec80db (was a false safe in raw mode, ended or present): a NaN count of its
# target's successful scrapes is re-read (ended: the NaN scrape is no successful one, so the
# series' sample there cannot be told) or the `unsampled` doubt (present at both ends).
# up = 2 at every successful scrape (two federated replicas summed): more scrapes, re-read, held.
add("up-two-ended", recreated_then_ends(up_ok=2.0), modes=("raw", "threshold"))
# X stamped 1 ms after each scrape of tfs-1 (a hop that re-stamps): stamped apart, `unsampled`.
add("stamped-1ms-late-ended", recreated_then_ends(shift=0.001), modes=("raw",))
# Several re-creations (END-10h and END-8h), then ended.
add(
    "recreated-twice-ended",
    recreated_then_ends(
        restarts=(END - 10 * HOUR, END - 8 * HOUR),
        calls=(*calls_at(END - 9.5 * HOUR, spacing=0.5), *RECREATED_CALLS),
    ),
    modes=("raw",),
)
# Re-created in the last minutes: restart at END-20m, 20 calls at END-14m, ended at END-10m
# (its last sample 10 min 47 s before END, past the 5-minute lookback: gone).
add(
    "last-minutes-ended",
    recreated_then_ends(
        restarts=(END - 20 * MIN, END - 10 * MIN), calls=calls_at(END - 14 * MIN, spacing=0.5), ended=False
    ),
    modes=("raw", "threshold"),
)
# tfs-1 has no `up` at all (another Prometheus scrapes it), and exports version 2's series to
# the end (its target reaches the end by the metric): X is not re-read (no scrapes to compare).
add(
    "no-up-ended",
    recreated_then_ends(tfs1={"up_labels": None}, v2_on_tfs1=True),
    modes=("raw",),
)

FAILED_AT = scrape_at(END - 9 * HOUR)


def failed_scrape(ended: bool) -> Callable[[str, str], list[Raw]]:
    """Re-created exactly at a scrape that failed: a restart 10 s before the scrape at END-9h,
    which fails (`up` = 0: the server restarting), 20 calls 5 s after it bring X back to 20 before
    the next scrape. X is absent at no successful scrape (one failed scrape: a 2-minute hole,
    under --max-gap); with `ended`, a restart at END-2h ends it."""
    return recreated_then_ends(
        ended=ended,
        tfs1={"down": ((FAILED_AT, FAILED_AT + 1),)},
        restarts=(FAILED_AT - 10,),
        calls=calls_at(FAILED_AT + 5, spacing=0.5),
    )


add("failed-scrape-ended", failed_scrape(True), modes=("raw", "coverage", "threshold"))
add("failed-scrape-present", failed_scrape(False), modes=("raw",))
FAILED = (
    "created anew at its old value exactly while its one scrape failed (up = 0): no successful "
    "scrape lacks a sample of X, so `_created_anew` says no (and series_facts sees samples == "
    "successful scrapes), and the 2-minute hole is under --max-gap: 20 calls made after the "
    "restart are in no count; flat, safe. The same with X present at the end (not new in 8ec80db: "
    "docs/verdicts.md tolerates holes up to --max-gap, a restart inside one included)"
)
BROKEN["failed-scrape-ended"] = dict.fromkeys(("raw", "coverage", "threshold"), FAILED)
BROKEN["failed-scrape-present"] = {"raw": FAILED}


def triton(name: str, model: str) -> list[Raw]:
    """Triton: X created at 0 on load at END-10h (born in the window), 20 calls at END-9h, a
    restart at END-8h back at 0, unloaded at END-2h: ended at 0, flat for a born series
    (`last == 0`), so re-read; the drop is a reset, counted across."""
    p0, p1, _ = pods(name, END - 26 * HOUR)
    labels = {"model": model, "version": "1"}
    t, ok = p1.stored()
    times = t[ok & (t < END - 2 * HOUR)]
    x = counter(p1, TRITON, labels, calls_at(END - 9 * HOUR), (END - 8 * HOUR,), END - 10 * HOUR, times)
    assert x.values[-1] == 0 and x.values.max() == 20
    base = tuple(END - 25 * HOUR + 10.0 * i for i in range(20))
    return [counter(p0, TRITON, labels, base, zero_from=END - 26 * HOUR), x, up(p0), up(p1)]


add(
    "triton-born-reset-ended",
    triton,
    modes=("raw", "threshold"),
    preset=("--preset", "triton"),
    model_label="model",
)

# ---------------------------------------------------------------------------------------------
# 22eb064: --at in the past, a target whose `up` goes on after --at is not taken as replaced.
# ---------------------------------------------------------------------------------------------

H0 = END - 6 * HOUR
AT_IN_HOLE = H0 + 17 * MIN + 47
EARLY = tuple(END - 32 * HOUR + 10.0 * i for i in range(20))  # a day before a window ending ~H0


def lost_then(after: str) -> Callable[[str, str], list[Raw]]:
    """tests/attacks_21e's `at-inside-lost-hole`: nothing of tfs-1 is stored from H0 (END-6h) on;
    20 calls reach it from H0+1m and a restart at H0+15m wipes its counter (never back); --at is
    H0+17m47s. After --at tfs-1 comes back as `after` says:
    - "relabelled": a StatefulSet pod recreated with the same pod name and a new IP: `up`
      and series with instance="10.0.0.9:8501" (was "10.0.0.2:8501"), pod="tfs-1", from H0+20m;
    - "down": the same labels, its scrapes failing (up = 0) from H0+20m to the end;
    - "once": the same labels, one successful scrape at H0+20m13s, then nothing again."""

    def build(name: str, model: str) -> list[Raw]:
        start = END - 34 * HOUR
        base = {"job": name, "scenario": name}
        p0 = Pod(every(60, start, END, 30), {**base, "instance": "10.0.0.1:8501", "pod": "tfs-0"})
        lost: tuple[tuple[float, float], ...] = ((H0, END + 1),)
        down: tuple[tuple[float, float], ...] = ()
        if after == "down":
            lost, down = ((H0, H0 + 20 * MIN),), ((H0 + 20 * MIN, END + 1),)
        elif after == "once":
            lost = ((H0, H0 + 20 * MIN), (H0 + 21 * MIN, END + 1))
        labels = {**base, "instance": "10.0.0.2:8501", "pod": "tfs-1"}
        p1 = Pod(every(60, start, END, 30), labels, down=down, lost=lost)
        x = counter(p1, METRIC, own(model), (*EARLY, *calls_at(H0 + 60)), (H0 + 15 * MIN,))
        out = [counter(p0, METRIC, own(model), EARLY), x, up(p0), up(p1)]
        if after == "relabelled":
            new = Pod(every(60, H0 + 20 * MIN, END, 30), {**labels, "instance": "10.0.0.9:8501"})
            out.append(up(new))
        return out

    return build


add("at-lost-back-relabelled", lost_then("relabelled"), at=AT_IN_HOLE)
add("at-lost-back-down", lost_then("down"), at=AT_IN_HOLE, modes=("raw", "coverage", "threshold"))
add("at-lost-back-once", lost_then("once"), at=AT_IN_HOLE, modes=("raw",))
# The relabelled history read at END (END is 0.5-1.5 h ago, so `came_back` runs too, and finds
# nothing under the old labels): the old tfs-1 ended at H0 while tfs-0 went on.
add("lost-back-relabelled-at-end", lost_then("relabelled"), modes=("raw", "coverage"))
# --at an hour in the future (`came_back` does nothing when now <= at): every target ends before it.
add("at-future", lost_then("relabelled"), at=math.floor(time.time()) + 3600.0, modes=("raw",))
RELABELLED = (
    "`came_back` asks for the target's exact labels after --at (`_up_of(t.labels)`: "
    'instance="10.0.0.2:8501", pod="tfs-1"); the pod came back as instance="10.0.0.9:8501" with '
    "the same pod name, so nothing is found, tfs-1 is confirmed gone (tfs-0, same pipeline, was "
    "scraped right after its last sample at H0-47s) and its 20 calls in the lost stretch before "
    "--at count for nothing: safe"
)
BROKEN["at-lost-back-relabelled"] = dict.fromkeys(ALL24, RELABELLED)
BROKEN["lost-back-relabelled-at-end"] = dict.fromkeys(
    ("raw", "coverage"),
    "read at END, the old tfs-1 (data lost from H0 on, calls and a restart in it) is the replaced "
    "pod of `_confirm_gone` (tfs-0 scraped right after it); its successor's same pod label is not "
    "read: the gone inference itself, not new in 22eb064 (which only removes it where the exact "
    "labels come back)",
)

# ---------------------------------------------------------------------------------------------
# Clocks: a history up to a few seconds ago, scraped every second.
# ---------------------------------------------------------------------------------------------

T0 = float(math.floor(time.time()))


def seconds_ago(name: str, model: str) -> list[Raw]:
    """Pods scraped every second for 3 h up to T0 (this module's import). tfs-1's samples stop
    at T0-9s (nothing stored from T0-8s to T0-4s: lost or late), with 20 calls at T0-8.9s..T0-8.1s
    and a restart at T0-6s in between; it is back (same labels) from T0-3s. --at is T0-5s: at
    --at tfs-1 is 4 s past its last scrape (interval 1 s) while tfs-0 was scraped after it; when
    the report runs, now - (its last sample) is some seconds. The base calls come more than two
    hours before T0: the busiest hour's rate windows reach an hour before the 1 h window's first
    hour boundary, wherever T0 falls in the hour (at T0 - 100 min they were read as traffic when
    a boundary fell more than 36 min before T0)."""
    base_labels = {"job": name, "scenario": name}
    start = T0 - 3 * HOUR
    p0 = Pod(every(1, start, T0), {**base_labels, "instance": "tfs-0"})
    p1 = Pod(every(1, start, T0), {**base_labels, "instance": "tfs-1"}, lost=((T0 - 8, T0 - 3),))
    base = tuple(T0 - 170 * MIN + 10.0 * i for i in range(20))
    calls = tuple(T0 - 8.9 + 0.04 * i for i in range(20))
    x = counter(p1, METRIC, own(model), (*base, *calls), (T0 - 6,))
    return [counter(p0, METRIC, own(model), base), x, up(p0), up(p1)]


add("at-seconds-ago", seconds_ago, at=T0 - 5, modes=("raw-1h", "coverage-1h"))

# ---------------------------------------------------------------------------------------------


def _number(v: float) -> str:
    if v != v:
        return "NaN"
    return str(int(v)) if v == int(v) else repr(v)


def write(path: Path) -> None:
    def head(metric: str, labels: dict[str, str]) -> str:
        return f"{metric}{{{','.join(f'{k}={chr(34)}{v}{chr(34)}' for k, v in labels.items() if v)}}}"

    families: dict[str, list[str]] = {}
    for c in CASES.values():
        for s in c.series:
            h = head(s.metric, s.labels)
            families.setdefault(s.metric, []).extend(
                f"{h} {_number(v)} {t:.3f}\n"
                for t, v in zip(s.times.tolist(), s.values.tolist(), strict=True)
            )
    with path.open("w", encoding="utf-8") as f:
        for metric, lines in families.items():
            f.write(f"# TYPE {metric} {'gauge' if metric == 'up' else 'unknown'}\n")
            f.writelines(lines)
        f.write("# EOF\n")


@dataclass
class World:
    url: str
    root: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("attacks21f")
    write(root / "history.om")
    backfill(root / "history.om", root / "tsdb")
    with Prometheus(root / "tsdb", root / "prometheus") as server:
        yield World(server.url, root)


MODES: dict[str, tuple[bool, tuple[str, ...], str]] = {
    # mode -> (--coverage, more options, more --selector matchers ({m}: the model label, {model}))
    "raw": (False, (), ""),
    "coverage": (True, (), ""),
    "threshold": (False, ("--threshold", "0.001"), ""),
    "split": (False, ("--split-by-model",), ""),
    "window12h-step5m": (True, ("--window", "12h", "--step", "5m"), ""),
    "selector-model": (False, (), ',{m}="{model}"'),
    "raw-1h": (False, ("--window", "1h"), ""),
    "coverage-1h": (True, ("--window", "1h"), ""),
}


def report(url: str, root: Path, case: Case, mode: str) -> dict[str, object]:
    coverage, extra, matchers = MODES[mode]
    models = root / "models" / case.name
    if not models.exists():
        make_model_tree(models, case.disk, END)
    selector = f'scenario="{case.name}"' + matchers.format(m=case.model_label, model=case.model)
    args = ["--prometheus", url, "--model-dir", str(models), "--selector", selector, "--at", f"{case.at:.3f}"]
    if coverage:
        args += ["--coverage", f'up{{scenario="{case.name}"}}']
    run = run_cli("report", *args, *case.preset, "--format", "json", *extra)
    assert run.exit_code in (0, 4), run.stderr
    doc = run.json()
    assert isinstance(doc, dict)
    assert set(statuses(doc).values()) <= {"safe", "unknown", "in-use", "protected"}
    return doc


def params(names: Sequence[str], broken: dict[str, dict[str, str]]) -> list[object]:
    out: list[object] = []
    for name in names:
        for mode in CASES[name].modes:
            reason = broken.get(name, {}).get(mode)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(name, mode, id=f"{name}-{mode}", marks=marks))
    return out


def assert_not_safe(doc: dict[str, object], case: Case) -> None:
    row = rows(doc).get((case.model, "1"))
    assert statuses(doc)[(case.model, "1")] != "safe", (row, doc["header"])


@pytest.mark.parametrize(("name", "mode"), params(list(CASES), BROKEN))
def test_version_1_is_not_safe(world: World, name: str, mode: str) -> None:
    case = CASES[name]
    assert_not_safe(report(world.url, world.root, case, mode), case)


# Premises: the held cases hold because of the change under attack. Without the re-read
# (`_recheck_ended` a no-op) the flat ended series are safe; without `came_back` (the clock read
# as before --at, so `now <= at`) the targets that came back are taken as replaced.
HELD_BY_RECHECK = ("up-two-ended", "stamped-1ms-late-ended", "recreated-twice-ended", "last-minutes-ended")
HELD_BY_CAME_BACK = ("at-lost-back-down", "at-lost-back-once", "at-seconds-ago")


@pytest.mark.parametrize("name", HELD_BY_RECHECK)
def test_without_the_re_read_the_case_is_safe(
    world: World, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(raw_source, "_recheck_ended", lambda client, params, at, facts, targets: facts)
    case = CASES[name]
    doc = report(world.url, world.root, case, "raw")
    assert statuses(doc)[(case.model, "1")] == "safe", rows(doc)[(case.model, "1")]


@pytest.mark.parametrize("name", HELD_BY_CAME_BACK)
def test_without_came_back_the_case_is_safe(world: World, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(up_module, "time", SimpleNamespace(time=lambda: 0.0))
    case = CASES[name]
    doc = report(world.url, world.root, case, case.modes[0])
    assert statuses(doc)[(case.model, "1")] == "safe", rows(doc)[(case.model, "1")]


# Servers that lie: a proxy in front of the Prometheus adds `warnings` (or VictoriaMetrics'
# `isPartial`) to the answers of one query; the case is one retire calls safe on honest answers
# (a false safe above), so only the lie's handling can make it anything else.
@contextmanager
def lying(upstream: str, pattern: str, change: dict[str, object]) -> Iterator[str]:
    """A proxy to `upstream` that merges `change` into the answer of each query matching `pattern`."""
    match = re.compile(pattern)
    client = httpx.Client(base_url=upstream, timeout=60)

    class H(BaseHTTPRequestHandler):
        def _forward(self, body: bytes | None) -> None:
            headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
            answer = client.request(self.command, self.path, content=body, headers=headers)
            content = answer.content
            form = {k: v[0] for k, v in parse_qs((body or b"").decode()).items()}
            if match.search(form.get("query", "")) and answer.status_code == 200:
                content = json.dumps({**answer.json(), **change}).encode()
            self.send_response(answer.status_code)
            self.send_header("content-type", answer.headers.get("content-type", "application/json"))
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def do_GET(self) -> None:
            self._forward(None)

        def do_POST(self) -> None:
            self._forward(self.rfile.read(int(self.headers.get("content-length", 0))))

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        client.close()


WARNED = {"warnings": ["injected: some of the data may be missing"]}
PARTIAL = {"isPartial": True}
CAME_BACK_Q = r"^count_over_time\(up\{.*\}\[\d+m?s\]\)$"  # one target's `up` after its last sample
RE_READ_Q = r"^:tensorflow:serving:model_call_count\{.*\}\[86400s\]$"  # `_created_anew`'s re-read
UP_POINTS_Q = r"^up\{.*\}\[86400s\]$"  # `up_points`: the target's raw `up` over the window
NOT_REPLACED = "was not shown to be replaced"
NOT_RE_READ = "ended and could not be re-read against them"
LIES = {
    "came-back-warned": ("at-lost-back-relabelled", CAME_BACK_Q, WARNED, NOT_REPLACED),
    "came-back-partial": ("at-lost-back-relabelled", CAME_BACK_Q, PARTIAL, NOT_REPLACED),
    "re-read-partial": ("first-minutes", RE_READ_Q, PARTIAL, NOT_RE_READ),
    "up-points-warned": ("first-minutes", UP_POINTS_Q, WARNED, NOT_RE_READ),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_a_lie_on_the_new_queries_is_not_safe(world: World, lie: str) -> None:
    name, pattern, change, said = LIES[lie]
    case = CASES[name]
    with lying(world.url, pattern, change) as url:
        doc = report(url, world.root, case, "raw")
    assert_not_safe(doc, case)
    assert said in str(rows(doc)[(case.model, "1")]["reason"])


@pytest.mark.parametrize("name", ["first-minutes"])
def test_the_proxy_alone_changes_nothing(world: World, name: str) -> None:
    """Control of the lies: through the proxy with no lie, the same verdict as without it."""
    case = CASES[name]
    with lying(world.url, r"(?!)", WARNED) as url:
        proxied = report(url, world.root, case, "raw")
    direct = report(world.url, world.root, case, "raw")
    assert statuses(proxied) == statuses(direct)


# The same history in VictoriaMetrics (the lab's, `-search.latencyOffset=0s`): each case in its
# first mode and, where it has one, with --coverage. VictoriaMetrics ignores the NaN `up` sample
# (its sum_over_time stays finite: nan-up-* are re-read and in-use there). It counts a sample just
# before a range's start: `came_back`'s range once began 1 ms after the target's last sample, so
# every ended target read as back there (the replaced-pod inference lost); it now begins half an
# interval after it, and VictoriaMetrics reads the relabelled comeback as Prometheus does.
@pytest.fixture(scope="module")
def vm_world(world: World) -> Iterator[World]:
    text = world.root / "history.txt"
    with (world.root / "history.om").open(encoding="utf-8") as f, text.open("w", encoding="utf-8") as out:
        for line in f:
            if not line.startswith("#"):
                head, ts = line.rstrip("\n").rsplit(" ", 1)
                out.write(f"{head} {round(float(ts) * 1000)}\n")
    with VictoriaMetrics(world.root / "vm") as server:
        server.load(text)
        yield World(server.url, world.root)


def vm_modes_of(name: str) -> list[str]:
    modes = CASES[name].modes
    return [modes[0], *(m for m in modes[1:] if m.startswith("coverage"))]


VM_BROKEN: dict[str, dict[str, str]] = {
    name: {m: f"as on Prometheus: {BROKEN[name][m]}" for m in vm_modes_of(name) if m in BROKEN.get(name, {})}
    for name in ("failed-scrape-ended", "at-lost-back-relabelled", "lost-back-relabelled-at-end")
}


VM_CASES = (
    "first-minutes",
    "first-minutes-12h",
    "finer-ended",
    "slow-owner-up",
    "nan-up-ended",
    "nan-up-present",
    "up-two-ended",
    "stamped-1ms-late-ended",
    "failed-scrape-ended",
    "at-lost-back-relabelled",
    "lost-back-relabelled-at-end",
    "at-lost-back-down",
    "at-seconds-ago",
)


def vm_params() -> list[object]:
    out: list[object] = []
    for name in VM_CASES:
        for mode in vm_modes_of(name):
            reason = VM_BROKEN.get(name, {}).get(mode)
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            out.append(pytest.param(name, mode, id=f"vm-{name}-{mode}", marks=marks))
    return out


@pytest.mark.parametrize(("name", "mode"), vm_params())
def test_version_1_is_not_safe_on_victoriametrics(vm_world: World, name: str, mode: str) -> None:
    case = CASES[name]
    assert_not_safe(report(vm_world.url, vm_world.root, case, mode), case)


@pytest.mark.parametrize("name", ["at-lost-back-down", "at-lost-back-once"])
def test_on_victoriametrics_came_back_sees_a_comeback_after_at(
    vm_world: World, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`came_back` on VictoriaMetrics: tfs-1, back under its own labels after --at, is not shown
    to be replaced (unknown); with `came_back` off (the clock read as before --at) it is taken as
    replaced and version 1 is safe, so `came_back` is what holds it there."""
    case = CASES[name]
    doc = report(vm_world.url, vm_world.root, case, "raw")
    row = rows(doc)[(case.model, "1")]
    assert row["status"] == "unknown" and NOT_REPLACED in str(row["reason"]), row
    monkeypatch.setattr(up_module, "time", SimpleNamespace(time=lambda: 0.0))
    doc = report(vm_world.url, vm_world.root, case, "raw")
    assert statuses(doc)[(case.model, "1")] == "safe", rows(doc)[(case.model, "1")]

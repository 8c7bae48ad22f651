"""Regression cases the oracle found: each (seed, mode) rebuilds its world with generate(seed) and
must show no false safe in that mode. Found by `scripts/oracle.sh --worlds 500 --seed 1` on main
(tests/oracle/BEFORE.md); strict xfails while main still fails them, naming the problem.

All worlds share one Prometheus (started once for the module, stopped after it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.oracle.runner import MODE, Lab, Outcome, build_lab, run
from tests.oracle.worlds import World, generate

pytestmark = pytest.mark.prometheus

LAG = "samples stop minutes before T (ingestion lag): the last calls are never stored"
UNDER_READ = (
    "--threshold above 0: the busiest step under-read (calls between rate windows, a burst creating a series)"
)
RESTART = "a restarted TF Serving counter back at its old value reads as flat"
# (seed, mode, the known problem it shows on main; "" once fixed)
CASES: tuple[tuple[int, str, str], ...] = (
    (100009, "coverage", f"{LAG} (Triton)"),
    (100060, "coverage", "nothing stored from 15 minutes before T (Prometheus down), shorter than --max-gap"),
    (100382, "coverage", "pods down for the last 3 and 11 minutes, gaps shorter than --max-gap"),
    (100029, "coverage", RESTART),
    (100058, "window-2h", f"{RESTART} (TorchServe)"),
    (100051, "raw", "a pod down at the end, its calls unseen without --coverage"),
    (100001, "threshold", f"{UNDER_READ} (TorchServe)"),
    (
        100000,
        "sel-models",
        "--selector listing the models on disk hides a renamed model's series (delta-prod)",
    ),
    (
        100025,
        "sel-models",
        f"--selector listing the models on disk hides a series with no model label; {LAG}",
    ),
    (
        100057,
        "sel-versions",
        "--selector on versions hides TorchServe's default-label and no-version-label series",
    ),
    (100141, "sel-job", "--selector on one job hides a renamed model's series (delta-prod) on the other job"),
    (100012, "rules-threshold", f"{UNDER_READ}, from recording rules"),
    (100107, "rules-step-1m", "recording rules with --step 1m miss stored calls (Triton)"),
    (
        100290,
        "threshold",
        "a TorchServe series wiped by a restart 9 hours before T and created anew 13 minutes before "
        "it: no sample for whole steps between its two lives (range answers have no point there)",
    ),
    (
        100241,
        "threshold",
        "a series born 200 minutes before T, created anew 18 minutes before it (a restart, then two "
        "calls): over the window its samples outnumber the scrapes since its first boundary",
    ),
    (
        100042,
        "threshold",
        "a series born in the window and created anew within the same step (a restart, then one "
        "call) reads as one call: its first incarnation's call is in no count",
    ),
)


# Every case passes now; a seed found failing goes here, with its xfail, until it is fixed.
OPEN: set[tuple[int, str]] = set()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Lab, dict[int, World]]]:
    seeds = sorted({seed for seed, _, _ in CASES})
    worlds = {seed: generate(seed) for seed in seeds}
    built = build_lab(list(worlds.values()), tmp_path_factory.mktemp("seeds") / "lab", say=lambda text: None)
    try:
        yield built, worlds
    finally:
        built.stop()


@pytest.mark.parametrize(
    ("seed", "mode"),
    [
        pytest.param(
            seed,
            mode,
            marks=pytest.mark.xfail(strict=True, reason=known) if (seed, mode) in OPEN else (),
            id=f"{seed}-{mode}",
        )
        for seed, mode, known in CASES
    ],
)
def test_no_false_safe(lab: tuple[Lab, dict[int, World]], seed: int, mode: str) -> None:
    built, worlds = lab
    world = worlds[seed]
    out = run(built, [(world, MODE[mode])], workers=1, out=Outcome())
    assert not out.errors, out.errors
    assert not out.false_safes, "\n".join(f.line() for f in out.false_safes)

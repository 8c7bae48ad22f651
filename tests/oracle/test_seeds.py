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

# (seed, mode, the known problem it shows; "" once fixed)
CASES: tuple[tuple[int, str, str], ...] = ()


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
            marks=pytest.mark.xfail(strict=True, reason=known) if known else (),
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

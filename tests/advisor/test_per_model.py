"""Evidence per model (stock TF Serving): each model's answers stand for all its versions.

Pure advisor tests on hand-built evidence, keyed by version "" as the per-model queries answer."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from retire.advisor import Policy, advise
from retire.sources.disk.inventory import Inventory
from retire.sources.prometheus.evidence import Scope, SeriesFacts
from tests.advisor.test_verdicts import AT, NO_PROTECTION, disk, evidence

PER_MODEL = replace(NO_PROTECTION, per_model=True)


def _statuses(inv: list, ev: object, policy: Policy = PER_MODEL) -> dict[tuple[str, str], str]:
    report = advise(Inventory((Path("/m"),), tuple(inv)), ev, policy, generated_at=AT)  # type: ignore[arg-type]
    return {(r.model, r.version): r.status.value for r in report.rows()}


def _flat(model: str, pod: str = "p") -> SeriesFacts:
    return SeriesFacts(model, "", (("pod", pod),), 7, 7)


def test_a_called_model_has_every_version_in_use_and_an_idle_one_every_version_safe() -> None:
    ev = evidence(
        qps={("busy", ""): 0.5, ("idle", ""): 0.0},
        last={("busy", ""): 0.5, ("idle", ""): 0.0},
        series=[SeriesFacts("busy", "", (("pod", "p"),), 10, 900), _flat("idle")],
    )
    inv = [disk("busy", 1), disk("busy", 2), disk("idle", 1), disk("idle", 2), disk("never", 1)]
    assert _statuses(inv, ev) == {
        ("busy", "1"): "in-use",
        ("busy", "2"): "in-use",
        ("idle", "1"): "safe",
        ("idle", "2"): "safe",
        ("never", "1"): "safe",
    }
    report = advise(Inventory((Path("/m"),), tuple(inv)), ev, PER_MODEL, generated_at=AT)
    assert all(r.reason.startswith("whole model: ") for r in report.rows())


def test_without_the_spread_the_same_evidence_is_a_version_label_doubt() -> None:
    """Read per version, answers under "" are calls that name no version: never safe either."""
    ev = evidence(qps={("busy", ""): 0.5}, series=[SeriesFacts("busy", "", (("pod", "p"),), 10, 900)])
    got = _statuses([disk("busy", 1)], ev, NO_PROTECTION)
    assert got[("busy", "1")] != "safe"


def test_a_model_with_no_directory_stays_one_row_under_no_version() -> None:
    ev = evidence(qps={("gone", ""): 0.2}, series=[SeriesFacts("gone", "", (("pod", "p"),), 1, 90)])
    assert _statuses([disk("kept", 1)], ev)[("gone", "")] == "not-on-disk"


def test_series_outside_the_selector_make_every_version_of_their_model_unknown() -> None:
    ev = replace(
        evidence(qps={("m", ""): 0.0}, last={("m", ""): 0.0}, series=[_flat("m")]),
        scope=Scope(selector='job="a"', outside=frozenset({("m", "")}), unscoped_models=frozenset({"m"})),
    )
    assert set(_statuses([disk("m", 1), disk("m", 2)], ev).values()) == {"unknown"}


@settings(max_examples=200, deadline=None)
@given(
    called=st.dictionaries(st.sampled_from(["a", "b", "c"]), st.floats(0.0, 5.0), max_size=3),
    born=st.sets(st.sampled_from(["a", "b", "c"])),
    versions=st.integers(1, 4),
)
def test_no_version_of_a_model_with_any_call_is_ever_safe(
    called: dict[str, float], born: set[str], versions: int
) -> None:
    series = [
        SeriesFacts(m, "", (("pod", "p"),), None if m in born else 5, 5 + (q > 0)) for m, q in called.items()
    ]
    ev = evidence(
        qps={(m, ""): q for m, q in called.items()},
        last={(m, ""): q for m, q in called.items()},
        series=series,
    )
    inv = [disk(m, v) for m in "abc" for v in range(1, versions + 1)]
    got = _statuses(inv, ev)
    for m, q in called.items():
        if q > 0 or m in born:
            assert all(got[(m, str(v))] != "safe" for v in range(1, versions + 1)), (m, got)

"""Hostile inputs to the advisor's tables (issue #15's new seams), on hand-built inputs: each
disguise of absence must end in "unknown", never "safe"."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from retire.advisor import Policy, advise
from retire.config import resolve
from retire.servers import SERVERS
from retire.sources.disk.inventory import Inventory
from retire.sources.prometheus.evidence import SeriesFacts, Unlabelled
from tests.advisor.test_verdicts import AT, disk, evidence, status_of

TFS = SERVERS["tfserving-patched"]
POLICY = Policy(
    keep_latest=0, min_age=0, label_is_version=TFS.label_is_version, unattributed=TFS.unattributed
)


def flat(model: str, version: str) -> SeriesFacts:
    return SeriesFacts(model, version, (("model_name", model), ("model_version", version)), 7, 7)


def test_calls_with_an_empty_version_label_may_have_reached_any_version() -> None:
    """In Prometheus an empty label is no label: calls counted under `model_version=""` name no
    version, so each version of that model may have had them, even one with its own flat series."""
    busy = SeriesFacts("m", "", (("model_name", "m"), ("model_version", "")), 0, 100)
    ev = evidence(qps={("m", ""): 1.0, ("m", "1"): 0.0}, series=[busy, flat("m", "1")])
    got = status_of([disk("m", 1), disk("m", 2)], ev, POLICY)
    assert got[("m", "1")] == "unknown" and got[("m", "2")] == "unknown"


def test_calls_with_an_empty_model_label_may_have_reached_any_model() -> None:
    """The queries never return a series with no model label (they ask for both labels); the
    unlabelled_series query counts them, and any such series makes the whole fleet unknown."""
    busy = SeriesFacts("", "1", (("model_name", ""), ("model_version", "1")), 0, 100)
    ev = evidence(qps={("", "1"): 1.0, ("m", "1"): 0.0}, series=[busy, flat("m", "1")])
    ev = replace(ev, unlabelled=Unlabelled(no_model=1, metric="calls"))
    got = status_of([disk("m", 1)], ev, POLICY)
    assert got[("m", "1")] == "unknown"


def test_series_with_no_version_label_make_their_model_unknown() -> None:
    """The unlabelled_series query's count of a model's series with no version label: every
    would-be-safe version of that model is unknown, other models are not touched."""
    ev = evidence(qps={("m", "1"): 0.0, ("n", "1"): 0.0}, series=[flat("m", "1"), flat("n", "1")])
    ev = replace(ev, unlabelled=Unlabelled(no_version={"m": 2}, metric="calls", matchers='job="x"'))
    report = advise(
        Inventory((Path("/m"),), (disk("m", 1), disk("m", 2), disk("n", 1))), ev, POLICY, generated_at=AT
    )
    got = {(r.model, r.version): r for r in report.rows()}
    assert {k: r.status.value for k, r in got.items()} == {
        ("m", "1"): "unknown",
        ("m", "2"): "unknown",
        ("n", "1"): "safe",
    }
    assert 'count by (model_name) (calls{model_version="",job="x"})' in got[("m", "2")].reason


@pytest.mark.parametrize(
    "given",
    [
        {"threshold": math.nan},  # compared false with every rate: every version was idle
        {"threshold": math.inf},
        {"threshold": -0.5},
        {"keep_latest": -1},
        {"min_age": math.nan},
        {"min_age": -1.0},
    ],
)
def test_a_policy_the_advisor_cannot_compare_with_is_refused(given: dict[str, float]) -> None:
    """advise() is public: a library user's Policy skips config's parsers."""
    with pytest.raises(ValueError, match=f"Policy.{next(iter(given))}"):
        Policy(**given)  # type: ignore[arg-type]


def test_a_pin_protects_a_torchserve_version_written_with_leading_zeros() -> None:
    """Pins are read by TF Serving's number rule whatever the preset (`m:01` pins m/1), so that a
    pin matches more than the server loads, never less; TorchServe joins versions as written, so
    its version `01` was not pinned by `--pin m:01` and stayed safe."""
    ts = SERVERS["torchserve"]
    pins = resolve({"pin": ["m:01"], "preset": "torchserve"}, env={}).pin
    policy = Policy(keep_latest=0, min_age=0, pins=pins, unattributed=ts.unattributed)
    inv = [replace(disk("m", 1), version="01", path="/m/m/01"), disk("m", 9)]
    ev = evidence(qps={("m", "01"): 0.0, ("m", "9"): 0.0}, series=[flat("m", "01"), flat("m", "9")])
    assert status_of(inv, ev, policy) == {("m", "01"): "protected", ("m", "9"): "safe"}

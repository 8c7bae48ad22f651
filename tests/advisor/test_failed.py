"""Failed calls counted apart (Evidence.failed): the pure rule, on hand-built evidence."""

from __future__ import annotations

import math
from dataclasses import replace

from retire.sources.prometheus.evidence import SeriesFacts, VersionValue
from tests.advisor.test_verdicts import disk, evidence, status_of


def _idle(*versions: int) -> object:
    series = [SeriesFacts("a", str(v), (("pod", "p"),), 0, 0) for v in versions]
    return evidence(qps={("a", str(v)): 0.0 for v in versions}, series=series)


def test_a_version_with_failed_calls_is_unknown_and_the_others_stay_safe() -> None:
    ev = replace(_idle(1, 2), failed=(VersionValue("a", "1", 3.0),))  # type: ignore[type-var]
    assert status_of([disk("a", 1), disk("a", 2)], ev) == {("a", "1"): "unknown", ("a", "2"): "safe"}


def test_a_failure_count_that_is_not_a_number_is_still_a_failure() -> None:
    ev = replace(_idle(1), failed=(VersionValue("a", "1", math.nan),))  # type: ignore[type-var]
    assert status_of([disk("a", 1)], ev) == {("a", "1"): "unknown"}


def test_failures_of_a_version_not_on_disk_change_nothing_on_disk() -> None:
    ev = replace(_idle(1), failed=(VersionValue("a", "9", 3.0),))  # type: ignore[type-var]
    assert status_of([disk("a", 1)], ev)[("a", "1")] == "safe"

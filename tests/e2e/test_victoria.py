"""VictoriaMetrics single-node, same history as the Prometheus tests: the same verdicts."""

from __future__ import annotations

import pytest

from tests import scenarios as sc
from tests.conftest import Lab, rows, run_cli, statuses

pytestmark = pytest.mark.prometheus


def _report(lab: Lab, scenario: sc.Scenario, coverage: bool = True) -> tuple[int, dict]:
    run = run_cli("report", *lab.args(scenario, "--format", "json", coverage=coverage))
    assert run.exit_code in (0, 4), run.stderr
    return run.exit_code, run.json()  # type: ignore[return-value]


@pytest.mark.parametrize("scenario", sc.ALL, ids=lambda s: s.name)
@pytest.mark.parametrize("coverage", [True, False])
def test_same_verdicts_as_prometheus(lab: Lab, vm_lab: Lab, scenario: sc.Scenario, coverage: bool) -> None:
    prom_code, prom = _report(lab, scenario, coverage)
    vm_code, vm = _report(vm_lab, scenario, coverage)
    assert statuses(vm) == statuses(prom)
    assert vm_code == prom_code
    # Counted calls come from raw counter values, so they agree exactly. Rates differ by design:
    # MetricsQL's rate also uses the sample just before its window (so it sees the call between
    # hourly windows that Prometheus misses) and divides by the span its samples cover, not the
    # window. It never sees traffic where Prometheus does not.
    for key, p in rows(prom).items():
        v = rows(vm)[key]
        assert v["calls"] == p["calls"], key
        if p["max_hourly_qps"]:
            assert v["max_hourly_qps"], key


def test_basic_expected_on_victoria(vm_lab: Lab) -> None:
    _, doc = _report(vm_lab, sc.BASIC)
    assert statuses(doc) == sc.BASIC_EXPECTED

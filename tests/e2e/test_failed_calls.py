"""Failed calls counted apart from served ones (Triton's nv_inference_request_failure), end to end
against real Prometheus: a version whose calls fail is still asked for, so it is never safe."""

from __future__ import annotations

import pytest

from tests import scenarios as sc
from tests.conftest import Lab, rows, run_cli, statuses

pytestmark = pytest.mark.prometheus


@pytest.mark.parametrize(
    "extra",
    [(), ("--threshold", "0.05"), ("--split-by-model",), ("--window", "6h")],
    ids=["default", "threshold", "split", "window-6h"],
)
def test_failed_calls_are_never_safe(lab: Lab, extra: tuple[str, ...]) -> None:
    run = run_cli("report", "--format", "json", *lab.args(sc.TRITON_FAIL), "--keep-latest", "0", *extra)
    assert run.exit_code == 4, run.stderr
    doc = run.json()
    assert statuses(doc) == sc.TRITON_FAIL_EXPECTED  # type: ignore[arg-type]
    assert "of its calls failed in the window" in rows(doc)[("scorer", "1")]["reason"]  # type: ignore[arg-type]
    assert "failed_calls" in doc["header"]["queries"]  # type: ignore[index]


def test_the_failure_query_is_sent_only_where_the_server_counts_failures() -> None:
    assert "failed_calls" in run_cli("query", "--preset", "triton").stdout
    assert "failed_calls" not in run_cli("query").stdout

"""Numbers in JSON and CSV as numbers of the right kind: integer counts, rates rounded to 6
significant digits, booleans as true/false, times in RFC 3339, and strictly valid JSON."""

from __future__ import annotations

import csv
import io
import json
import math
import re

import pytest

from retire.formats.csv import _csv_cell
from retire.formats.records import count, rate
from tests import scenarios
from tests.conftest import Lab, run_cli

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def _strict(text: str) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def test_rates_have_six_significant_digits() -> None:
    assert rate(0.32499999999999996) == 0.325
    assert rate(1 / 3) == 0.333333
    assert rate(123456789.123) == 123457000.0
    assert rate(2.5e-9) == 2.5e-9
    assert rate(0.0) == 0.0 and isinstance(rate(0.0), float)
    assert rate(None) is None
    assert rate(math.nan) == "NaN" and rate(math.inf) == "+Inf" and rate(-math.inf) == "-Inf"


def test_counts_are_integers_when_whole() -> None:
    assert count(25884.0) == 25884 and type(count(25884.0)) is int
    assert count(0.0) == 0 and type(count(0.0)) is int
    assert count(2.5) == 2.5
    assert count(1e300) == int(1e300)  # still an exact integer, not 1e+300
    assert count(None) is None and count(math.nan) == "NaN"


def test_csv_booleans() -> None:
    assert _csv_cell(True) == "true" and _csv_cell(False) == "false"
    assert _csv_cell(1) == 1 and _csv_cell("True") == "True"


@pytest.mark.prometheus
@pytest.mark.parametrize("scenario", [scenarios.BASIC, scenarios.PITFALLS], ids=lambda s: s.name)
def test_json_number_kinds(lab: Lab, scenario: scenarios.Scenario) -> None:
    run = run_cli("report", *lab.args(scenario), "--format", "json")
    doc = _strict(run.stdout)
    assert isinstance(doc, dict)
    h = doc["header"]
    for key in ("generated_at", "evaluated_at", "window_start"):
        assert RFC3339.match(h[key]), (key, h[key])
    assert type(h["window_seconds"]) is int and type(h["step_seconds"]) is int
    assert type(h["policy"]["min_age_seconds"]) is int
    for row in doc["rows"]:
        assert type(row["on_disk"]) is bool
        assert type(row["series"]) is int
        assert row["size_bytes"] is None or type(row["size_bytes"]) is int
        assert row["calls"] is None or type(row["calls"]) is int, row
        qps = row["max_hourly_qps"]
        assert qps is None or (
            type(qps) is float and len(f"{qps:.15g}".lstrip("0.").replace(".", "")) <= 6
        ), qps
        for p in row.get("hourly_qps", []):
            assert p is None or (type(p) is float and float(f"{p:.6g}") == p), p


@pytest.mark.prometheus
def test_csv_number_kinds(lab: Lab) -> None:
    run = run_cli("report", *lab.args(scenarios.BASIC, "--threshold", "0.01"), "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(run.stdout)))
    assert rows
    for row in rows:
        assert row["on_disk"] in ("true", "false"), row
        assert re.fullmatch(r"\d*", row["calls"]), row  # 25884, never 25884.0
        assert re.fullmatch(r"\d*", row["series"]) and re.fullmatch(r"\d*", row["size_bytes"])
        if row["max_hourly_qps"]:
            assert float(row["max_hourly_qps"]) == float(f"{float(row['max_hourly_qps']):.6g}")
            assert len(row["max_hourly_qps"]) <= 12, row
    assert "True" not in run.stdout and "False" not in run.stdout


@pytest.mark.prometheus
def test_since_last_times_are_rfc3339(lab: Lab, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    last = tmp_path / "last.json"
    args = lab.args(scenarios.BASIC)
    run_cli("report", *args, "--format", "json", "--since-last", str(last))
    doc = _strict(run_cli("report", *args, "--format", "json", "--since-last", str(last)).stdout)
    assert isinstance(doc, dict)
    assert RFC3339.match(doc["since_last"]["previous_evaluated_at"])
    assert isinstance(_strict(last.read_text()), dict)

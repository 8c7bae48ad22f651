"""The per-version table (retire.sources.prometheus.table): declared once, produced alike by both
evidence sources, and refused when a source leaves a column out."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from retire.sources.prometheus import table
from retire.sources.prometheus.buckets import StepBounds
from retire.sources.prometheus.evidence import Coverage, Evidence, SeriesFacts, VersionFacts, VersionValue
from retire.sources.prometheus.raw_facts import per_version

AT = 1_800_000_000.0


def evidence(**kw: object) -> Evidence:
    return Evidence(
        "http://prom:9090",
        AT,
        86400,
        3600,
        (),
        (VersionValue("m", "1", 0.5), VersionValue("m", "2", math.nan)),
        (VersionValue("m", "3", 0.0),),
        (SeriesFacts("m", "1", (("p", "0"),), 5.0, 9.0), SeriesFacts("x", "7", (("p", "0"),), None, 2.0)),
        Coverage(True, "up", 900),
        **kw,
    )  # type: ignore[arg-type]


def test_each_column_is_declared_once_with_its_meaning() -> None:
    names = [c.name for c in table.COLUMNS]
    assert len(names) == len(set(names)) == len(table.BY_NAME)
    assert all(c.means and c.dtype for c in table.COLUMNS)
    assert table.COLUMNS[:2] == (table.MODEL, table.VERSION)
    assert set(table.SOURCE_COLUMNS) <= set(table.VALUES)


@pytest.mark.parametrize("source", ["raw", "rules"])
def test_both_sources_give_the_declared_columns_in_their_declared_types(source: str) -> None:
    steps = {("m", "1"): StepBounds(0.1, 0.2)}
    if source == "rules":
        ev = evidence(recorded=(VersionFacts("m", "1", 1.0, 4.0, 0.0),), steps=steps)
    else:
        ev = evidence(steps=steps)
    frame = ev.per_version()
    assert list(frame.columns) == [c.name for c in table.COLUMNS]
    assert [str(frame[c.name].dtype) for c in table.COLUMNS] == [c.dtype for c in table.COLUMNS]
    # A version no query of a kind answered for has that kind's declared fill.
    row = frame.set_index(["model", "version"]).loc[("m", "3")]
    for c in table.SOURCE_COLUMNS:
        if isinstance(c.fill, float) and math.isnan(c.fill):
            assert math.isnan(row[c.name]), c.name
        else:
            assert row[c.name] == c.fill, c.name
    assert table.STEP_HIGH.of(frame).tolist()[0] == 0.2


def test_a_source_part_without_a_declared_column_is_refused() -> None:
    """A column a source forgot would be filled with its no-evidence default, which may read as
    "no doubt": the table refuses the part instead."""
    whole = per_version([SeriesFacts("m", "1", (("p", "0"),), 5.0, 9.0)], 900)
    short = table.SourcePart(
        whole.model, whole.version, lambda k: whole.per_version(k).drop(columns=[table.RESETS.name])
    )
    with pytest.raises(ValueError, match="resets"):
        table.assemble([], [], short, {})


def test_columns_are_read_as_their_declared_types() -> None:
    frame = pd.DataFrame({"series": [1, 2], "calls": [1.0, None], "max_qps_seen": [True, False]})
    assert table.SERIES.of(frame).dtype == "int64"
    assert math.isnan(table.CALLS.of(frame)[1])
    assert table.MAX_QPS_SEEN.of(frame).dtype == bool

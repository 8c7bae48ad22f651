"""The advisor's parts on hand-built inputs: the doubt and protection tables, the columns the
sources hand over, and the one per-version frame the evidence gives whatever its source."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from retire.advisor import Policy, Status, advise
from retire.advisor.doubts import DOUBTS
from retire.advisor.protections import PROTECTIONS
from retire.sources.columns import Columns, categorical, factorize, pairs
from retire.sources.disk.inventory import DiskVersion, Inventory
from retire.sources.prometheus.evidence import (
    Coverage,
    Evidence,
    SeriesFacts,
    VersionFacts,
    VersionValue,
)
from retire.sources.prometheus.raw_facts import went_down

AT = 1_800_000_000.0
OLD = AT - 30 * 86400


def evidence(series: list[SeriesFacts], qps: list[VersionValue], **kw: object) -> Evidence:
    return Evidence(
        "http://prom:9090",
        AT,
        86400,
        3600,
        (),
        tuple(qps),
        (),
        tuple(series),
        Coverage(True, "up", 900),
        **kw,
    )  # type: ignore[arg-type]


def test_each_doubt_and_protection_is_one_named_entry() -> None:
    names = [d.name for d in DOUBTS] + [p.name for p in PROTECTIONS]
    assert len(names) == len(set(names))
    assert sorted(d.summary_rank for d in DOUBTS) == list(range(len(DOUBTS)))


def test_columns_read_as_the_records_they_hold() -> None:
    records = [DiskVersion("a", str(v), v, f"/m/a/{v}", 10 * v, OLD, OLD) for v in (1, 2, 3)]
    columns = Columns.of(DiskVersion, records)
    assert list(columns) == records
    assert columns == records
    assert columns[1] == records[1] and columns[-1] == records[-1]
    assert list(columns[1:]) == records[1:]
    assert list(columns + records[:1]) == [*records, records[0]]
    # Numbers kept as numpy arrays come back as Python numbers, models as categorical codes as text.
    packed = Columns(
        DiskVersion,
        {
            "model": categorical(["a", "a", "a"]),
            "version": ["1", "2", "3"],
            "number": np.array([1, 2, 3]),
            "path": [r.path for r in records],
            "size_bytes": np.array([10, 20, 30]),
            "mtime": np.full(3, OLD),
            "ctime": np.full(3, OLD),
        },
    )
    assert list(packed) == records
    assert type(packed[0].number) is int


def test_codes_are_numbered_in_the_order_first_seen_across_parts() -> None:
    codes, names = factorize(["b", "a"], categorical(["c", "a", "c"]), ["d"])
    assert list(names) == ["b", "a", "c", "d"]
    assert codes.tolist() == [0, 1, 2, 1, 2, 3]
    # Pairs in (first, second) order, with or without the grid of all pairs.
    first, second = np.array([1, 0, 1, 0]), np.array([0, 1, 0, 0])
    for n_first in (2, 10**6):
        unique, inverse = pairs(first, second, n_first, 2)
        assert unique.tolist() == [0, 1, 2]
        assert inverse.tolist() == [2, 1, 2, 0]


def test_a_counter_that_went_down_is_decided_in_one_place() -> None:
    cols = {
        "start": [5.0, None, 5.0, 5.0, 5.0],
        "last": [7.0, 3.0, 2.0, 7.0, 7.0],
        "resets": [0.0, 0.0, 0.0, 1.0, math.nan],
    }
    assert went_down(cols).tolist() == [False, False, True, True, True]


def test_columns_and_records_give_the_same_report() -> None:
    """What the advisor reports does not depend on how the sources hand their records over."""
    disk = [DiskVersion("m", str(v), v, f"/m/m/{v}", 100, OLD, OLD) for v in (1, 2, 3)]
    series = [
        SeriesFacts("m", "1", (("p", "0"),), 5.0, 9.0),
        SeriesFacts("m", "2", (("p", "0"),), 5.0, 5.0),
        SeriesFacts("m", "2", (("p", "1"),), 5.0, 2.0, counted=4.0, blind=30.0),
        SeriesFacts("x", "7", (("p", "0"),), 1.0, 1.0),
    ]
    qps = [VersionValue("m", "1", 0.5), VersionValue("m", "3", 0.0)]
    policy = Policy(keep_latest=1, min_age=0)
    as_records = advise(Inventory((Path("/m"),), tuple(disk)), evidence(series, qps), policy, AT)
    as_columns = advise(
        Inventory((Path("/m"),), Columns.of(DiskVersion, disk)),
        evidence(list(Columns.of(SeriesFacts, series)), list(Columns.of(VersionValue, qps))),
        policy,
        AT,
    )
    assert list(as_records.rows()) == list(as_columns.rows())
    assert as_records.summary == as_columns.summary
    got = {(r.model, r.version): r.status for r in as_records.rows()}
    assert got == {
        ("m", "1"): Status.IN_USE,
        ("m", "2"): Status.IN_USE,  # 4 calls counted across the reset
        ("m", "3"): Status.PROTECTED,
        ("x", "7"): Status.NOT_ON_DISK,
    }


def test_one_per_version_frame_whatever_the_source() -> None:
    """Raw series and recording rules reach the advisor as the same columns."""
    raw = evidence([SeriesFacts("m", "1", (("p", "0"),), 5.0, 9.0)], [VersionValue("m", "1", 0.5)])
    recorded = evidence([], [VersionValue("m", "1", 0.5)], recorded=(VersionFacts("m", "1", 1.0, 4.0, 0.0),))
    a, b = raw.per_version(), recorded.per_version()
    assert list(a.columns) == list(b.columns)
    assert a["calls"].tolist() == [4.0] and b["calls"].tolist() == [4.0]
    assert not raw.calls_are_first_calls and recorded.calls_are_first_calls

"""The hand-made reports of tests/builders.py are what advise() makes, so a renderer tested on
them is tested on the real shape."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from retire.advisor import Policy, advise
from retire.formats import ReportFormat, render_report
from retire.sources.disk.inventory import Inventory
from retire.sources.prometheus.evidence import SeriesFacts
from tests.advisor.test_verdicts import AT, disk, evidence
from tests.builders import COLUMNS, report


def test_a_report_rebuilt_from_advise_rows_is_the_same_report() -> None:
    series = [SeriesFacts("a", "2", (("p", "0"),), 10, 100), SeriesFacts("a", "9", (("p", "0"),), 10, 100)]
    ev = evidence(qps={("a", "2"): 0.5, ("a", "9"): 1.0}, series=series)
    inventory = Inventory((Path("/m"),), (disk("a", 1), disk("a", 2), disk("b", 3, age=0)))
    made = advise(inventory, ev, Policy(keep_latest=0, min_age=3600), generated_at=AT)
    assert {r.status.value for r in made.rows()} == {"safe", "in-use", "protected", "not-on-disk"}
    built = report(*[asdict(r) for r in made.rows()], model_roots=made.header.model_roots)
    assert tuple(made.table.columns) == COLUMNS
    assert built.table.dtypes.to_dict() == made.table.dtypes.to_dict()
    assert list(built.rows()) == list(made.rows())
    assert built.summary == made.summary
    assert render_report(built, ReportFormat.CSV) == render_report(made, ReportFormat.CSV)
    table = render_report(made, ReportFormat.TABLE)  # from the column heads on: the header differs
    assert table.index("MODEL") > 0
    assert render_report(built, ReportFormat.TABLE).endswith(table[table.index("MODEL") :])


def test_an_empty_report_has_every_column() -> None:
    assert tuple(report().table.columns) == COLUMNS


def test_the_lab_scenarios_have_names_of_their_own() -> None:
    """Scenarios share one backfilled Prometheus, told apart by their `scenario` label: two of one
    name write the same series twice (promtool: "out of order sample"), and a module attribute
    reused for a new scenario silently replaces another test's."""
    from collections import Counter

    from tests import scenarios as sc

    lab = sc.ALL + sc.ABSENCE + sc.REACH + sc.STOCK_ALL + sc.FAILURES
    assert [n for n, c in Counter(s.name for s in lab).items() if c > 1] == []
    named = [v for k, v in vars(sc).items() if k.isupper() and isinstance(v, sc.Scenario)]
    assert len({id(s) for s in named}) == len(named)

"""Attacks on `python_regex` (RE2 read by Python's `re`) and on `lookalikes`, without a server.

The regex cases compare `python_regex(re2).fullmatch(value)` with what RE2 (Go's regexp, which
Prometheus anchors as `^(?:re2)$`) answers, per https://github.com/google/re2/wiki/Syntax. Where
they differ, a fleet matcher (`Matcher.matches`: the scope checks, the targets the end-of-window
check takes in) disagrees with the series Prometheus selected; with `!~` the disagreement goes the
other way, so every difference hides something in one of the two. The end-to-end false safe of
`(?i)` is in test_live_attacks.py. Every expected value here was checked against Prometheus 2.42
itself (`label_replace`, which anchors its regex as matchers do).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from retire.advisor import advise
from retire.sources.disk.inventory import Inventory
from retire.sources.prometheus.evidence import Scope, SeriesFacts
from retire.sources.prometheus.promql import python_regex
from tests.advisor.test_verdicts import AT, NO_PROTECTION, disk, evidence
from tests.conftest import run_cli

# (RE2, label value, whether RE2 matches the whole value): cases both read alike.
AGREE = [
    ("[[:word:]]+", "a_1", True),
    ("[[:alpha:][:digit:]]+", "a1", True),
    ("\\d", "\u0663", False),  # ARABIC-INDIC DIGIT THREE: RE2's \d is ASCII
    ("\\w+", "é", False),
    ("a|", "", True),
    ("[]a]+", "]a", True),
    ("[^]a]", "b", True),
    ("\\bx\\b", "x", True),
    ("x\\z", "x", True),
    ("(?s:.)", "\n", True),
    ("\\x41", "A", True),
    ("\\101", "A", True),  # octal in both
    ("(?i)ABC", "abc", True),
]


@pytest.mark.parametrize(("re2", "value", "expected"), AGREE)
def test_python_regex_reads_these_as_re2_does(re2: str, value: str, expected: bool) -> None:
    assert (python_regex(re2).fullmatch(value) is not None) is expected


DOT = pytest.mark.xfail(
    strict=True,
    reason="Python's . (re.DOTALL) matches a newline, Prometheus 2.x's does not (3.x reads . as (?s)): "
    "python_regex follows 3.x",
)


@pytest.mark.parametrize(
    ("re2", "value", "expected"),
    [
        ("(?i)équipe", "Équipe", True),  # RE2 folds case over Unicode (re.ASCII folded ASCII only)
        ("(?i)k", "\u212a", True),  # the Kelvin sign
        ("a\\sb", "a\vb", False),  # RE2's \s is [\t\n\f\r ]
        ("a$\n", "a\n", False),  # RE2's $ is only the end of the text
        pytest.param(".", "\n", False, marks=DOT),
    ],
    ids=["fold-e-acute", "fold-kelvin", "space-vt", "dollar-newline", "dot-newline"],
)
def test_python_regex_reads_these_as_re2_does_too(re2: str, value: str, expected: bool) -> None:
    assert (python_regex(re2).fullmatch(value) is not None) is expected


CLEAR = pytest.mark.xfail(
    strict=True,
    reason="valid RE2 that Python's re cannot compile (a global flag cleared with (?-s)) is refused as "
    "a bad regular expression (exit 2) though Prometheus accepts it",
)


@pytest.mark.parametrize(
    "regex", ["\\\\x{64}elta", pytest.param("(?-s)delta", marks=CLEAR)], ids=["hex-braces", "clear-flag"]
)
def test_valid_re2_in_a_selector_is_not_a_usage_error(tmp_path: Path, regex: str) -> None:
    (tmp_path / "delta" / "1").mkdir(parents=True)
    run = run_cli(
        "report", "--prometheus", "http://127.0.0.1:9", "--timeout", "2s",
        "--model-dir", str(tmp_path), "--selector", f'model_name=~"{regex}"',
    )  # fmt: skip
    assert run.exit_code != 2, run.stderr  # 3: nothing listens there


def test_ten_thousand_served_names_take_no_quadratic_time() -> None:
    """10,000 served names outside the selector, 10,000 silent models: linear (about 0.5 s here;
    the suite's per-test timeout bounds it, no timed assert). Found: the lookalike reason named
    every match, unbounded (half a megabyte for one row here); it names three now."""
    n = 10_000
    served = frozenset(f"svc-{i}-prod-model-x{i}" for i in range(n)) | {"alpha"}
    ev = replace(
        evidence(series=[SeriesFacts("alpha", "1", (("p", "0"),), 7, 7)]),
        scope=Scope('job="serving"', unscoped_models=served),
    )
    inv = [disk("alpha", 1), disk("model", 1), *(disk(f"m{i}", 1) for i in range(n))]
    report = advise(Inventory((Path("/m"),), tuple(inv)), ev, NO_PROTECTION, AT)
    found = {r.model: r for r in report.rows()}
    assert found["model"].status.value == "unknown" and found["m5"].status.value == "safe"
    assert len(found["model"].reason) < 1000 and "and 9997 more" in found["model"].reason

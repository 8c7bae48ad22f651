"""The format family: every module in retire/formats that holds a `FORMAT` is registered once,
each format renders everything it says it serves (and has no renderer nothing calls), and every
list of formats outside the registry (each command's --format choices, --mail-attach, the mail's
parts) is derived from it, so adding a format is one module plus one registry line (issue #22)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import retire.formats
from retire.advisor import Status
from retire.advisor.changes import Change, History
from retire.advisor.plan import Move, Plan
from retire.config import OPTION
from retire.errors import ConfigError
from retire.formats import (
    _MODULES,
    ATTACHABLE,
    COMMANDS,
    FORMATS,
    NAMES,
    PEOPLE,
    PLAN,
    REPORT,
    REPORT_COMMANDS,
    SAFE_LIST,
    SCRIPTS,
    Format,
    ListFormat,
    MailPart,
    ReportFormat,
    View,
    mail_parts,
    serving,
)
from retire.formats.words import sparkline
from tests.builders import every_status, report, row

PACKAGE = Path(retire.formats.__file__).parent
HISTORY = History(
    previous_at="2023-11-13T00:00:00Z", changes=(Change("alpha", "1", "in-use", "safe", "became safe"),)
)
HOURLY = (0.0, 1.0, None, 4.0)


def _holds_a_format(path: Path) -> bool:
    """Whether a module assigns `FORMAT` at its top level (helpers such as words.py do not)."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "FORMAT" for t in targets):
            return True
    return False


FORMAT_MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if _holds_a_format(p))


def problems(fmt: Format) -> list[str]:
    """What is wrong with one format's description: a use without its renderer, a renderer (or
    a promise) without its use."""
    out = []
    uses = [*fmt.commands, *(["the mail"] if fmt.mail is not None else [])]
    if not uses:
        out.append(f"{fmt.name}: serves no command and not the mail")
    for use in uses:
        if use not in (SAFE_LIST, PLAN) and fmt.report is None:
            out.append(f"{fmt.name}: serves {use} but has no report renderer")
    if PLAN in fmt.commands and fmt.plan is None:
        out.append(f"{fmt.name}: serves {PLAN} but has no plan renderer")
    if fmt.plan is not None and PLAN not in fmt.commands:
        out.append(f"{fmt.name}: has a plan renderer that nothing calls")
    if SAFE_LIST in fmt.commands and fmt.safe_list is None:
        out.append(f"{fmt.name}: serves {SAFE_LIST} but has no safe_list renderer")
    if fmt.report is not None and not (REPORT in fmt.commands or fmt.mail is not None):
        out.append(f"{fmt.name}: has a report renderer that nothing calls")
    if fmt.safe_list is not None and SAFE_LIST not in fmt.commands:
        out.append(f"{fmt.name}: has a safe_list renderer that nothing calls")
    if fmt.left_out is not None and fmt.safe_list is None:
        out.append(f"{fmt.name}: says what it left out of a safe list it does not render")
    if fmt.shape and not any(serving(c)[:1] == (fmt,) for c in fmt.commands):
        out.append(f"{fmt.name}: its shape is said where it is a default, and it is none")
    if fmt.terminal and REPORT not in fmt.commands:
        out.append(f"{fmt.name}: fitted to a terminal that no command prints it on")
    return out


def test_every_format_module_is_registered_once() -> None:
    assert sorted(_MODULES) == FORMAT_MODULES and len(set(_MODULES)) == len(_MODULES)
    assert list(FORMATS) == list(_MODULES)  # each format is named as its module
    for name in _MODULES:
        assert FORMATS[name] is importlib.import_module(f"retire.formats.{name}").FORMAT


@pytest.mark.parametrize("name", _MODULES)
def test_every_format_renders_what_it_serves(name: str) -> None:
    fmt = FORMATS[name]
    assert problems(fmt) == []
    rep = report(*every_status())
    if fmt.report is not None:
        text = fmt.report(rep, View())
        assert "alpha" in text and all(s.value in text for s in Status), name
    if fmt.safe_list is not None:
        text = fmt.safe_list(rep)
        assert "/models/alpha/1" in text and "/models/alpha/2" not in text, name
    if fmt.left_out is not None:
        assert fmt.left_out(rep) == []  # nothing odd in these names: nothing left out
    if fmt.plan is not None:
        move = Move("alpha", "1", "/models/alpha/1", "/archive/models/alpha/1", 10)
        text = fmt.plan(Plan("/archive", (move,), 1_700_000_000.0), False, ())
        assert "/models/alpha/1" in text and "/archive/models/alpha/1" in text, name


@pytest.mark.parametrize("name", [f.name for f in FORMATS.values() if f.report is not None])
def test_what_a_format_says_it_shows_is_what_it_shows(name: str) -> None:
    fmt = FORMATS[name]
    assert fmt.report is not None
    rep = report(*every_status(), row("beta", "1", hourly=HOURLY))
    plain = fmt.report(rep, View())
    assert (fmt.report(rep, View(history=HISTORY)) != plain) == fmt.changes, name
    assert (sparkline(HOURLY) in plain) == fmt.sparklines, name
    hostile = fmt.report(report(row("esc\x1b[31mred\u202e", "1")), View())
    if fmt.audience == PEOPLE:  # shown safely: no escape sequence or direction override reaches a reader
        assert "\x1b" not in hostile and "\u202e" not in hostile, name
    else:
        assert fmt.audience == SCRIPTS


def test_each_command_takes_formats_in_the_registry_order_its_default_first() -> None:
    for command in COMMANDS:
        formats = serving(command)
        assert formats and [f.name for f in formats] == [
            m for m in _MODULES if command in FORMATS[m].commands
        ]


def test_every_list_of_formats_comes_from_the_registry() -> None:
    assert [f.value for f in ReportFormat] == [f.name for f in serving(REPORT)]
    assert [f.value for f in ListFormat] == [f.name for f in serving(SAFE_LIST)]
    assert tuple(dict.fromkeys(f.name for c in REPORT_COMMANDS for f in serving(c))) == NAMES
    assert OPTION["format"].choices == NAMES
    assert tuple(f.name for f in FORMATS.values() if f.mail is not None and f.mail.filename) == ATTACHABLE
    attach = OPTION["mail_attach"]
    assert attach.parse(",".join(ATTACHABLE), attach.key) == ATTACHABLE
    for name in set(FORMATS) - set(ATTACHABLE):
        with pytest.raises(ConfigError):
            attach.parse(name, attach.key)


def test_the_mail_is_one_plain_and_one_html_body_and_the_files_asked_for() -> None:
    body = [f.mail for f in mail_parts() if f.mail is not None]
    assert sorted(m.mime for m in body) == ["text/html", "text/plain"] and not any(m.filename for m in body)
    files = [f.mail for f in mail_parts(ATTACHABLE)[len(body) :] if f.mail is not None]
    assert len({m.filename for m in files}) == len(ATTACHABLE) == len(files)


def test_every_status_has_its_colour() -> None:
    """The table and HTML colour statuses by their text (so that importing them stays cheap)."""
    from retire.formats import html, table

    assert set(table.STYLES) == set(html.COLOURS) == {s.value for s in Status}


def test_the_check_finds_a_format_without_its_renderer() -> None:
    """The checks above can fail: a format added without a renderer, or with one nothing calls."""
    yaml = Format(
        "yaml", SCRIPTS, commands=(REPORT,), mail=MailPart("application/yaml", "retire-report.yaml")
    )
    assert problems(yaml) == [
        "yaml: serves report but has no report renderer",
        "yaml: serves the mail but has no report renderer",
    ]
    lonely = Format("ndjson", SCRIPTS, terminal=True, shape="{...}", safe_list=lambda rep: "")
    assert problems(lonely) == [
        "ndjson: serves no command and not the mail",
        "ndjson: has a safe_list renderer that nothing calls",
        "ndjson: its shape is said where it is a default, and it is none",
        "ndjson: fitted to a terminal that no command prints it on",
    ]
    draft = Format("draft", PEOPLE, commands=(PLAN,))
    assert problems(draft) == ["draft: serves plan but has no plan renderer"]

"""The mailed message, built from hand-made reports (`mail.subject`, `mail.build`, the HTML part)
and read back as a mail client reads it, from the bytes sent over SMTP. Delivery itself is tested
against real SMTP servers in test_mail.py."""

from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage

import pytest

from retire.advisor import Report, Status
from retire.delivery import mail
from retire.escape import printable
from retire.formats import ReportFormat, html, render_report
from retire.formats.csv import report_csv
from retire.formats.json import report_json
from tests.builders import every_status, report, row

SENDER = "retire@example.com"
TO = ("a@example.com", "b@example.com")
HOSTILE = ("esc\x1b[31mred", "line\nbreak", "<script>alert(1)</script>", "modèle-ünïcode")


def _message(rep: Report, attach: bool = True) -> EmailMessage:
    """The message as the report command builds it: table text, HTML, JSON and CSV attached."""
    attachments = {
        "retire-report.json": (report_json(rep), "application/json"),
        "retire-report.csv": (report_csv(rep), "text/csv"),
    }
    return mail.build(
        sender=SENDER,
        recipients=TO,
        subject_line=mail.subject(rep),
        text=render_report(rep, ReportFormat.TABLE),
        html=html.render(rep, ["since last report: no previous report (first run)"]),
        attachments=attachments if attach else None,
    )


def _sent(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=email.policy.SMTP)  # what send() hands to DATA


def _received(msg: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(_sent(msg), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _content(part: object) -> str:
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    return (content.decode() if isinstance(content, bytes) else content).replace("\r\n", "\n")


def test_subject_says_the_outcome() -> None:
    assert mail.subject(report()) == "retire: 0 versions safe to offload (0 B)"
    assert mail.subject(report(row())) == "retire: 1 version safe to offload (1.0 KiB)"
    two = report(
        row(size_bytes=3 * 2**30), row(version="2", size_bytes=None), row(version="3", status=Status.UNKNOWN)
    )
    assert mail.subject(two) == "retire: 2 versions safe to offload (3.0 GiB), 1 unknown"
    assert mail.subject(report(*every_status())) == "retire: 1 version safe to offload (1.0 KiB), 1 unknown"


def test_headers_parts_and_attachments_read_back_as_built() -> None:
    rep = report(*every_status(), *[row(name, "1") for name in HOSTILE])
    msg = _received(_message(rep))
    assert msg["Subject"] == "retire: 5 versions safe to offload (5.0 KiB), 1 unknown"
    assert msg["From"] == SENDER and msg["To"] == "a@example.com, b@example.com"
    assert msg["Date"] and msg["Message-ID"].endswith("@example.com>")
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/json",
        "text/csv",
    ]
    assert _content(msg.get_body(("plain",))) == render_report(rep, ReportFormat.TABLE)
    assert _content(msg.get_body(("html",))) == html.render(
        rep, ["since last report: no previous report (first run)"]
    )
    attached = {a.get_filename(): a for a in msg.iter_attachments()}
    assert set(attached) == {"retire-report.json", "retire-report.csv"}
    assert json.loads(_content(attached["retire-report.json"])) == json.loads(report_json(rep))
    assert _content(attached["retire-report.csv"]) == report_csv(rep)
    names = [r["model"] for r in json.loads(_content(attached["retire-report.json"]))["rows"]]
    assert set(HOSTILE) <= set(names)  # the attachment carries names exactly; the parts escape them


def test_without_attachments_it_is_text_and_html_only() -> None:
    msg = _received(_message(report(row()), attach=False))
    assert [p.get_content_type() for p in msg.walk()] == ["multipart/alternative", "text/plain", "text/html"]


def test_hostile_names_are_escaped_in_both_parts() -> None:
    rep = report(*[row(name, "1", reason=f"reason with {name}") for name in HOSTILE])
    msg = _received(_message(rep, attach=False))
    text, page = _content(msg.get_body(("plain",))), _content(msg.get_body(("html",)))
    assert "\x1b" not in text + page and "<script>" not in page
    for name in HOSTILE:
        assert printable(name) in text
    assert "esc\\x1b[31mred" in page and "line\\nbreak" in page and "&lt;script&gt;" in page
    assert "modèle-ünïcode" in text and "modèle-ünïcode" in page


def test_what_goes_over_smtp_is_seven_bit_with_short_lines() -> None:
    """Quoted-printable: a long reason, a one-line HTML row and non-ASCII text stay under SMTP's
    998-character line limit and pass 7-bit relays; lines end in CRLF, no bare CR or LF."""
    long_reason = "would be safe but " + "; ".join(f"doubt number {n} about the evidence" for n in range(200))
    rep = report(row("m" * 300, "1", reason=long_reason), row("modèle", "2", Status.UNKNOWN))
    raw = _sent(_message(rep))
    assert raw.isascii()
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert not any(b"\r" in line or b"\n" in line for line in lines)
    assert long_reason in _content(_received(_message(rep)).get_body(("plain",)))


def test_a_subject_line_cannot_add_a_header() -> None:
    with pytest.raises(ValueError):
        mail.build(
            sender=SENDER, recipients=TO, subject_line="retire\nBcc: x@evil.example", text="t", html="h"
        )


def test_the_failure_page_escapes_the_error_and_lists_nothing_as_safe() -> None:
    page = html.render_failure("Prometheus said <b>no</b>\x1b[2J", "http://127.0.0.1:9090")
    assert "&lt;b&gt;no&lt;/b&gt;\\x1b[2J" in page and "<b>" not in page and "\x1b" not in page
    assert "No version is listed as safe to offload" in page and "Prometheus: http://127.0.0.1:9090" in page
    assert "Prometheus:" not in html.render_failure("down", None)

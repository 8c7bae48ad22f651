"""Markup in model names through the formats (issue #15's attacks)."""

from __future__ import annotations

from retire.formats import ReportFormat, render_report
from tests import builders as b


def test_markdown_shows_html_and_link_syntax_in_names_as_text() -> None:
    rep = b.report(b.row("<b>m</b>", "1"), b.row("[m](http://evil.example)", "2"))
    text = render_report(rep, ReportFormat.MARKDOWN)
    assert "<b>" not in text and "](http" not in text


def test_markdown_shows_entities_in_names_as_written() -> None:
    """`<` is written as an entity, so `&` must be too: a name holding `&lt;` is shown as `&lt;`."""
    rep = b.report(b.row("a&lt;b", "1"))
    assert "a&amp;lt;b" in render_report(rep, ReportFormat.MARKDOWN)

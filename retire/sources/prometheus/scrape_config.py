"""The scrape configuration's YAML, as Prometheus writes it back (`/api/v1/status/config`).

Block style, one key per line, lists as `- key: value` lines: the server writes this YAML itself,
in one regular style, so no YAML library is needed. Only what retire reads is read: the global
scrape interval, each job's own, and which jobs keep the server's own job label (`own_jobs`).
Odd shapes raise ValueError (the caller makes a note of it, never a failed run).
"""

from __future__ import annotations

import json
import re
from typing import Any

from retire.durations import parse_duration
from retire.errors import ConfigError


def server_duration(text: Any) -> float:
    """A Prometheus duration as the server writes it (`1m`, `1m30s`, `500ms`, `15d`)."""
    if not isinstance(text, str) or not text:
        raise ValueError("a duration is not text")
    try:
        seconds = parse_duration(text, "duration")
    except ConfigError:
        raise ValueError(f"{text[:40]!r} is not a duration") from None
    if seconds <= 0:
        raise ValueError(f"{text[:40]!r} is not a positive duration")
    return seconds


_KEY = re.compile(r"""(?P<key>[A-Za-z_][A-Za-z0-9_]*):(?:\s+(?P<value>.*))?$""")


def _scalar(text: str) -> str:
    """A YAML scalar: plain, 'single' ('' is a quote) or "double" (JSON escapes), comments off."""
    text = text.strip()
    if text.startswith("'"):
        end = re.match(r"'((?:[^']|'')*)'", text)
        return end.group(1).replace("''", "'") if end else text
    if text.startswith('"'):
        end = re.match(r'"((?:[^"\\]|\\.)*)"', text)
        if end:
            try:
                value = json.loads('"' + end.group(1) + '"')
                return value if isinstance(value, str) else text
            except ValueError:
                return end.group(1)
        return text
    return re.split(r"\s+#", text, maxsplit=1)[0].strip()


_ITEM_KEYS = ("job_name", "scrape_interval", "honor_labels")


def _scrape_items(text: str) -> tuple[float | None, list[dict[str, str]]]:
    """The global scrape_interval and each `scrape_configs:` item's own keys that retire reads."""
    lines = [
        (len(raw) - len(raw.lstrip(" ")), raw.strip())
        for raw in text.splitlines()
        if raw.strip() and not raw.strip().startswith("#")
    ]
    default: float | None = None
    jobs: list[dict[str, str]] = []
    section, item_indent, key_indent = "", -1, -1
    child_indent = -1
    for indent, content in lines:
        if indent == 0 and not content.startswith("- "):
            m = _KEY.match(content)
            section = m.group("key") if m else ""
            child_indent, item_indent, key_indent = -1, -1, -1
            continue
        if section == "global":
            if child_indent < 0:
                child_indent = indent
            m = _KEY.match(content)
            if indent == child_indent and m and m.group("key") == "scrape_interval" and m.group("value"):
                default = server_duration(_scalar(m.group("value")))
        elif section == "scrape_configs":
            if content.startswith("- ") and (item_indent < 0 or indent == item_indent):
                item_indent, key_indent = indent, indent + 2
                jobs.append({})
                content, indent = content[2:].lstrip(), key_indent
            if jobs and indent == key_indent:
                m = _KEY.match(content)
                if m and m.group("key") in _ITEM_KEYS and m.group("value"):
                    jobs[-1][m.group("key")] = _scalar(m.group("value"))
    return default, jobs


def own_jobs(text: str) -> frozenset[str]:
    """The job_names of a configuration whose targets' `job` label is the server's own (not
    `honor_labels`, with which a scraped series keeps the job label it came with: federation)."""
    return _own(_scrape_items(text)[1])


def _own(jobs: list[dict[str, str]]) -> frozenset[str]:
    return frozenset(
        j["job_name"] for j in jobs if "job_name" in j and j.get("honor_labels", "false").lower() != "true"
    )


def config_intervals(text: str) -> tuple[float | None, dict[str, float]]:
    """(global scrape_interval, job_name -> scrape_interval) from a Prometheus configuration.

    Reads `global:`'s own `scrape_interval` and, in each `scrape_configs:` item, the item's own
    `job_name` and `scrape_interval` (keys at the item's indentation, never nested ones such as a
    relabel rule's). A job without its own interval takes the global one, as Prometheus does."""
    return _intervals(*_scrape_items(text))


def _intervals(default: float | None, jobs: list[dict[str, str]]) -> tuple[float | None, dict[str, float]]:
    out: dict[str, float] = {}
    for job in jobs:
        name = job.get("job_name")
        if name is None:
            continue
        interval = server_duration(job["scrape_interval"]) if "scrape_interval" in job else default
        if interval is not None:
            out[name] = interval
    return default, out


def read_config(text: str) -> tuple[float | None, dict[str, float], frozenset[str]]:
    """The configuration's scrape intervals (global, per job) and its own jobs, from one reading."""
    default, items = _scrape_items(text)
    return (*_intervals(default, items), _own(items))

"""The PromQL `retire` sends: templates from `queries/*.promql`, filled in safely.

Templates use `${name}` placeholders and `#` comment lines. User-supplied label values never reach
PromQL as raw text: selectors are parsed into matchers and re-rendered with escaping, so a value
containing `"` or `}` cannot change the query's meaning.

In a source checkout the templates are read from the top-level `queries/`; an installed wheel
carries them as `retire/queries/` (see pyproject.toml).
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from retire.config import Settings
from retire.errors import ConfigError

METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPS = ("=~", "!~", "!=", "=")
# Prometheus refuses range queries with more points than this per series.
MAX_RANGE_POINTS = 11000


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def render(self) -> str:
        return f"{self.name}{self.op}{quote(self.value)}"


@dataclass(frozen=True)
class Selector:
    """A metric name (optional) and label matchers, parsed from user text."""

    metric: str
    matchers: tuple[Matcher, ...]

    def render(self) -> str:
        inner = ",".join(m.render() for m in self.matchers)
        return f"{self.metric}{{{inner}}}" if self.metric else f"{{{inner}}}"


def quote(value: str) -> str:
    """A PromQL double-quoted string literal (Go escaping rules) for any text."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
    "\\": "\\", "'": "'", '"': '"',
}  # fmt: skip


def _unquote(literal: str, where: str) -> str:
    """The text of a PromQL string literal: "..." and '...' with Go escapes, `...` raw."""
    quote_char, body = literal[0], literal[1:-1]
    if quote_char == "`":
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        esc = body[i + 1] if i + 1 < len(body) else ""
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
            continue
        width = {"x": 2, "u": 4, "U": 8}.get(esc)
        digits = body[i + 2 : i + 2 + width] if width else body[i + 1 : i + 4]
        try:
            out.append(chr(int(digits, 16 if width else 8)))
        except ValueError:
            raise ConfigError(f"{where}: bad escape \\{esc} in {literal}") from None
        i += 2 + width if width else 4
    return "".join(out)


_TOKEN_RE = re.compile(
    r"""\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*(?P<op>=~|!~|!=|=)\s*
        (?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(?P<sep>,|$)""",
    re.VERBOSE | re.DOTALL,
)


def parse_matchers(text: str, where: str = "--selector") -> tuple[Matcher, ...]:
    """`job="tfs",namespace=~"ml|ai"` (braces optional) -> matchers; errors name the bad part."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    matchers: list[Matcher] = []
    pos = 0
    while pos < len(body) and body[pos:].strip():
        m = _TOKEN_RE.match(body, pos)
        if m is None:
            raise ConfigError(
                f"{where}: cannot parse {body[pos:].strip()!r}; "
                """expected label matchers such as job="tfs",namespace="ml\""""
            )
        matchers.append(Matcher(m["name"], m["op"], _unquote(m["value"], where)))
        pos = m.end()
    for matcher in matchers:
        if matcher.op in ("=~", "!~"):
            try:
                re.compile(matcher.value)
            except re.error as e:
                raise ConfigError(f"{where}: bad regular expression {matcher.value!r}: {e}") from e
    return tuple(matchers)


def parse_selector(text: str, where: str) -> Selector:
    """`up{job="tfs"}`, `up` or `{job="tfs"}`: a plain series selector, nothing more."""
    text = text.strip()
    m = METRIC_NAME_RE.match(text)
    metric = m.group(0) if m else ""
    rest = text[len(metric) :].strip()
    if rest and not (rest.startswith("{") and rest.endswith("}")):
        raise ConfigError(f'{where}: {text!r} is not a series selector such as up{{job="tfs"}}')
    matchers = parse_matchers(rest, where) if rest else ()
    if not metric and not matchers:
        raise ConfigError(f"{where}: the selector is empty")
    return Selector(metric, matchers)


def promql_duration(seconds: float) -> str:
    """Seconds as a PromQL duration literal (`86400s`, `1500ms`)."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True)
class QueryParams:
    """Everything the templates need, derived once from Settings."""

    metric: str
    model_label: str
    version_label: str
    selector: tuple[Matcher, ...]
    window: float
    step: float
    resolution: float
    coverage: Selector | None

    @property
    def series_selector(self) -> str:
        """The metric with all its matchers: what every evidence query selects."""
        return f"{self.metric}{{{self.matchers}}}"

    @property
    def matchers(self) -> str:
        base = (
            Matcher(self.model_label, "!=", ""),
            Matcher(self.version_label, "!=", ""),
        )
        return ",".join(m.render() for m in (*base, *self.selector))


def resolution_for(window: float, max_gap: float) -> float:
    """Interval of the hole/coverage range queries: fine enough to measure gaps against
    --max-gap (a quarter of it, at most 60 s), coarse enough to stay under the server's point limit."""
    fine = min(60.0, max(max_gap / 4, 1.0))
    return float(max(math.ceil(fine), math.ceil(window / (MAX_RANGE_POINTS - 1))))


def params_from(settings: Settings) -> QueryParams:
    if not METRIC_NAME_RE.fullmatch(settings.metric):
        raise ConfigError(f"--metric: {settings.metric!r} is not a valid Prometheus metric name")
    for flag, label in (("--model-label", settings.model_label),
                        ("--version-label", settings.version_label)):  # fmt: skip
        if not LABEL_NAME_RE.fullmatch(label):
            raise ConfigError(f"{flag}: {label!r} is not a valid Prometheus label name")
    coverage = parse_selector(settings.coverage, "--coverage") if settings.coverage else None
    return QueryParams(
        metric=settings.metric,
        model_label=settings.model_label,
        version_label=settings.version_label,
        selector=parse_matchers(settings.selector) if settings.selector else (),
        window=settings.window,
        step=settings.step,
        resolution=resolution_for(settings.window, settings.max_gap),
        coverage=coverage,
    )


@cache
def template(name: str) -> str:
    """The template text with comments removed and whitespace folded to single spaces."""
    packaged = resources.files("retire").joinpath("queries", f"{name}.promql")
    if packaged.is_file():
        raw = packaged.read_text(encoding="utf-8")
    else:  # source checkout or editable install: the top-level queries/ folder
        raw = (Path(__file__).resolve().parent.parent / "queries" / f"{name}.promql").read_text(
            encoding="utf-8"
        )
    lines = [line for line in raw.splitlines() if not line.lstrip().startswith("#")]
    text = " ".join(" ".join(lines).split())
    # Fold the spaces a template's layout adds inside brackets: `( x )` reads as `(x)`.
    return re.sub(r"([(\[{]) | ([)\]}])", lambda m: m.group(1) or m.group(2), text)


def render(name: str, params: QueryParams) -> str:
    values = {
        "metric": params.metric,
        "model_label": params.model_label,
        "version_label": params.version_label,
        "matchers": params.matchers,
        "window": promql_duration(params.window),
        "step": promql_duration(params.step),
        "resolution": promql_duration(params.resolution),
        "coverage": params.coverage.render() if params.coverage else "",
    }
    return string.Template(template(name)).substitute(values)


@dataclass(frozen=True)
class PlannedQuery:
    """One query of a run: instant queries are evaluated at the instant, range ones over the window."""

    name: str
    kind: str  # "instant" or "range"
    promql: str
    purpose: str


PURPOSES = {
    "max_hourly_qps": "busiest step per version (the seed query)",
    "last_step_qps": "rate over the last step, which the seed's aligned steps miss",
    "series_last": "per series: last value in the window (any sample at all)",
    "series_start": "per series: value at the window start (born-in-window detection)",
    "metric_presence": "series with samples per interval (global holes)",
    "coverage": "lowest `up` per target per interval (scrape gaps)",
    "hourly_qps": "rate per step over the window, for sparklines (no verdict uses it)",
}


RANGE_QUERIES = ("coverage", "metric_presence", "hourly_qps")


def plan(params: QueryParams, sparklines: bool = False) -> list[PlannedQuery]:
    """The queries a report sends, in the order `retire query` prints them."""
    names = ["max_hourly_qps", "last_step_qps", "series_last", "series_start"]
    names.append("coverage" if params.coverage else "metric_presence")
    if sparklines:
        names.append("hourly_qps")
    return [
        PlannedQuery(
            name,
            "range" if name in RANGE_QUERIES else "instant",
            render(name, params),
            PURPOSES[name],
        )
        for name in names
    ]

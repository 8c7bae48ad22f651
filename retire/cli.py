"""Command-line wiring: parse flags, resolve settings, call the pipeline, print, exit.

This module decides nothing about verdicts and does no HTTP or disk work itself. Reports go to
stdout (or -o FILE, written atomically); summaries, notes and errors go to stderr, so
`retire safe-list | xargs ...` only ever sees data.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from retire import __version__
from retire.errors import EXIT_INCOMPLETE, EXIT_OK, ConfigError, RetireError

if TYPE_CHECKING:
    from retire.advisor import Report
    from retire.config import Settings

EXIT_CODES = """\b
Exit codes:
  0  done; no version is unknown
  2  usage, config file or model directory error
  3  Prometheus unreachable, or its answer unusable
  4  report made, but at least one version is unknown (evidence incomplete)"""

app = typer.Typer(
    name="retire",
    help=(
        "Which model versions can be unloaded safely? retire asks Prometheus for each version's "
        "traffic, joins it with the versions on disk, and calls a version safe only when every "
        "piece of evidence says it had no calls.\n\n" + EXIT_CODES
    ),
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"retire {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    pass


# Options shared by the commands, declared once. Defaults are None so config.resolve can tell
# "not given" from "given", and apply flags > environment > config file > defaults.
Prom = Annotated[
    str | None,
    typer.Option(
        "--prometheus", help="Prometheus base URL, path prefix allowed. [env: RETIRE_PROMETHEUS_URL]"
    ),
]
ModelDir = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Model root: <root>/<model>/<version>/. [env: RETIRE_MODEL_DIR]"),
]
BasePath = Annotated[
    Path | None,
    typer.Option("--model-base-path", help="One model's base path (with --model-name) instead of a root."),
]
ModelName = Annotated[
    str | None, typer.Option("--model-name", help="The model served from --model-base-path.")
]
Threshold = Annotated[
    float | None,
    typer.Option(
        "--threshold",
        help="Busiest-hour req/s at or below which a version is idle. Default 0: any call keeps it.",
    ),
]
SelectorOpt = Annotated[
    str | None,
    typer.Option(
        "--selector", help='Extra label matchers for the metric, e.g. \'job="tfs",namespace="ml"\'.'
    ),
]
Window = Annotated[str | None, typer.Option("--window", help="How far back to look. Default 24h.")]
Step = Annotated[str | None, typer.Option("--step", help="Rate step of the busiest-hour query. Default 1h.")]
Metric = Annotated[
    str | None,
    typer.Option("--metric", help="Call counter metric. Default :tensorflow:serving:model_call_count."),
]
ModelLabel = Annotated[
    str | None, typer.Option("--model-label", help="Label naming the model. Default model_name.")
]
VersionLabel = Annotated[
    str | None, typer.Option("--version-label", help="Label naming the version. Default model_version.")
]
At = Annotated[
    str | None,
    typer.Option("--at", help="Evaluate at this instant (RFC 3339 or Unix seconds) instead of now."),
]
Timeout = Annotated[str | None, typer.Option("--timeout", help="Per-query timeout. Default 30s.")]
Output = Annotated[
    Path | None, typer.Option("-o", "--output", help="Write to this file (atomically) instead of stdout.")
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", help="TOML config file. Default ./retire.toml if present. [env: RETIRE_CONFIG]"),
]
CoverageOpt = Annotated[
    str | None,
    typer.Option(
        "--coverage", help="Scrape targets that must have been up all window, e.g. 'up{job=\"tfs\"}'."
    ),
]
MaxGap = Annotated[
    str | None, typer.Option("--max-gap", help="Longest tolerated hole in the data. Default 15m.")
]
KeepLatest = Annotated[
    int | None, typer.Option("--keep-latest", help="Never offer the newest N versions of a model. Default 1.")
]
MinAge = Annotated[
    str | None,
    typer.Option(
        "--min-age", help="Protect versions whose directory changed more recently. Default: the window."
    ),
]
AgeSource = Annotated[
    str | None,
    typer.Option("--age-source", help="mtime (default) or ctime: which directory time is the age."),
]
Pin = Annotated[list[str] | None, typer.Option("--pin", help="MODEL:VERSION never to offload. Repeatable.")]
Verbose = Annotated[
    bool | None,
    typer.Option("--verbose", "-v", help="Also list ignored directory entries and query timings."),
]


def _err(message: str) -> None:
    typer.echo(f"retire: error: {message}", err=True)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn every RetireError into one line on stderr and its exit code. No tracebacks."""
    try:
        yield
    except RetireError as e:
        _err(e.message)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        _err("interrupted")
        raise typer.Exit(130) from None


def _settings(flags: dict[str, Any], config: Path | None) -> Settings:
    from retire.config import resolve

    return resolve(flags, config=config)


def _build_report(settings: Settings) -> Report:
    """config -> sources (disk, Prometheus) -> advisor."""
    from retire.advisor import Policy, advise
    from retire.evidence import gather
    from retire.inventory import scan_base_path, scan_model_dir
    from retire.prometheus import PrometheusClient
    from retire.queries import params_from

    if not settings.prometheus:
        raise ConfigError(
            "no Prometheus URL: pass --prometheus http://prom:9090 or set RETIRE_PROMETHEUS_URL"
        )
    if settings.model_dir is None and settings.model_base_path is None:
        raise ConfigError(
            "no model directory: pass --model-dir /models (or --model-base-path with --model-name)"
        )
    params = params_from(settings)
    if settings.model_dir is not None:
        inventory = scan_model_dir(settings.model_dir)
    else:
        assert settings.model_base_path is not None and settings.model_name is not None
        inventory = scan_base_path(settings.model_base_path, settings.model_name)
    at = settings.at.timestamp() if settings.at else time.time()
    started = time.monotonic()
    with PrometheusClient(settings.prometheus, timeout=settings.timeout) as client:
        evidence = gather(client, params, at, settings.max_gap)
    if settings.verbose:
        typer.echo(f"retire: {len(evidence.queries)} queries in {time.monotonic() - started:.2f}s", err=True)
        for path, why in ((str(i.path), i.reason) for i in inventory.ignored):
            typer.echo(f"retire: ignored {path}: {why}", err=True)
    policy = Policy(
        threshold=settings.threshold,
        keep_latest=settings.keep_latest,
        min_age=settings.effective_min_age,
        age_source=settings.age_source,
        pins=settings.pin,
    )
    return advise(inventory, evidence, policy, generated_at=time.time())


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def _emit(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        from retire.output import write_atomic

        write_atomic(output, text)


def _exit_code(report: Report) -> int:
    return EXIT_INCOMPLETE if report.summary.unknown else EXIT_OK


@app.command(epilog=EXIT_CODES)
def report(
    prometheus: Prom = None,
    model_dir: ModelDir = None,
    model_base_path: BasePath = None,
    model_name: ModelName = None,
    threshold: Threshold = None,
    selector: SelectorOpt = None,
    window: Window = None,
    step: Step = None,
    metric: Metric = None,
    model_label: ModelLabel = None,
    version_label: VersionLabel = None,
    at: At = None,
    timeout: Timeout = None,
    coverage: CoverageOpt = None,
    max_gap: MaxGap = None,
    keep_latest: KeepLatest = None,
    min_age: MinAge = None,
    age_source: AgeSource = None,
    pin: Pin = None,
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="table (default), json, csv or markdown.")
    ] = None,
    output: Output = None,
    verbose: Verbose = None,
    config: ConfigOpt = None,
) -> None:
    """Every model version, on disk or in Prometheus, with its traffic and verdict.

    \b
    Examples:
      retire report --prometheus http://prom:9090 --model-dir /models
      retire report --prometheus http://prom:9090 --model-dir /models \\
          --selector 'job="tfs"' --coverage 'up{job="tfs"}' --format json -o report.json
      retire report --model-base-path /models/half_plus_two --model-name half_plus_two \\
          --at 2026-11-24T06:00:00Z
    """
    flags = {k: v for k, v in locals().items() if k != "config"}
    from retire.formats import ReportFormat, render_report

    with _user_errors():
        settings = _settings(flags, config)
        fmt = _format(settings.format, ReportFormat, ReportFormat.TABLE)
        result = _build_report(settings)
        color = fmt is ReportFormat.TABLE and settings.output is None and _use_color()
        width = os.get_terminal_size().columns if color else 100
        _emit(render_report(result, fmt, color=color, width=width), settings.output)
        if fmt is not ReportFormat.TABLE or settings.output is not None:
            from retire.formats.words import summary_line

            typer.echo(f"retire: {summary_line(result)}", err=True)
    raise typer.Exit(_exit_code(result))


@app.command("safe-list", epilog=EXIT_CODES)
def safe_list(
    prometheus: Prom = None,
    model_dir: ModelDir = None,
    model_base_path: BasePath = None,
    model_name: ModelName = None,
    threshold: Threshold = None,
    selector: SelectorOpt = None,
    window: Window = None,
    step: Step = None,
    metric: Metric = None,
    model_label: ModelLabel = None,
    version_label: VersionLabel = None,
    at: At = None,
    timeout: Timeout = None,
    coverage: CoverageOpt = None,
    max_gap: MaxGap = None,
    keep_latest: KeepLatest = None,
    min_age: MinAge = None,
    age_source: AgeSource = None,
    pin: Pin = None,
    format: Annotated[
        str | None,
        typer.Option("--format", "-f", help="tsv (default: model<TAB>version<TAB>path), json or csv."),
    ] = None,
    output: Output = None,
    verbose: Verbose = None,
    config: ConfigOpt = None,
) -> None:
    """Only the versions that are safe to offload, one per line, for scripts.

    Unknown versions are never listed; the exit code is 4 when there are any, and the reason
    goes to stderr.

    \b
    Examples:
      retire safe-list --prometheus http://prom:9090 --model-dir /models --threshold 0
      retire safe-list --prometheus http://prom:9090 --model-dir /models --format json
      retire safe-list ... | while IFS=$'\\t' read -r model version path; do echo "$path"; done
    """
    flags = {k: v for k, v in locals().items() if k != "config"}
    from retire.formats import ListFormat, render_safe_list

    with _user_errors():
        settings = _settings(flags, config)
        fmt = _format(settings.format, ListFormat, ListFormat.TSV)
        result = _build_report(settings)
        _emit(render_safe_list(result, fmt), settings.output)
        from retire.formats.words import summary_line

        typer.echo(f"retire: {summary_line(result)}", err=True)
    raise typer.Exit(_exit_code(result))


@app.command()
def query(
    name: Annotated[
        str | None, typer.Argument(help="Print only this query, bare, e.g. max_hourly_qps.")
    ] = None,
    selector: SelectorOpt = None,
    window: Window = None,
    step: Step = None,
    metric: Metric = None,
    model_label: ModelLabel = None,
    version_label: VersionLabel = None,
    coverage: CoverageOpt = None,
    max_gap: MaxGap = None,
    config: ConfigOpt = None,
) -> None:
    """Print the exact PromQL that `report` would send, without sending it.

    \b
    Examples:
      retire query
      retire query max_hourly_qps --selector 'job="tfs"'
      curl -s http://prom:9090/api/v1/query --data-urlencode "query=$(retire query max_hourly_qps)"
    """
    flags = {k: v for k, v in locals().items() if k not in ("config", "name")}
    from retire.queries import params_from, plan

    with _user_errors():
        settings = _settings(flags, config)
        planned = plan(params_from(settings))
        if name is not None:
            matches = [q for q in planned if q.name == name]
            if not matches:
                raise ConfigError(f"no query named {name!r}; one of: {', '.join(q.name for q in planned)}")
            typer.echo(matches[0].promql)
            return
        for q in planned:
            typer.echo(f"# {q.name} ({q.kind}): {q.purpose}")
            typer.echo(q.promql)
            typer.echo("")


def _format(value: str | None, enum: Any, default: Any) -> Any:
    if value is None:
        return default
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(f.value for f in enum)
        raise ConfigError(f"--format {value!r} is not available here; use one of: {allowed}") from None


def main() -> None:
    app()

"""The commands that read and print: `report`, `safe-list`, `query` and `rules`.

Each is resolve settings -> one library call -> render -> write. Its options are listed in its
signature with the aliases of retire.cli.options, built from the option table; `given(locals())`
hands them to config.resolve.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from retire.cli import options as opt
from retire.cli.group import app, exit_codes
from retire.cli.options import given
from retire.cli.steps import (
    Config,
    chosen,
    deadline_of,
    emit,
    error,
    exit_code,
    made_report,
    quietly,
    resolved,
    say,
    screen,
    user_errors,
)
from retire.errors import ConfigError
from retire.formats import REPORT, SAFE_LIST
from retire.servers import PRESETS


@app.command(epilog=exit_codes(0, 2, 3, 4, 5))
def report(
    format: opt.ReportFormat = None,
    output: opt.Output = None,
    config: Config = None,
    prometheus: opt.Prometheus = None,
    model_dir: opt.ModelDir = None,
    model_config: opt.ModelConfig = None,
    preset: opt.Preset = None,
    model_base_path: opt.ModelBasePath = None,
    model_name: opt.ModelName = None,
    threshold: opt.Threshold = None,
    selector: opt.Selector = None,
    window: opt.Window = None,
    step: opt.Step = None,
    metric: opt.Metric = None,
    model_label: opt.ModelLabel = None,
    version_label: opt.VersionLabel = None,
    at: opt.At = None,
    timeout: opt.Timeout = None,
    deadline: opt.Deadline = None,
    coverage: opt.Coverage = None,
    max_gap: opt.MaxGap = None,
    keep_latest: opt.KeepLatest = None,
    min_age: opt.MinAge = None,
    age_source: opt.AgeSource = None,
    pin: opt.Pin = None,
    header: opt.Header = None,
    tenant: opt.Tenant = None,
    bearer_token_file: opt.BearerTokenFile = None,
    basic_auth_user: opt.BasicAuthUser = None,
    basic_auth_password_file: opt.BasicAuthPasswordFile = None,
    ca_file: opt.CaFile = None,
    client_cert: opt.ClientCert = None,
    client_key: opt.ClientKey = None,
    insecure: opt.Insecure = None,
    partial_response: opt.PartialResponse = None,
    split_by_model: opt.SplitByModel = None,
    server: opt.Server = None,
    archive_dir: opt.ArchiveDir = None,
    use_recording_rules: opt.UseRecordingRules = None,
    rule_interval: opt.RuleInterval = None,
    rollup_interval: opt.RollupInterval = None,
    verbose: opt.Verbose = None,
    mail_to: opt.MailTo = None,
    mail_from: opt.MailFrom = None,
    mail_when: opt.MailWhen = None,
    mail_attach: opt.MailAttach = None,
    smtp_host: opt.SmtpHost = None,
    smtp_port: opt.SmtpPort = None,
    smtp_starttls: opt.SmtpStarttls = None,
    smtp_ssl: opt.SmtpSsl = None,
    smtp_user: opt.SmtpUser = None,
    smtp_password_file: opt.SmtpPasswordFile = None,
    smtp_ca_file: opt.SmtpCaFile = None,
    smtp_timeout: opt.SmtpTimeout = None,
    since_last: opt.SinceLast = None,
    quiet: opt.Quiet = None,
) -> None:
    """Every model version, on disk or in Prometheus, with its traffic and verdict.

    With --mail-to, the report is also mailed (text and HTML, see docs/scheduled-report.md);
    when the report cannot be made, the mail says so and lists nothing as safe.

    \b
    Examples:
      retire report --prometheus http://prom:9090 --model-dir /models
      retire report --prometheus http://prom:9090 --model-dir /models \\
          --selector 'job="tfs"' --coverage 'up{job="tfs"}' --format json -o report.json
      retire report --model-base-path /models/half_plus_two --model-name half_plus_two \\
          --prometheus http://prom:9090 --at 2026-11-24T06:00:00Z
      retire report --prometheus http://prom:9090 --model-dir /models \\
          --mail-to ml-platform@example.com --smtp-host smtp.example.com \\
          --since-last /var/lib/retire/last.json
    """
    from retire.config import build
    from retire.formats import render_report
    from retire.formats.words import summary_line

    with user_errors():
        settings = resolved(given(locals()), config)
        run_deadline = deadline_of(settings)
        fmt = chosen(settings.format, REPORT)
        delivery = build.delivery(settings, run_deadline)  # bad secret or state files: exit 2, first
        sparklines = delivery.sparklines(fmt)
        tell = quietly if settings.quiet else say  # errors still go to stderr (error)
        result = delivery.made(lambda: made_report(settings, run_deadline, sparklines, tell), tell, error)
        changes = delivery.changes(result)
        color, width = screen(fmt, settings.output)
        text = render_report(
            result, fmt.name, color=color, width=width, verbose=settings.verbose, history=changes
        )
        emit(text, settings.output)
        if not fmt.terminal or settings.output is not None:  # stdout's table ends with it already
            tell(summary_line(result))
        delivery.deliver(result, changes, tell)
    raise typer.Exit(exit_code(result))


@app.command("safe-list", epilog=exit_codes(0, 2, 3, 4))
def safe_list(
    format: opt.SafeListFormat = None,
    output: opt.Output = None,
    config: Config = None,
    prometheus: opt.Prometheus = None,
    model_dir: opt.ModelDir = None,
    model_config: opt.ModelConfig = None,
    preset: opt.Preset = None,
    model_base_path: opt.ModelBasePath = None,
    model_name: opt.ModelName = None,
    threshold: opt.Threshold = None,
    selector: opt.Selector = None,
    window: opt.Window = None,
    step: opt.Step = None,
    metric: opt.Metric = None,
    model_label: opt.ModelLabel = None,
    version_label: opt.VersionLabel = None,
    at: opt.At = None,
    timeout: opt.Timeout = None,
    deadline: opt.Deadline = None,
    coverage: opt.Coverage = None,
    max_gap: opt.MaxGap = None,
    keep_latest: opt.KeepLatest = None,
    min_age: opt.MinAge = None,
    age_source: opt.AgeSource = None,
    pin: opt.Pin = None,
    header: opt.Header = None,
    tenant: opt.Tenant = None,
    bearer_token_file: opt.BearerTokenFile = None,
    basic_auth_user: opt.BasicAuthUser = None,
    basic_auth_password_file: opt.BasicAuthPasswordFile = None,
    ca_file: opt.CaFile = None,
    client_cert: opt.ClientCert = None,
    client_key: opt.ClientKey = None,
    insecure: opt.Insecure = None,
    partial_response: opt.PartialResponse = None,
    split_by_model: opt.SplitByModel = None,
    server: opt.Server = None,
    archive_dir: opt.ArchiveDir = None,
    use_recording_rules: opt.UseRecordingRules = None,
    rule_interval: opt.RuleInterval = None,
    rollup_interval: opt.RollupInterval = None,
    verbose: opt.Verbose = None,
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
    from retire.formats import render_safe_list
    from retire.formats.words import summary_line

    with user_errors():
        settings = resolved(given(locals()), config)
        fmt = chosen(settings.format, SAFE_LIST)
        result = made_report(settings, deadline_of(settings))
        emit(render_safe_list(result, fmt.name), settings.output)
        for why in fmt.left_out(result) if fmt.left_out else []:
            typer.echo(f"retire: {why}", err=True)
        say(summary_line(result))
    raise typer.Exit(exit_code(result))


@app.command()
def query(
    name: Annotated[
        str | None, typer.Argument(help="Print only this query, bare, e.g. max_hourly_qps.")
    ] = None,
    config: Config = None,
    preset: opt.Preset = None,
    selector: opt.Selector = None,
    window: opt.Window = None,
    step: opt.Step = None,
    metric: opt.Metric = None,
    model_label: opt.ModelLabel = None,
    version_label: opt.VersionLabel = None,
    coverage: opt.Coverage = None,
    max_gap: opt.MaxGap = None,
    use_recording_rules: opt.UseRecordingRules = None,
    rule_interval: opt.RuleInterval = None,
    rollup_interval: opt.RollupInterval = None,
) -> None:
    """Print the exact PromQL that `report` would send, without sending it: the evidence
    queries every command sends, and the sparkline query (hourly_qps) that only the table,
    Markdown and mailed reports send.

    \b
    Examples:
      retire query
      retire query max_hourly_qps --selector 'job="tfs"'
      curl -s http://prom:9090/api/v1/query --data-urlencode "query=$(retire query max_hourly_qps)"
    """
    from retire.config.build import params_from
    from retire.sources.prometheus.queries import report_queries

    with user_errors():
        settings = resolved(given(locals()), config)
        planned = report_queries(params_from(settings), sparklines=True)
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


@app.command(epilog=exit_codes(0, 2, 3))
def rules(
    group: Annotated[
        str | None,
        typer.Option("--group", help="Print only the fine or the rollup group (to backfill them in turn)."),
    ] = None,
    output: opt.Output = None,
    config: Config = None,
    prometheus: opt.Prometheus = None,
    preset: opt.Preset = None,
    selector: opt.Selector = None,
    window: opt.Window = None,
    step: opt.Step = None,
    metric: opt.Metric = None,
    model_label: opt.ModelLabel = None,
    version_label: opt.VersionLabel = None,
    timeout: opt.Timeout = None,
    deadline: opt.Deadline = None,
    coverage: opt.Coverage = None,
    max_gap: opt.MaxGap = None,
    header: opt.Header = None,
    tenant: opt.Tenant = None,
    bearer_token_file: opt.BearerTokenFile = None,
    basic_auth_user: opt.BasicAuthUser = None,
    basic_auth_password_file: opt.BasicAuthPasswordFile = None,
    ca_file: opt.CaFile = None,
    client_cert: opt.ClientCert = None,
    client_key: opt.ClientKey = None,
    insecure: opt.Insecure = None,
    use_recording_rules: opt.UseRecordingRules = None,
    rule_interval: opt.RuleInterval = None,
    rollup_interval: opt.RollupInterval = None,
) -> None:
    """Print Prometheus recording rules that make reports cheap on large fleets.

    Load the file with `rule_files:` in prometheus.yml, then run reports with
    --use-recording-rules and the same --metric, labels, --selector, --step and --max-gap. With
    --prometheus, the rules are made for the scrape interval the server names (a step that cannot
    hold two scrapes plus a rule interval is refused); without, the file says what it assumed.
    Versions can be safe only once the rules have run for a whole --window (or their history was
    backfilled: docs/recording-rules.md).

    \b
    Examples:
      retire rules > /etc/prometheus/retire-rules.yml && promtool check rules /etc/prometheus/retire-rules.yml
      retire rules --prometheus http://prom:9090 --selector 'job="tfs"' -o retire-rules.yml
      retire report --use-recording-rules --selector 'job="tfs"' --model-dir /models
    """
    from retire.escape import printable
    from retire.run import rules_file
    from retire.sources.prometheus.recording import GROUPS

    with user_errors():
        settings = resolved({**given(locals()), "use_recording_rules": True}, config)
        if group is not None and group not in GROUPS:
            raise ConfigError(f"--group: {group!r} is not one of {', '.join(GROUPS)}")
        # one comment line in the YAML: an argument with a line break must not start a new line
        argv = ["retire", *sys.argv[1:]] if sys.argv[1:2] == ["rules"] else ["retire", "rules"]
        command = printable(" ".join(argv))
        text = rules_file(settings, time.time(), command, (group,) if group else GROUPS)
        emit(text, settings.output)


@app.command(
    epilog="\b\nExit codes:\n  0  a preset fits\n  2  usage or config file error\n"
    "  3  Prometheus unreachable, too slow or its answer unusable\n"
    "  4  no preset's metric was found with its labels in the window"
)
def doctor(
    config: Config = None,
    prometheus: opt.Prometheus = None,
    preset: opt.Preset = None,
    selector: opt.Selector = None,
    window: opt.Window = None,
    step: opt.Step = None,
    metric: opt.Metric = None,
    model_label: opt.ModelLabel = None,
    version_label: opt.VersionLabel = None,
    timeout: opt.Timeout = None,
    deadline: opt.Deadline = None,
    coverage: opt.Coverage = None,
    max_gap: opt.MaxGap = None,
    header: opt.Header = None,
    tenant: opt.Tenant = None,
    bearer_token_file: opt.BearerTokenFile = None,
    basic_auth_user: opt.BasicAuthUser = None,
    basic_auth_password_file: opt.BasicAuthPasswordFile = None,
    ca_file: opt.CaFile = None,
    client_cert: opt.ClientCert = None,
    client_key: opt.ClientKey = None,
    insecure: opt.Insecure = None,
    use_recording_rules: opt.UseRecordingRules = None,
    rule_interval: opt.RuleInterval = None,
    rollup_interval: opt.RollupInterval = None,
) -> None:
    """Say which --preset fits: which presets' metrics Prometheus holds, with which labels.

    Reads only the index over the --window before now (no samples). Stock TF Serving exports
    request_count per model (--preset tfserving); the patched server a per-version counter
    (the default preset, docs/tfserving-patch.md). The --metric and label options, when they are
    no preset's, are checked too ("your settings"); the query options are the report's.

    \b
    Examples:
      retire doctor --prometheus http://prom:9090
      retire doctor --prometheus http://prom:9090 --selector 'job="tfs"' --window 7d
      retire doctor --prometheus http://prom:9090 --metric my_calls_total --version-label v
    """
    from retire.escape import printable
    from retire.run import doctor as check

    with user_errors():
        settings = resolved(given(locals()), config)
        fits = check(settings, time.time())
        width = max(len(f.name) for f in fits)
        for f in fits:
            mark = "fits" if f.fits else "no"
            typer.echo(printable(f"{f.name:<{width}}  {mark:<4}  {f.metric}: {f.words}"))
        good = [f.name if f.name in PRESETS else "... --metric ... (your settings)" for f in fits if f.fits]
        if not good:
            error(
                "no preset's metric has series with its labels in the window: check --prometheus, "
                "--selector and --window, or set --metric and the label options by hand"
            )
            raise typer.Exit(4)
        typer.echo(f"use: --preset {good[0]}" + (f" (also fits: {', '.join(good[1:])})" if good[1:] else ""))

"""The commands that act: `plan` (what would move), `offload`, `unload` (through the model
server) and `restore`.

Each is resolve settings -> one library call -> print. Their evidence options are listed in
their signatures with the aliases of retire.cli.options, built from the option table;
`given(locals())` hands them to config.resolve.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from retire.cli import options as opt
from retire.cli.group import app, exit_codes
from retire.cli.options import given
from retire.cli.steps import (
    Config,
    archive_of,
    chosen,
    deadline_of,
    emit,
    made_report,
    only_pins,
    resolved,
    say,
    user_errors,
)
from retire.errors import ConfigError
from retire.formats import PLAN


@app.command("plan", epilog=exit_codes(0, 2, 3, 6))
def plan_command(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Plan exactly these MODEL:VERSION.", metavar="MODEL:VERSION"),
    ] = None,
    # not the table's --format: a plan's own formats, and no RETIRE_FORMAT
    plan_format: Annotated[
        str | None, typer.Option("--format", "-f", help="text (default) or json (for offload --plan).")
    ] = None,
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
    """Show what `retire offload` would move, from the current verdicts. Changes nothing.

    Only `safe` versions are ever in a plan; `in-use`, `unknown`, `protected`, `not-on-disk` and
    `unloaded` never are. With unknown versions, planning is refused unless --only names the versions.

    \b
    Examples:
      retire plan --prometheus http://prom:9090 --model-dir /models --archive-dir /archive
      retire plan ... --archive-dir /archive --format json -o plan.json
    """
    from retire.actions.plan import plan_for
    from retire.formats import render_plan
    from retire.formats.words import nothing_safe

    with user_errors():
        settings = resolved(given(locals()), config)
        fmt = chosen(plan_format, PLAN)
        archive = archive_of(settings, "plan")
        report = made_report(settings, deadline_of(settings))
        plan = plan_for(report, archive, None, only_pins(only), say)
        has_config = settings.model_config is not None
        why = nothing_safe(report) if not plan.moves else ""
        emit(render_plan(plan, fmt.name, has_config, report.summary.advice, why), settings.output)


@app.command(epilog=exit_codes(0, 2, 3, 6))
def offload(
    apply: Annotated[
        bool, typer.Option("--apply", help="Act. Without it, a dry run that changes nothing.")
    ] = False,
    plan_file: Annotated[
        Path | None, typer.Option("--plan", help="A plan from `retire plan --format json` to carry out.")
    ] = None,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Move exactly these MODEL:VERSION.", metavar="MODEL:VERSION"),
    ] = None,
    resume_run: Annotated[
        bool, typer.Option("--resume", help="Complete the steps of an interrupted run.")
    ] = False,
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
    """Move safe versions out of the served tree into --archive-dir (dry run unless --apply).

    Immediately before moving, the evidence is gathered again: a version called since the plan
    was made is skipped and reported. Every step is journaled first; nothing is ever deleted.

    \b
    Examples:
      retire offload --prometheus http://prom:9090 --model-dir /models --archive-dir /archive
      retire offload --prometheus http://prom:9090 --model-dir /models --archive-dir /archive --apply
      retire offload ... --archive-dir /archive --plan plan.json --apply
      retire offload --archive-dir /archive --resume
    """
    from retire.actions import offload as ops
    from retire.actions.plan import plan_for
    from retire.formats.text import plan_text
    from retire.formats.words import nothing_safe
    from retire.run import carry_out

    with user_errors():
        if resume_run:
            n = ops.resume(archive_of(resolved(given(locals()), config), "offload --resume"), say)
            say(f"resumed: {n} unfinished step(s) completed" if n else "nothing to resume")
            return
        settings = resolved(given(locals()), config)
        run_deadline = deadline_of(settings)  # one for the plan, the re-check and the moves
        archive = archive_of(settings, "offload")
        report = made_report(settings, run_deadline)
        plan = plan_for(report, archive, plan_file, only_pins(only), say)
        why = nothing_safe(report) if not plan.moves else ""
        typer.echo(plan_text(plan, settings.model_config is not None, report.summary.advice, why), nl=False)
        if plan.moves and not apply:
            say("dry run: nothing was moved; add --apply to act")
        elif plan.moves:
            recheck = partial(made_report, deadline=run_deadline)
            where = str(plan_file or "the plan")
            carry_out(plan, settings, report, archive, where, recheck, say, run_deadline)


@app.command(epilog=exit_codes(0, 2, 3, 6))
def unload(
    apply: Annotated[
        bool, typer.Option("--apply", help="Act. Without it, a dry run that changes nothing.")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Unload (or with --undo load back) exactly these MODEL:VERSION.",
            metavar="MODEL:VERSION",
        ),
    ] = None,
    undo_run: Annotated[
        bool, typer.Option("--undo", help="Load back what retire unloaded (all, or --only), and confirm.")
    ] = False,
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
    """Ask the model server (--server) to unload safe, loaded versions; the others keep serving.

    Chosen: versions `safe` in a report at the present and loaded according to --server. Before
    each model's change the evidence and the server's status are read again; after it the server
    must confirm that the unloaded versions are gone and the others still loaded, else the model
    is loaded back as it was and the run stops (exit 6). A model always keeps a loaded version.
    Every change is journaled in --archive-dir/unload.jsonl; --undo loads them back. Triton
    (explicit model control) and TorchServe through their APIs; MLServer (each version's folder
    moves out of the repository into --archive-dir, then the model is loaded again; --undo needs
    --model-dir); TF Serving by rewriting --model-config (the file it polls; --server optional,
    to confirm).

    \b
    Examples:
      retire unload --prometheus http://prom:9090 --model-dir /models --preset triton \\
          --server http://triton:8000 --archive-dir /archive
      retire unload ... --server http://triton:8000 --archive-dir /archive --apply
      retire unload --undo --preset triton --server http://triton:8000 --archive-dir /archive
      retire unload --prometheus http://prom:9090 --model-config /etc/tfs/models.config \\
          --server http://tfs:8501 --archive-dir /archive --apply
      retire unload --undo --preset mlserver --server http://mlserver:8080 --archive-dir /archive \\
          --model-dir /models
    """
    from retire.run import unload as run_unload

    with user_errors():
        settings = resolved(given(locals()), config)
        run_deadline = deadline_of(settings)  # one for the choice, the re-checks and the changes
        run_unload(
            settings,
            archive_of(settings, "unload"),
            only_pins(only),
            apply=apply,
            undo=undo_run,
            build=partial(made_report, deadline=run_deadline),
            say=say,
            show=typer.echo,
            deadline=run_deadline,
        )


@app.command(epilog=exit_codes(0, 2, 6))
def restore(
    model: Annotated[str | None, typer.Option("--model", help="Only this model.")] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Only this version (with --model).")
    ] = None,
    config: Config = None,
    archive_dir: opt.ArchiveDir = None,
) -> None:
    """Move offloaded versions back where they were served from (all, or one).

    \b
    Examples:
      retire restore --archive-dir /archive
      retire restore --archive-dir /archive --model half_plus_two --version 3
    """
    from retire.actions import offload as ops
    from retire.servers import canonical_version

    with user_errors():
        if version is not None and model is None:
            raise ConfigError(
                "--version needs --model: version numbers are per model (--model NAME --version N)"
            )
        archive = archive_of(resolved(given(locals()), config), "restore")
        n = ops.restore(archive, model, canonical_version(version) if version else None, say)
        say(f"restored {n} version(s)")

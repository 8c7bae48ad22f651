"""The option table (retire.config.OPTIONS) as Typer parameter types: one `Annotated` alias per
option, named after its key (`max_gap` -> `MaxGap`), so that each command lists its options in
its own signature while the flag, aliases, metavar and help still come from the table entry.

Defaults are None in every signature so that config.resolve can tell "not given" from "given"
and apply flags > environment > config file > defaults; `given(locals())` hands a command's
table options to it. tests/cli/test_signatures.py checks every alias and every command's
parameters against the table.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from retire.config import MAIL, OPTION, OPTIONS, OUTPUT
from retire.formats import REPORT, SAFE_LIST, serving
from retire.formats import Command as FormatCommand


def flag(key: str, *, choices: tuple[str, ...] | None = None, default: str | None = None) -> Any:
    """The Typer option of one table entry; a command narrows the choices or names its own
    default (--format) without repeating the rest."""
    o = OPTION[key]
    assert o.flag is not None, key  # a secret has no flag: environment or config file only
    return typer.Option(o.flag, *o.aliases, help=o.help_text(choices, default), metavar=o.metavar)


def format_flag(command: FormatCommand) -> Any:
    """--format with the command's own choices and default, from the formats' registry."""
    default, *_ = formats = serving(command)
    shown = f"{default.name} ({default.shape})" if default.shape else default.name
    return flag("format", choices=tuple(f.name for f in formats), default=shown)


# The order config.resolve has always had them in (mail first, --format and -o last): where two
# flags are wrong, the one it names stays the same.
_ORDER = {o.key: (o.group != MAIL, o.group == OUTPUT, i) for i, o in enumerate(OPTIONS) if o.flag}


def given(values: dict[str, Any]) -> dict[str, Any]:
    """The table's options among a command's parameters (its `locals()` on entry), as the
    `flags` dict config.resolve reads: None is "not given"."""
    return {key: values[key] for key in sorted(values.keys() & _ORDER.keys(), key=_ORDER.__getitem__)}


# In the table's order (the order the help shows them), which is each command's order too. Each
# has its entry's type, but a path (or a list of them) is `str`: it reaches the table's parser as
# the text typed, since Typer would make an empty flag (`--model-dir "$UNSET"`) Path("."), the
# working directory, before the parser could refuse it.
Prometheus = Annotated[str | None, flag("prometheus")]
ModelDir = Annotated[list[str] | None, flag("model_dir")]
ModelConfig = Annotated[str | None, flag("model_config")]
Preset = Annotated[str | None, flag("preset")]
ModelBasePath = Annotated[str | None, flag("model_base_path")]
ModelName = Annotated[str | None, flag("model_name")]
Threshold = Annotated[float | None, flag("threshold")]
Selector = Annotated[str | None, flag("selector")]
Window = Annotated[str | None, flag("window")]
Step = Annotated[str | None, flag("step")]
Metric = Annotated[str | None, flag("metric")]
ModelLabel = Annotated[str | None, flag("model_label")]
VersionLabel = Annotated[str | None, flag("version_label")]
At = Annotated[str | None, flag("at")]
Timeout = Annotated[str | None, flag("timeout")]
Deadline = Annotated[str | None, flag("deadline")]
Coverage = Annotated[str | None, flag("coverage")]
MaxGap = Annotated[str | None, flag("max_gap")]
KeepLatest = Annotated[int | None, flag("keep_latest")]
MinAge = Annotated[str | None, flag("min_age")]
AgeSource = Annotated[str | None, flag("age_source")]
Pin = Annotated[list[str] | None, flag("pin")]
Header = Annotated[list[str] | None, flag("header")]
Tenant = Annotated[str | None, flag("tenant")]
BearerTokenFile = Annotated[str | None, flag("bearer_token_file")]
BasicAuthUser = Annotated[str | None, flag("basic_auth_user")]
BasicAuthPasswordFile = Annotated[str | None, flag("basic_auth_password_file")]
CaFile = Annotated[str | None, flag("ca_file")]
ClientCert = Annotated[str | None, flag("client_cert")]
ClientKey = Annotated[str | None, flag("client_key")]
Insecure = Annotated[bool | None, flag("insecure")]
PartialResponse = Annotated[str | None, flag("partial_response")]
SplitByModel = Annotated[bool | None, flag("split_by_model")]
Server = Annotated[list[str] | None, flag("server")]
ArchiveDir = Annotated[str | None, flag("archive_dir")]
UseRecordingRules = Annotated[bool | None, flag("use_recording_rules")]
RuleInterval = Annotated[str | None, flag("rule_interval")]
RollupInterval = Annotated[str | None, flag("rollup_interval")]
Verbose = Annotated[bool | None, flag("verbose")]
# --format: each command its own choices and default; -o is the same everywhere.
ReportFormat = Annotated[str | None, format_flag(REPORT)]
SafeListFormat = Annotated[str | None, format_flag(SAFE_LIST)]
Output = Annotated[str | None, flag("output")]
# `report`'s mail (README "Scheduled report").
MailTo = Annotated[list[str] | None, flag("mail_to")]
MailFrom = Annotated[str | None, flag("mail_from")]
MailWhen = Annotated[str | None, flag("mail_when")]
MailAttach = Annotated[str | None, flag("mail_attach")]
SmtpHost = Annotated[str | None, flag("smtp_host")]
SmtpPort = Annotated[int | None, flag("smtp_port")]
SmtpStarttls = Annotated[bool | None, flag("smtp_starttls")]
SmtpSsl = Annotated[bool | None, flag("smtp_ssl")]
SmtpUser = Annotated[str | None, flag("smtp_user")]
SmtpPasswordFile = Annotated[str | None, flag("smtp_password_file")]
SmtpCaFile = Annotated[str | None, flag("smtp_ca_file")]
SmtpTimeout = Annotated[str | None, flag("smtp_timeout")]
SinceLast = Annotated[str | None, flag("since_last")]
Quiet = Annotated[bool | None, flag("quiet")]

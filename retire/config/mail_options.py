"""The options of `retire report`'s mail (README "Scheduled report"): the tail of the option
table, kept apart so that each module of the table stays short enough to read."""

from __future__ import annotations

from pathlib import Path

from retire.config.option import MAIL, Option
from retire.config.parsers import (
    _address,
    _addresses,
    _attachments,
    _bool,
    _choice,
    _line,
    _path,
    _port,
    _secret,
)
from retire.durations import parse_duration
from retire.formats import ATTACHABLE

MAIL_OPTIONS: tuple[Option, ...] = (
    Option(
        "mail_to",
        _addresses,
        "Mail the report to these addresses (comma-separated, repeatable).",
        "ml-platform@example.com",
        default=(),
        group=MAIL,
        kind=list[str],
        metavar="ADDRESSES",
    ),
    Option(
        "mail_from",
        _address,
        "Sender address.",
        "retire@example.com",
        group=MAIL,
        default_text="retire@<hostname>",
    ),
    Option(
        "mail_when",
        _choice("always", "actionable"),
        "When to mail; actionable: only when something is safe, unknown or changed.",
        "actionable",
        default="always",
        group=MAIL,
        choices=("always", "actionable"),
    ),
    Option(
        "mail_attach",
        _attachments,
        f"Attach the report as {', '.join(ATTACHABLE)} or {','.join(ATTACHABLE)}.",
        ",".join(ATTACHABLE),
        default=(),
        group=MAIL,
    ),
    Option("smtp_host", _line, "SMTP server.", "smtp.example.com", default="localhost", group=MAIL),
    Option(
        "smtp_port",
        _port,
        "SMTP port.",
        "2525",
        group=MAIL,
        kind=int,
        default_text="25, 587 with --smtp-starttls, 465 with --smtp-ssl",
    ),
    Option(
        "smtp_starttls",
        _bool,
        "Upgrade the connection with STARTTLS.",
        "true",
        default=False,
        group=MAIL,
        kind=bool,
    ),
    Option("smtp_ssl", _bool, "TLS from the start (SMTPS).", "true", default=False, group=MAIL, kind=bool),
    Option(
        "smtp_user",
        _line,
        "Log in as this user; password from RETIRE_SMTP_PASSWORD or --smtp-password-file.",
        "retire",
        group=MAIL,
    ),
    Option(
        "smtp_password",
        _secret,
        "SMTP password (never a flag: the command line is visible to every user).",
        "example-password",
        group=MAIL,
        kind=None,
        secret=True,
    ),
    Option(
        "smtp_password_file",
        _path,
        "File holding the SMTP password.",
        "/run/secrets/smtp-password",
        group=MAIL,
        kind=Path,
    ),
    Option(
        "smtp_ca_file",
        _path,
        "CA bundle to verify the SMTP server's certificate.",
        "/etc/ssl/smtp-ca.pem",
        group=MAIL,
        kind=Path,
    ),
    Option(
        "smtp_timeout",
        parse_duration,
        "Bound on the whole SMTP conversation (connect, greeting, TLS, login, sending, each "
        "reply), within the run's --deadline; a failure notice gets this much even past it.",
        "10s",
        default=30.0,
        group=MAIL,
    ),
    Option(
        "since_last",
        _path,
        "Compare with the report saved here last time, then save this one (JSON).",
        "/var/lib/retire/last.json",
        group=MAIL,
        kind=Path,
    ),
    Option(
        "quiet",
        _bool,
        "Nothing on stderr unless something fails (the report still goes to stdout, -o or mail): "
        "cron then mails only failures.",
        "true",
        default=False,
        group=MAIL,
        kind=bool,
        aliases=("-q",),
    ),
)

"""What one option is: the entry of the option table (`options.OPTIONS`) that its flag,
environment variable, config-file key, parser, default and help all come from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from retire.config.parsers import Parser
from retire.durations import format_duration, parse_duration

# Which commands carry an option's flag: QUERY shapes the PromQL (`query`, `rules` and every
# command that gathers evidence), CONNECTION reaches the server (`rules`, to learn the scrape
# interval, and the evidence commands), EVIDENCE the other options of those commands, MAIL those
# of `report` only, OUTPUT the per-command --format and -o (declared here, attached by each command),
# ARCHIVE the archive of the commands that move or unload, which `restore` and the reports read too.
QUERY, CONNECTION, EVIDENCE, MAIL, OUTPUT = "query", "connection", "evidence", "mail", "output"
ARCHIVE = "archive"


@dataclass(frozen=True)
class Option:
    """One option, declared once: its setting, flag, environment variable, config-file key,
    parser, default and help all come from this entry (README "Configuration and credentials")."""

    key: str  # the Settings field and the config-file key; the flag is --key-with-dashes
    parse: Parser
    help: str  # what it does, one sentence; choices, default and env var are added to it
    example: str  # a valid value as text (what a user would type), for the tests and the docs
    default: Any = None
    group: str = EVIDENCE
    kind: Any = str  # the flag's value type for Typer; None: no flag (a secret: env or file only)
    aliases: tuple[str, ...] = ()
    metavar: str | None = None
    env: str | None = None  # None: RETIRE_<KEY>
    choices: tuple[str, ...] = ()
    default_text: str | None = None  # the default in words, where the value alone does not say it
    secret: bool = False  # kept out of Settings' repr (the parser registers it for redaction)

    @property
    def env_var(self) -> str:
        return self.env or "RETIRE_" + self.key.upper()

    @property
    def flag(self) -> str | None:
        return None if self.kind is None else flag_name(self.key)

    @property
    def shown_default(self) -> str | None:
        """The default as a user would write it, or None when there is nothing to say."""
        if self.default_text is not None:
            return self.default_text
        value = self.default
        if value is None or value is False or value in ("", ()):
            return None
        if self.parse is parse_duration:
            return format_duration(value)
        return f"{value:g}" if isinstance(value, float) else str(value)

    def help_text(self, choices: tuple[str, ...] | None = None, default: str | None = None) -> str:
        """The help line: what it does, the choices, the default and the env var, in that order.
        A command that accepts fewer choices or has its own default (--format) passes them."""
        choices = self.choices if choices is None else choices
        default = self.shown_default if default is None else default
        parts = [self.help]
        if choices:
            parts.append(f"One of: {', '.join(choices)}.")
        if default is not None:
            parts.append(f"Default: {default}.")
        parts.append(f"[env: {self.env_var}]")
        return " ".join(parts)


def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")

"""Errors users see, one family per source, each carrying its documented exit code.

The CLI catches only `RetireError` and prints its message as one line, so every message here must
say what went wrong and how to fix it. Library errors are wrapped (`raise ... from e`) so a traceback
never reaches the user.
"""

from __future__ import annotations

# Exit codes are part of the interface (cron jobs and scripts branch on them); README lists them.
EXIT_OK = 0
EXIT_USAGE = 2  # bad flags, config file, model directory
EXIT_PROMETHEUS = 3  # the metrics backend or the model server (--server) failed or answered garbage
EXIT_INCOMPLETE = 4  # report built, but at least one version is `unknown`
EXIT_MAIL = 5  # the report was made but could not be mailed; nothing was sent
EXIT_REFUSED = 6  # offload, resume or restore refused to act, or could not (the journal says what)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT, as shells report it)


class RetireError(Exception):
    """Base of every error the CLI turns into one line and an exit code."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(RetireError):
    """Bad flags, environment variables or config file."""


class InventoryError(RetireError):
    """The model directory cannot be read."""


class PrometheusError(RetireError):
    """The Prometheus-compatible server could not be reached or gave an unusable answer."""

    exit_code = EXIT_PROMETHEUS


class ServerError(RetireError):
    """The model server asked which versions are loaded (TF Serving, Triton, TorchServe status
    APIs) could not be reached or gave an unusable answer. Same exit code as Prometheus: a source
    of evidence failed."""

    exit_code = EXIT_PROMETHEUS


class OutputError(RetireError):
    """The report could not be written where asked."""


class MailError(RetireError):
    """The SMTP server refused or failed; the message was not sent to anyone."""

    exit_code = EXIT_MAIL


class OffloadError(RetireError):
    """retire refused to act, or could not; the journal says what, if anything, was done."""

    exit_code = EXIT_REFUSED


# A value's type in the words of where it came from: a TOML file or flag (config), or a JSON answer.
_TOML_WORDS = {"str": "text", "dict": "a table"}
_JSON_WORDS = {"str": "a string", "dict": "an object", "NoneType": "null"}


def kind_of(value: object, *, json: bool = False) -> str:
    """A value's type in words: type errors name the key and the type, never the value (which may
    be a secret put under the wrong key). `json`: in JSON's words, for answers from a server."""
    words = _JSON_WORDS if json else _TOML_WORDS
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, (list, tuple)):
        return "a list"
    for kind in (str, dict, type(None)):
        if isinstance(value, kind) and kind.__name__ in words:
            return words[kind.__name__]
    return f"a {type(value).__name__}"

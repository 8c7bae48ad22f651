"""Hostile options for the Prometheus connection (issue #15's attacks): one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from retire import redact
from retire.config import Settings
from retire.config.build import mailing
from retire.delivery.mail import send_failure
from retire.errors import RetireError
from retire.run import build_report
from tests import hostile_servers as hs
from tests.conftest import run_cli
from tests.smtp_servers import Inbox, smtp

TOO_LONG = "9" * 300  # longer than NAME_MAX: the OS refuses to look it up (ENAMETOOLONG)


@pytest.mark.parametrize(
    "args",
    [
        ["--ca-file", f"/tmp/{TOO_LONG}"],
        ["--client-cert", f"/tmp/{TOO_LONG}", "--client-key", f"/tmp/{TOO_LONG}"],
    ],
)
def test_tls_file_whose_name_is_too_long_is_one_line_exit_2(tmp_path: Path, args: list[str]) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    with hs.serve(hs.normal) as url:
        run = run_cli("report", "--prometheus", url, "--model-dir", str(tmp_path), *args)
    lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
    assert run.exit_code == 2 and len(lines) == 1, run.stderr
    assert lines[0].startswith(f"retire: error: {args[0]} ") and "name too long" in lines[0].lower()


@pytest.mark.parametrize(
    ("secret", "given"),
    [
        ("tenant-Secret-77", {"tenant": "tenant-Secret-77"}),
        ("hdr-Secret-88", {"header": ("Authorization: Bearer hdr-Secret-88",)}),
        ("key-Secret-89", {"header": ("X-Api-Key: key-Secret-89",)}),
    ],
)
def test_library_settings_secrets_are_scrubbed_from_errors_and_the_failure_mail(
    tmp_path: Path, secret: str, given: dict[str, object]
) -> None:
    """A library user builds Settings without retire.config.resolve (whose parsers register the
    secrets): the connection that sends a header must still know it is a secret, or a server
    that echoes the request puts it in the error and the failure mail."""
    (tmp_path / "m" / "1").mkdir(parents=True)
    redact.clear()
    inbox = Inbox()
    with hs.serve(hs.echo_error) as url, smtp(inbox) as port:
        settings = Settings(
            prometheus=url,
            model_dir=(tmp_path,),
            mail_to=("ops@example.com",),
            smtp_host="127.0.0.1",
            smtp_port=port,
            **given,  # type: ignore[arg-type]
        )
        with pytest.raises(RetireError) as caught:
            build_report(settings, now=1_800_000_000.0)
        send_failure(mailing(settings), caught.value)
    shown = redact.scrub(caught.value.message)
    assert secret not in shown and ": ***;" in shown  # the server echoed it; it is known as a secret
    ((_, _, msg),) = inbox.messages
    assert secret not in msg.as_string() and "rejected the query" in msg.as_string()

"""The Prometheus client split into answers.py and connection.py, and the mail moved behind
delivery/deliver.py: a server that echoes the request's headers in its error must still leak no
bearer token, password or header value into the error line or the failure mail. Same as feeefdc."""

from __future__ import annotations

from pathlib import Path

import pytest

import tests.hostile_servers as hs
from tests.conftest import run_cli
from tests.smtp_servers import Inbox, smtp

SECRET = "S3cret-7d41c0"


def _auth(kind: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "secret"
    path.write_text(SECRET)
    if kind == "bearer":
        return ["--bearer-token-file", str(path)]
    if kind == "basic":
        return ["--basic-auth-user", "bob", "--basic-auth-password-file", str(path)]
    return ["--header", f"X-Api-Key: {SECRET}"]


@pytest.mark.parametrize("kind", ["bearer", "basic", "header"])
def test_an_echoed_error_and_its_failure_mail_leak_no_secret(tmp_path: Path, kind: str) -> None:
    models = tmp_path / "models"
    (models / "a" / "1").mkdir(parents=True)
    inbox = Inbox()
    with hs.serve(hs.echo_error) as url, smtp(inbox) as port:
        run = run_cli(
            "report",
            "--prometheus",
            url,
            "--model-dir",
            str(models),
            *_auth(kind, tmp_path),
            "--mail-to",
            "team@example.com",
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            str(port),
        )
    assert run.exit_code == 3, run.stderr
    assert "***" in run.stderr  # the echo reached the user, masked
    assert SECRET not in run.stdout + run.stderr
    assert len(inbox.messages) == 1  # the failure mail
    mail = inbox.messages[0][2]
    text = "".join(str(part.get_content()) for part in mail.walk() if not part.is_multipart())
    assert SECRET not in text and SECRET not in str(mail)

"""Credentials in the URLs retire connects to (issue #15's attacks): the user info of a URL
travels as `Authorization: Basic base64(user:password)`; a server that echoes the request must
not put it in front of the user."""

from __future__ import annotations

import base64
from pathlib import Path

from retire import redact
from retire.config import Settings
from retire.errors import RetireError
from retire.run import build_report
from tests import hostile_servers as hs
from tests.conftest import run_cli

PASSWORD = "url-Secret-123"
BASIC = base64.b64encode(f"svc:{PASSWORD}".encode()).decode()


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://svc:{PASSWORD}@")


def test_server_url_credentials_are_scrubbed_from_the_error(tmp_path: Path) -> None:
    """--server is another server than Prometheus, and its URL's password was never registered."""
    (tmp_path / "m" / "1").mkdir(parents=True)
    with hs.serve(hs.normal) as url, hs.serve(hs.echo_error) as status_api:
        run = run_cli(
            "report",
            "--prometheus",
            url,
            "--model-dir",
            str(tmp_path),
            "--server",
            _with_password(status_api),
        )
    assert run.exit_code == 3 and "Authorization: Basic ***" in run.stderr, run.stderr
    assert BASIC not in run.stderr and PASSWORD not in run.stderr


def test_library_prometheus_url_credentials_are_scrubbed_from_the_error(tmp_path: Path) -> None:
    """Settings built without config.resolve (whose URL parser registers the user info)."""
    (tmp_path / "m" / "1").mkdir(parents=True)
    redact.clear()
    with hs.serve(hs.echo_error) as url:
        settings = Settings(prometheus=_with_password(url), model_dir=(tmp_path,))
        try:
            build_report(settings, now=1_800_000_000.0)
        except RetireError as e:
            shown = redact.scrub(e.message)
        else:
            raise AssertionError("the echoing server's error was not raised")
    assert "Authorization: Basic ***" in shown and BASIC not in shown

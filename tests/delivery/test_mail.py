"""The mailed report, against real SMTP servers on 127.0.0.1 and the real Prometheus lab."""

from __future__ import annotations

import functools
import os
import shlex
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from retire.lab.servers import free_port
from tests import fake_servers as fs
from tests import scenarios as sc
from tests.conftest import Lab, run_cli
from tests.readback import HtmlTable
from tests.smtp_servers import Inbox, raw_server, smtp

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "smtp-s3cret-pass"


def mail_args(port: int, *extra: str) -> list[str]:
    return [
        "--mail-to",
        "a@example.com,b@example.com",
        "--mail-from",
        "retire@example.com",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        str(port),
        *extra,
    ]


def parts(msg):  # type: ignore[no-untyped-def]
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    attachments = {a.get_filename(): a.get_content() for a in msg.iter_attachments()}
    return text, html, attachments


@pytest.mark.prometheus
def test_report_mail_has_both_parts_subject_recipients_and_attachments(lab: Lab) -> None:
    inbox = Inbox()
    with smtp(inbox) as port:
        run = run_cli("report", *lab.args(sc.BASIC), *mail_args(port, "--mail-attach", "json,csv"))
    assert run.exit_code == 0, run.stderr
    assert "mailed the report to a@example.com, b@example.com" in run.stderr
    ((sender, rcpts, msg),) = inbox.messages
    assert sender == "retire@example.com" and rcpts == ["a@example.com", "b@example.com"]
    assert msg["Subject"] == "retire: 3 versions safe to offload (7.2 MiB)"
    text, html, attachments = parts(msg)
    assert "alpha" in text and "no series in window" in text and "\x1b[" not in text
    assert set(attachments) == {"retire-report.json", "retire-report.csv"}
    table = HtmlTable()
    table.feed(html)
    header, *rows = table.rows
    assert header[:4] == ["Model", "Version", "Status", "Traffic"]
    by_key = {(r[0], r[1]): r for r in rows}
    assert by_key[("alpha", "2")][2] == "safe" and by_key[("alpha", "1")][2] == "in-use"
    assert set(by_key[("alpha", "1")][3]) <= set("▁▂▃▄▅▆▇█ ") and by_key[("alpha", "1")][3].strip()
    recent = by_key[("alpha", "5")][3]  # traffic only in the last 5 hours: blanks first, then bars
    assert len(recent) == 24 and recent.startswith(" " * 18) and recent.endswith("█")
    assert "white-space:pre" in html
    assert "max_over_time(sum by (model_name, model_version)" in html
    assert lab.url in html and "window" in html and "frees" in html


def test_html_escapes_names_from_disk_and_prometheus(tmp_path: Path) -> None:
    (tmp_path / "<script>alert(1)" / "1").mkdir(parents=True)
    inbox = Inbox()
    script = {"model_name": "<script>alert(1)", "model_version": "1", "instance": "tfs-0"}
    with fs.serve(functools.partial(fs.full_answer, flat=script)) as url, smtp(inbox) as port:
        run = run_cli(
            "report",
            "--prometheus",
            url,
            "--model-dir",
            str(tmp_path),
            "--keep-latest",
            "0",
            "--min-age",
            "0",
            *mail_args(port),
        )
    assert run.exit_code == 0, run.stderr
    _, html, _ = parts(inbox.messages[0][2])
    assert "<script>" not in html and "&lt;script&gt;alert(1)" in html
    table = HtmlTable()
    table.feed(html)
    assert table.rows[1][0] == "<script>alert(1)"


@pytest.mark.prometheus
def test_starttls_with_a_self_signed_certificate_and_login_from_env(lab: Lab, tmp_path: Path) -> None:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    inbox = Inbox()
    with smtp(inbox, tls=ctx, logins={"retire": PASSWORD}) as port:
        args = mail_args(port, "--smtp-starttls", "--smtp-user", "retire", "--smtp-ca-file", str(bundle))
        run = run_cli("report", *lab.args(sc.BASIC), *args, env={"RETIRE_SMTP_PASSWORD": PASSWORD})
        assert run.exit_code == 0, run.stderr
        assert len(inbox.messages) == 1
        wrong = run_cli("report", *lab.args(sc.BASIC), *args, env={"RETIRE_SMTP_PASSWORD": "nope"})
        assert wrong.exit_code == 5 and "refused the login" in wrong.stderr
        untrusted = run_cli("report", *lab.args(sc.BASIC), *mail_args(port, "--smtp-starttls"))
        assert untrusted.exit_code == 5 and "--smtp-ca-file" in untrusted.stderr
    assert len(inbox.messages) == 1
    assert PASSWORD not in run.stderr + wrong.stderr


@pytest.mark.prometheus
def test_refused_recipient_sends_nothing_to_anyone(lab: Lab) -> None:
    inbox = Inbox(refuse={"b@example.com"})
    with smtp(inbox) as port:
        run = run_cli("report", *lab.args(sc.BASIC), *mail_args(port))
    assert run.exit_code == 5
    assert inbox.messages == []
    assert "refused recipient b@example.com: 550" in run.stderr and "nothing was sent" in run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("behaviour", "needle"), [("close", "closed the connection"), ("silent", "did not answer")]
)
def test_smtp_server_faults_exit_5(lab: Lab, behaviour: str, needle: str) -> None:
    with raw_server(behaviour) as port:
        run = run_cli("report", *lab.args(sc.BASIC), *mail_args(port, "--smtp-timeout", "1"))
    assert run.exit_code == 5
    assert needle in run.stderr.strip().splitlines()[-1]


def test_prometheus_down_still_mails_a_failure(tmp_path: Path) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    inbox = Inbox()
    with smtp(inbox) as port:
        run = run_cli(
            "report",
            "--prometheus",
            f"http://127.0.0.1:{free_port()}",
            "--model-dir",
            str(tmp_path),
            *mail_args(port),
        )
    assert run.exit_code == 3
    ((_, _, msg),) = inbox.messages
    assert "FAILED" in msg["Subject"] and "nothing listed as safe" in msg["Subject"]
    text, html, _ = parts(msg)
    assert "cannot reach Prometheus" in text and "No version is listed as safe" in text
    assert "could not make the report" in html


@pytest.mark.prometheus
def test_unknown_rows_are_in_the_subject(lab: Lab) -> None:
    inbox = Inbox()
    with smtp(inbox) as port:
        run = run_cli("report", *lab.args(sc.HOLE), *mail_args(port, "--keep-latest", "0"))
    assert run.exit_code == 4
    assert inbox.messages[0][2]["Subject"] == "retire: 0 versions safe to offload (0 B), 2 unknown"


@pytest.mark.prometheus
def test_mail_when_actionable_suppresses_empty_reports(lab: Lab, tmp_path: Path) -> None:
    # Only alpha/1 (in use) and alpha/8 (newest: protected) on disk: nothing to act on.
    for v in ("1", "8"):
        (tmp_path / "alpha" / v).mkdir(parents=True)
    nothing = [
        "--prometheus",
        lab.url,
        "--model-base-path",
        str(tmp_path / "alpha"),
        "--model-name",
        "alpha",
        "--selector",
        'scenario="basic",model_name="alpha",model_version=~"1|8"',
        "--at",
        str(lab.end),
    ]
    inbox = Inbox()
    with smtp(inbox) as port:
        quiet = run_cli("report", *nothing, *mail_args(port, "--mail-when", "actionable"))
        loud = run_cli("report", *lab.args(sc.BASIC), *mail_args(port, "--mail-when", "actionable"))
    assert quiet.exit_code in (0, 4) and "no mail sent" in quiet.stderr
    assert loud.exit_code == 0 and len(inbox.messages) == 1


@pytest.mark.prometheus
def test_since_last_shows_what_changed(lab: Lab, tmp_path: Path) -> None:
    state = tmp_path / "last.json"
    earlier = ["--window", "23h", "--at", str(sc.END - 8 * sc.HOUR)]
    first = run_cli("report", *lab.args(sc.BASIC, "--since-last", str(state)), *earlier[:2], *earlier[2:])
    assert "no previous report (first run)" in first.stdout
    assert state.exists()
    second = run_cli(
        "report", *lab.args(sc.BASIC, "--since-last", str(state), "--window", "23h", "--format", "json")
    )
    changes = {(c["model"], c["version"]): c["kind"] for c in second.json()["since_last"]["changes"]}  # type: ignore[index]
    assert changes[("alpha", "3")] == "became safe"
    assert changes[("alpha", "5")] == "used again"
    assert [p.name for p in tmp_path.iterdir()] == ["last.json"]  # written atomically, no leftovers


@pytest.mark.prometheus
def test_the_cron_line_runs_plain(lab: Lab, tmp_path: Path) -> None:
    line = next(x for x in (ROOT / "examples" / "crontab").read_text().splitlines() if x.startswith("0 7 "))
    command = line.split(None, 5)[5]
    home = _fresh_home(tmp_path)
    (home / ".local" / "state").mkdir(parents=True)
    inbox = Inbox()
    with smtp(inbox) as port:
        env = {
            **os.environ,
            "HOME": str(home),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "RETIRE_PROMETHEUS_URL": lab.url,
            "RETIRE_MODEL_DIR": str(lab.models(sc.BASIC)),
            "RETIRE_SELECTOR": 'scenario="basic"',
            "RETIRE_COVERAGE": 'up{scenario="basic"}',
            "RETIRE_AT": str(lab.end),
            "RETIRE_SMTP_HOST": "127.0.0.1",
            "RETIRE_SMTP_PORT": str(port),
            "TERM": "xterm-256color",
        }
        run = subprocess.run(
            ["/bin/sh", "-c", command],
            env=env,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
    assert run.returncode == 0, run.stderr
    report = (home / ".local" / "state" / "retire-report.txt").read_text()
    for output in (run.stdout, run.stderr, report):
        assert "\x1b" not in output
    assert "3 safe to offload" in report and len(inbox.messages) == 1
    assert shlex.split(command)[0] == "$HOME/.local/bin/retire"


def _cron_env(home: Path, crontab: str, **override: str) -> dict[str, str]:
    """What cron gives a job: HOME, LOGNAME, SHELL and PATH=/usr/bin:/bin, plus the crontab's
    own variable lines (here pointed at the lab), and nothing else."""
    env = {"HOME": str(home), "LOGNAME": "root", "SHELL": "/bin/sh", "PATH": "/usr/bin:/bin"}
    for line in crontab.splitlines():
        name, eq, value = line.partition("=")
        if eq and name.isidentifier() and not line.startswith("#"):
            env[name] = value
    return {**env, **override}


def _fresh_home(tmp_path: Path) -> Path:
    """A HOME with retire where `pipx install` puts it, and nothing else (no ~/.local/state)."""
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "retire").symlink_to(Path(sys.executable).parent / "retire")
    return home


@pytest.mark.prometheus
def test_the_crontab_runs_as_cron_runs_it_and_is_quiet_on_success(lab: Lab, tmp_path: Path) -> None:
    """#26: the example as it stands, under `env -i` with cron's PATH and a fresh HOME: the mail
    goes out, the state directory is made, and nothing is printed, so cron mails nobody."""
    crontab = (ROOT / "examples" / "crontab").read_text()
    command = next(x for x in crontab.splitlines() if x.startswith("0 7 ")).split(None, 5)[5]
    home = _fresh_home(tmp_path)
    inbox = Inbox()
    with smtp(inbox) as port:
        env = _cron_env(
            home,
            crontab,
            RETIRE_PROMETHEUS_URL=lab.url,
            RETIRE_MODEL_DIR=str(lab.models(sc.BASIC)),
            RETIRE_SELECTOR='scenario="basic"',
            RETIRE_COVERAGE='up{scenario="basic"}',
            RETIRE_AT=str(lab.end),
            RETIRE_SMTP_HOST="127.0.0.1",
            RETIRE_SMTP_PORT=str(port),
        )
        run = subprocess.run(
            ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "/bin/sh", "-c", command],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
        assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
        assert len(inbox.messages) == 1
        state = home / ".local" / "state"
        assert "3 safe to offload" in (state / "retire-report.txt").read_text()
        assert (state / "retire-last.json").is_file() and state.stat().st_mode & 0o777 == 0o700
        env["RETIRE_PROMETHEUS_URL"] = "http://127.0.0.1:9"  # down: cron must mail this one line
        run = subprocess.run(
            ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "/bin/sh", "-c", command],
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
        )  # fmt: skip
    assert run.returncode == 3 and run.stdout == "" and run.stderr.count("\n") == 1, run.stderr
    assert run.stderr.startswith("retire: error: cannot reach Prometheus")
    assert len(inbox.messages) == 2  # the team hears of the failure too


@pytest.mark.prometheus
def test_nothing_listening_names_the_host_and_port_to_check(lab: Lab) -> None:
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = run_cli("report", *lab.args(sc.BASIC), *mail_args(port))
    assert run.exit_code == 5 and run.stderr.count("\n") == 1, run.stderr
    assert f"nothing listens at 127.0.0.1 port {port}" in run.stderr and "--smtp-port" in run.stderr

"""Every wait has a deadline: servers that trickle bytes (a status line, headers, a body, an
endless chunked body, an SMTP greeting or reply) or never answer cannot hold a request past
--timeout, a mail past --smtp-timeout, or a run (and offload's locks) past --deadline.

Real servers on 127.0.0.1 (tests/trickle_servers.py). Each test checks the exit code, one error
line and no traceback, that the run ended within its bound plus a margin (a bound, not a
benchmark), and that no output file was written."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller

from retire.actions.journal import Journal
from retire.actions.locks import locked, locked_roots
from retire.actions.offload import apply
from retire.actions.plan import Checked, checked_moves, make_plan
from retire.config import resolve
from retire.deadline import Deadline
from retire.errors import OffloadError
from retire.lab.servers import free_port
from retire.run import build_report
from tests import fake_servers as fs
from tests import hostile_servers as hs
from tests import trickle_servers as ts
from tests.conftest import Run, run_cli
from tests.hostile_servers import Answer, Request
from tests.smtp_servers import Inbox

MARGIN = 3.0  # seconds a run may take past its bound: process work, not waiting


@pytest.fixture
def models(tmp_path: Path) -> Path:
    for v in ("1", "2"):
        (tmp_path / "models" / "m" / v).mkdir(parents=True)
        (tmp_path / "models" / "m" / v / "saved_model.pb").write_bytes(b"x" * 10)
    return tmp_path / "models"


def _report(prometheus: str, models: Path, *extra: str) -> tuple[Run, float]:
    """`retire report` to a file, timed; versions safe unless the evidence says otherwise."""
    out = models.parent / "report.json"
    started = time.monotonic()
    run = run_cli(
        "report",
        "--prometheus",
        prometheus,
        "--model-dir",
        str(models),
        "--keep-latest",
        "0",
        "--min-age",
        "0",
        "--format",
        "json",
        "-o",
        str(out),
        *extra,
    )
    return run, time.monotonic() - started


def _failed(run: Run, code: int, *needles: str, after: int = 0) -> str:
    """The exit code, the error in one line on stderr, no traceback; returns the line. `after`:
    how many `retire:` notes come before it (a report made, then its mail failed)."""
    assert run.exit_code == code, (run.exit_code, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == after + 1 and lines[-1].startswith("retire: error: "), run.stderr
    assert all(line.startswith("retire: ") and "error" not in line for line in lines[:-1]), run.stderr
    assert "Traceback" not in run.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]
    return lines[-1]


def _nothing_written(models: Path) -> None:
    assert sorted(p.name for p in models.parent.iterdir()) == ["models"]


# --- Prometheus: --timeout bounds each whole request ---


@pytest.mark.parametrize("way", ts.HTTP_WAYS)
def test_a_prometheus_that_trickles_cannot_hold_a_request_past_timeout(models: Path, way: str) -> None:
    with ts.http(way, hs.normal) as url:
        run, took = _report(url, models, "--timeout", "1")
    _failed(run, 3, f"Prometheus at {url} did not answer within 1s", "--timeout")
    assert took < 1 + MARGIN, took
    _nothing_written(models)


def test_the_run_deadline_cuts_a_request_that_timeout_would_allow(models: Path) -> None:
    with ts.http("body", hs.normal) as url:
        run, took = _report(url, models, "--timeout", "30", "--deadline", "1")
    _failed(run, 3, f"Prometheus at {url} did not answer before the run's --deadline (1s) passed")
    assert took < 1 + MARGIN, took
    _nothing_written(models)


def test_the_run_deadline_across_many_slow_but_timely_queries(models: Path) -> None:
    """Each answer takes 0.3 s, well within --timeout (5 s: on a loaded machine one answer took
    over 1 s, and --timeout, not the deadline, ended the run); run by model over 40 models they
    take far longer than --deadline together. The run stops at the deadline and starts no query
    after it."""
    for n in range(40):
        (models / f"model{n:02d}" / "1").mkdir(parents=True)
    seen: list[float] = []

    def slow(request: Request) -> Answer:
        seen.append(time.monotonic())
        time.sleep(0.3)
        return hs.normal(request)

    with hs.serve(slow) as url:
        started = time.monotonic()
        run, took = _report(url, models, "--timeout", "5", "--deadline", "2", "--split-by-model")
        time.sleep(0.5)  # any query started late would have reached the server by now
    _failed(run, 3, "did not answer before the run's --deadline (2s) passed", "--deadline")
    assert took < 2 + MARGIN, took
    assert len(seen) > 8 and max(seen) - started < 2 + 0.3, (len(seen), max(seen) - started)
    _nothing_written(models)


# --- The model server (--server): the same bounds ---


@pytest.mark.parametrize("way", ts.HTTP_WAYS)
def test_a_model_server_that_trickles_cannot_hold_a_request_past_timeout(models: Path, way: str) -> None:
    status = ts.json_answer({"model_version_status": [{"version": "1", "state": "AVAILABLE"}]})
    with fs.serve(fs.full_answer) as prometheus, ts.http(way, status) as server:
        run, took = _report(prometheus, models, "--server", server, "--timeout", "1")
    _failed(run, 3, f"model server {server}/v1/models/m did not answer within 1s", "--server")
    assert took < 1 + MARGIN, took
    _nothing_written(models)


def test_a_model_server_past_the_run_deadline(models: Path) -> None:
    status = ts.json_answer({"model_version_status": []})
    with fs.serve(fs.full_answer) as prometheus, ts.http("headers", status) as server:
        run, took = _report(prometheus, models, "--server", server, "--timeout", "30", "--deadline", "2")
    _failed(run, 3, "did not answer before the run's --deadline (2s) passed", "--deadline")
    assert took < 2 + MARGIN, took
    _nothing_written(models)


# --- SMTP: --smtp-timeout bounds the whole conversation ---


def _mail(port: int, *extra: str) -> list[str]:
    return ["--mail-to", "a@example.com", "--smtp-host", "127.0.0.1", "--smtp-port", str(port), *extra]


@pytest.mark.parametrize("way", ["greeting", "reply"])
def test_an_smtp_server_that_trickles_cannot_hold_the_mail_past_smtp_timeout(models: Path, way: str) -> None:
    """The report was made and written before mailing, as for any mail failure (its summary is
    the note before the error); the mail is cut at --smtp-timeout and nothing is sent."""
    with fs.serve(fs.full_answer) as prometheus, ts.smtp(way) as port:
        run, took = _report(prometheus, models, *_mail(port, "--smtp-timeout", "1"))
    _failed(run, 5, f"SMTP server 127.0.0.1:{port} did not answer within 1s; nothing was sent", after=1)
    assert took < 1 + MARGIN, took


@pytest.fixture
def tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate for 127.0.0.1, and the CA bundle that trusts it."""
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    return ctx, bundle


def test_smtps_still_delivers_and_its_trickle_is_cut_too(
    models: Path, tls: tuple[ssl.SSLContext, Path]
) -> None:
    """--smtp-ssl (TLS from the start) through the bounded client: a healthy server gets the
    message; one that trickles its greeting inside TLS is cut at --smtp-timeout."""
    ctx, bundle = tls
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), ssl_context=ctx)
    controller.start()
    try:
        with fs.serve(fs.full_answer) as prometheus:
            args = _mail(controller.port, "--smtp-ssl", "--smtp-ca-file", str(bundle))
            run, _ = _report(prometheus, models, *args)
    finally:
        controller.stop()
    assert run.exit_code == 0, run.stderr
    assert len(inbox.messages) == 1
    (models.parent / "report.json").unlink()
    with fs.serve(fs.full_answer) as prometheus, ts.smtp("greeting", tls=ctx) as port:
        args = _mail(port, "--smtp-ssl", "--smtp-ca-file", str(bundle), "--smtp-timeout", "1")
        run, took = _report(prometheus, models, *args)
    _failed(run, 5, f"SMTP server 127.0.0.1:{port} did not answer within 1s", after=1)
    assert took < 1 + MARGIN, took


def test_an_smtp_server_past_the_run_deadline(models: Path) -> None:
    with fs.serve(fs.full_answer) as prometheus, ts.smtp("reply") as port:
        run, took = _report(prometheus, models, *_mail(port, "--smtp-timeout", "30"), "--deadline", "2")
    _failed(run, 5, "did not answer before the run's --deadline (2s) passed; nothing was sent", after=1)
    assert took < 2 + MARGIN, took


def test_the_failure_notice_is_bounded_too(models: Path) -> None:
    """Prometheus trickles past --deadline, then the SMTP server trickles the failure notice:
    the notice gets its own --smtp-timeout, and no more. Two lines: the cause, then the mail's."""
    with ts.http("body", hs.normal) as prometheus, ts.smtp("greeting") as port:
        run, took = _report(prometheus, models, *_mail(port, "--smtp-timeout", "1"), "--deadline", "1")
    assert run.exit_code == 5 and "Traceback" not in run.stderr, run.stderr
    cause, mail = run.stderr.strip().splitlines()
    assert "--deadline (1s) passed" in cause and "did not answer within 1s" in mail
    assert took < 1 + 1 + MARGIN, took
    _nothing_written(models)


# --- offload: the locks are free once the deadline has passed; no move starts after it ---


def _again(request: Request, seen: set[tuple[str, str]]) -> str:
    """'prompt' for the plan's queries, 'body' (trickle) when the same query comes again: the
    re-check that offload makes under its locks."""
    key = (request.path, request.form.get("query") or request.form.get("match[]", ""))
    way = "body" if key in seen else "prompt"
    seen.add(key)
    return way


def _offload_args(url: str, models: Path, archive: Path, *extra: str) -> list[str]:
    common = ["--keep-latest", "0", "--min-age", "0", "--archive-dir", str(archive)]
    return ["offload", "--prometheus", url, "--model-dir", str(models), *common, "--apply", *extra]


def _tree(models: Path) -> list[str]:
    return sorted(str(p.relative_to(models)) for p in models.rglob("*"))


def test_offload_releases_its_locks_when_the_recheck_passes_the_deadline(
    models: Path, tmp_path: Path
) -> None:
    archive = tmp_path / "archive"
    before = _tree(models)
    seen: set[tuple[str, str]] = set()
    with ts.http(lambda r: _again(r, seen), hs.normal) as url:
        started = time.monotonic()
        run = run_cli(*_offload_args(url, models, archive, "--timeout", "30", "--deadline", "3"))
        took = time.monotonic() - started
    assert seen, "the plan's queries reached the server"
    _failed(run, 3, "did not answer before the run's --deadline (3s) passed")
    assert took < 3 + MARGIN, took
    assert _tree(models) == before and not (archive / "journal.jsonl").exists()
    with locked(archive), locked_roots([str(models)]):
        pass  # free at once: nothing still holds them
    with fs.serve(fs.full_answer) as url:
        again = run_cli(*_offload_args(url, models, archive))
    assert again.exit_code == 0, again.stderr
    assert "offloaded 2 version(s)" in again.stderr


@pytest.fixture
def checked(models: Path, tmp_path: Path) -> Iterator[tuple[Path, list[Checked]]]:
    """Two safe moves, checked against a report from a healthy server."""
    archive = tmp_path / "archive"
    with fs.serve(fs.full_answer) as url:
        flags = {"prometheus": url, "model_dir": [str(models)], "keep_latest": 0, "min_age": 0}
        report = build_report(resolve(flags, env={}), now=time.time())
    plan = make_plan(report, archive)
    archive.mkdir()
    yield archive, checked_moves(plan, report, archive, "the plan", print)


def test_no_move_starts_after_the_deadline(models: Path, checked: tuple[Path, list[Checked]]) -> None:
    archive, moves = checked
    before = _tree(models)
    with pytest.raises(OffloadError) as e:
        apply(archive, moves, print, Deadline(0))
    assert e.value.exit_code == 6 and "--deadline (0s) passed" in e.value.message
    assert "0 version(s) were moved, the other 2 were not started" in e.value.message
    assert _tree(models) == before and not (archive / "journal.jsonl").exists()


def test_the_move_under_way_is_finished_and_none_after_it(
    models: Path, checked: tuple[Path, list[Checked]]
) -> None:
    """The deadline passes while the first move is reported: it stays done, whole and journaled;
    the second never begins, and nothing is left for --resume."""
    archive, moves = checked
    deadline = Deadline(0.5)
    with pytest.raises(OffloadError, match=r"1 version\(s\) were moved, the other 1 were not started"):
        apply(archive, moves, lambda _: time.sleep(max(deadline.left(), 0) + 0.05), deadline)
    records = [json.loads(line) for line in (archive / "journal.jsonl").read_text().splitlines()]
    assert [(r["step"], r["phase"]) for r in records] == [(1, "begin"), (1, "done")]
    assert Journal(archive).unfinished() == []
    first = moves[0].move
    assert Path(first.dst).is_dir() and not Path(first.src).exists()
    assert Path(moves[1].move.src).is_dir()

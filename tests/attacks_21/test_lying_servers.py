"""Attacks on the new `up` queries (issue #21, the window's end) with small real servers on
127.0.0.1: answers that lie about scrape times, `up` queries that hang, and errors or warnings
that echo the credentials. No Prometheus needed.

The server answers as tests/fake_servers.full_answer does (one idle version m/1 on target tfs-0),
except for the queries on `up` and the series' newest sample, which the test chooses.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests import hostile_servers as hs
from tests.conftest import run_cli
from tests.fake_servers import full_answer, serve

Answer = tuple[int, str, bytes]


@pytest.fixture
def models(tmp_path: Path) -> Path:
    for v in ("1", "2"):  # m/2 is the newest (protected); --min-age 0 lets m/1 be judged
        (tmp_path / "models" / "m" / v).mkdir(parents=True)
        (tmp_path / "models" / "m" / v / "saved_model.pb").write_bytes(b"x" * 10)
    return tmp_path / "models"


def _ok(data: object) -> Answer:
    return 200, "application/json", json.dumps({"status": "success", "data": data}).encode()


def stale_target(stamp: str) -> Callable[[str, dict[str, str]], Answer]:
    """A target whose last sample is 50 minutes old (nothing in the last 10 minutes of `up`), and
    whose `timestamp(up)` over the window reads `stamp`: a lie no Prometheus tells."""
    target = {"instance": "tfs-0"}

    def handler(path: str, form: dict[str, str]) -> Answer:
        query = form.get("query", "")
        if path.endswith("/query_range") and query.startswith(("timestamp(up", "up{")):
            start, end, step = float(form["start"]), float(form["end"]), float(form["step"])
            value = stamp if query.startswith("timestamp(") else "1"
            points = [[start + i * step, value] for i in range(round((end - start) / step) + 1)]
            return _ok({"resultType": "matrix", "result": [{"metric": target, "values": points}]})
        if path.endswith("/query") and query.startswith("up{") and query.endswith("]"):
            return _ok({"resultType": "matrix", "result": []})
        if path.endswith("/query") and query.startswith("timestamp("):
            at = float(form["time"])
            labels = {"model_name": "m", "model_version": "1", **target}
            return _ok(
                {"resultType": "vector", "result": [{"metric": labels, "value": [at, f"{at - 3000:g}"]}]}
            )
        return full_answer(path, form)

    return handler


def _report(url: str, models: Path, *extra: str) -> tuple[int, str, str]:
    run = run_cli(
        "report",
        "--prometheus",
        url,
        "--model-dir",
        str(models),
        "--min-age",
        "0",
        "--format",
        "json",
        *extra,
    )
    return run.exit_code, run.stdout, run.stderr


@pytest.mark.parametrize("stamp", ["NaN", "+Inf", "1e20"])
def test_scrape_times_no_prometheus_sends_are_refused_in_one_line(models: Path, stamp: str) -> None:
    """A `timestamp(up)` of NaN made targets._ended take min() of nothing, +Inf or 1e20 reached
    iso() (tracebacks); a sample's time after the instant is now no proof of a scrape."""
    with serve(stale_target(stamp)) as url:
        code, _, stderr = _report(url, models)
    assert code in (3, 4)
    assert "Traceback" not in stderr


def test_a_stale_target_is_unknown(models: Path) -> None:
    """Control: the same target with a plausible (old) scrape time: unknown, the data's end said."""
    with serve(stale_target("1e9")) as url:
        code, stdout, _ = _report(url, models)
    assert code == 4
    row = next(r for r in json.loads(stdout)["rows"] if r["version"] == "1")
    assert row["status"] == "unknown" and "the data ends at" in row["reason"]


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown: hanging handlers return, so the server stops at once."""
    event = threading.Event()
    yield event
    event.set()


FLAT = {"model_name": "m", "model_version": "1", "instance": "tfs-0", "job": "tfs"}


def test_up_queries_that_hang_are_cut_at_timeout(models: Path, release: threading.Event) -> None:
    """Control: the `up` queries are sent after the others; one that never answers is cut at
    --timeout like any other, in one line, with the URL's password masked."""

    def handler(path: str, form: dict[str, str]) -> Answer:
        if form.get("query", "").startswith(("up{", "timestamp(up")):
            release.wait(30)
        return full_answer(path, form, flat=FLAT)

    with serve(handler) as url:
        started = time.monotonic()
        code, _, stderr = _report(
            url.replace("http://", "http://ops:hunter2-pass@"), models, "--timeout", "1"
        )
        took = time.monotonic() - started
        release.set()
    assert code == 3
    assert "did not answer within 1s" in stderr and "hunter2" not in stderr
    assert took < 5


TOKEN = "tok-5f0c1e7a9b2d4c3e"


@pytest.mark.parametrize("bad", [hs.echo_error, hs.echo_warning], ids=["error", "warning"])
@pytest.mark.parametrize("fmt", ["json", "table"])
def test_up_queries_echoing_the_credentials_leak_nothing(models: Path, bad: hs.Handler, fmt: str) -> None:
    """Control: a server that repeats the request's headers in its error or its warnings, for the
    `up` queries only: the bearer token is masked in the error line and in the report."""

    def handler(request: hs.Request) -> hs.Answer:
        if request.form.get("query", "").startswith(("up{", "timestamp(up")):
            return bad(request)
        return hs.normal(request)

    token = models.parent / "token"
    token.write_text(TOKEN)
    with hs.serve(handler) as url:
        run = run_cli(
            "report",
            "--prometheus",
            url,
            "--model-dir",
            str(models),
            "--min-age",
            "0",
            "--format",
            fmt,
            "--bearer-token-file",
            str(token),
        )
    assert run.exit_code == (3 if bad is hs.echo_error else 4), run.stderr
    assert "Authorization" in run.stdout + run.stderr  # the echo reached the user, masked
    assert TOKEN not in run.stdout + run.stderr

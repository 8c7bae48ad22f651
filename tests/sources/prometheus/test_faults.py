"""Faults against real local servers: one clear line on stderr, a documented exit code, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from retire.lab.servers import free_port
from tests import fake_servers as fs
from tests.conftest import rows, run_cli, statuses


@pytest.fixture
def models(tmp_path: Path) -> Path:
    for v in ("1", "2"):
        (tmp_path / "models" / "m" / v).mkdir(parents=True)
        (tmp_path / "models" / "m" / v / "saved_model.pb").write_bytes(b"x" * 10)
    return tmp_path / "models"


def _report(url: str, models: Path, *extra: str) -> tuple[int, str, str]:
    run = run_cli(
        "report",
        "--prometheus",
        url,
        "--model-dir",
        str(models),
        "--keep-latest",
        "0",
        "--min-age",
        "0",
        *extra,
    )
    return run.exit_code, run.stdout, run.stderr


def _one_clear_line(stderr: str, *needles: str) -> None:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("retire: error: ")
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_nothing_listening(models: Path) -> None:
    code, out, err = _report(f"http://127.0.0.1:{free_port()}", models)
    assert code == 3 and out == ""
    _one_clear_line(err, "cannot reach Prometheus", "refused", "--prometheus")


def test_html_answer(models: Path) -> None:
    with fs.serve(fs.html) as url:
        code, out, err = _report(url, models)
    assert code == 3 and out == ""
    _one_clear_line(err, "text/html, not JSON", "server root")


def test_status_error(models: Path) -> None:
    with fs.serve(fs.api_error) as url:
        code, _, err = _report(url, models)
    assert code == 3
    _one_clear_line(err, "rejected the query: bad_data: 1:5: parse error", "HTTP 400")


def test_http_5xx_without_api_error(models: Path) -> None:
    with fs.serve(fs.bad_gateway) as url:
        code, _, err = _report(url, models)
    assert code == 3
    _one_clear_line(err, "HTTP 502")


def test_malformed_success(models: Path) -> None:
    with fs.serve(fs.malformed) as url:
        code, _, err = _report(url, models)
    assert code == 3
    _one_clear_line(err, "malformed result")


def test_hang_past_timeout(models: Path) -> None:
    with fs.serve(fs.hang(5)) as url:
        code, _, err = _report(url, models, "--timeout", "1")
    assert code == 3
    _one_clear_line(err, "did not answer within 1s", "--timeout")


def test_warnings_make_would_be_safe_rows_unknown(models: Path) -> None:
    with fs.serve(fs.with_warnings) as url:
        code, out, err = _report(url, models, "--format", "json")
    assert code == 4
    import json

    doc = json.loads(out)
    assert statuses(doc) == {("m", "1"): "unknown", ("m", "2"): "unknown"}
    assert "store 10.0.0.7 unreachable" in rows(doc)[("m", "1")]["reason"]
    assert any("unreachable" in w for w in doc["header"]["warnings"])
    assert "unknown because" in err


def test_partial_answer_is_unknown(models: Path) -> None:
    with fs.serve(fs.partial) as url:
        code, out, _ = _report(url, models, "--format", "json")
    import json

    assert code == 4
    assert set(statuses(json.loads(out)).values()) == {"unknown"}


def test_nan_value_is_unknown(models: Path) -> None:
    with fs.serve(fs.nan_values) as url:
        code, out, _ = _report(url, models, "--format", "json")
    import json

    doc = json.loads(out)
    assert code == 4
    assert statuses(doc) == {("m", "1"): "unknown", ("m", "2"): "safe"}
    assert rows(doc)[("m", "1")]["max_hourly_qps"] == "NaN"


def test_path_prefix(models: Path) -> None:
    with fs.serve(fs.full_answer, prefix="/prometheus") as url:
        code, _, err = _report(url, models, "--format", "json")
    assert code == 0, err
    assert url.endswith("/prometheus")


def test_failed_run_leaves_no_output_file(models: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    out.write_text("previous report\n")
    code, _, _ = _report(f"http://127.0.0.1:{free_port()}", models, "-o", str(out))
    assert code == 3
    assert out.read_text() == "previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models", "report.json"]


def test_password_in_url_never_printed(models: Path) -> None:
    code, _, err = _report(f"http://admin:s3cret@127.0.0.1:{free_port()}", models)
    assert code == 3
    assert "s3cret" not in err and "***@" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model-dir", "/nonexistent/models"], "does not exist"),
        (["--window", "lots"], "not a duration"),
        (["--at", "2026-11-24T06:00:00"], "no time zone"),
        (["--selector", "job=tfs"], "cannot parse"),
        (["--metric", "a.b"], "not a valid Prometheus metric name"),
        (["--format", "yaml"], "not one of"),
        (["--step", "2h", "--window", "1h"], "must be at least --step"),
    ],
)
def test_usage_errors_exit_2(models: Path, args: list[str], needle: str) -> None:
    base = ["report", "--prometheus", f"http://127.0.0.1:{free_port()}", "--model-dir", str(models)]
    run = run_cli(*base, *args)
    assert run.exit_code == 2
    _one_clear_line(run.stderr, needle)


def test_unreadable_model_dir_exit_2(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        # root reads everything; a file where a directory should be is unreadable as a directory.
        bad = tmp_path / "models"
        bad.write_text("")
    else:  # pragma: no cover
        bad = tmp_path / "models"
        bad.mkdir(mode=0)
    run = run_cli("report", "--prometheus", f"http://127.0.0.1:{free_port()}", "--model-dir", str(bad))
    assert run.exit_code == 2
    _one_clear_line(run.stderr, str(bad))

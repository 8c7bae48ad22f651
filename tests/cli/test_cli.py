"""The CLI's contract: help with examples, README coverage, version, env vars, entry points, packaging."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from retire import __version__
from retire.cli import app
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)  # type: ignore[union-attr]


def test_version() -> None:
    assert run_cli("--version").stdout == f"retire {__version__}\n"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example_and_is_in_the_readme(command: str) -> None:
    run = run_cli(command, "--help")
    assert run.exit_code == 0
    assert "Examples:" in run.stdout and f"retire {command}" in run.stdout
    assert f"retire {command}" in (ROOT / "README.md").read_text()


def test_report_help_documents_exit_codes() -> None:
    out = run_cli("report", "--help").stdout
    for code in ("0 ", "2 ", "3 ", "4 "):
        assert f"  {code}" in out


def test_flag_names_are_the_interface() -> None:
    out = run_cli("report", "--help").stdout
    for flag in (
        "--prometheus",
        "--model-dir",
        "--threshold",
        "--selector",
        "--window",
        "--step",
        "--at",
        "--timeout",
        "--format",
        "--output",
        "-o",
        "--config",
        "--coverage",
        "--max-gap",
        "--keep-latest",
        "--min-age",
        "--age-source",
        "--pin",
    ):
        assert flag in out


def test_env_vars_take_effect() -> None:
    run = run_cli("query", "max_hourly_qps", env={"RETIRE_SELECTOR": 'job="x"', "RETIRE_WINDOW": "2d"})
    assert 'job="x"' in run.stdout and "[172800s:3600s]" in run.stdout


def test_console_script_and_python_m_in_a_subprocess() -> None:
    for cmd in (
        [sys.executable, "-m", "retire", "--version"],
        [str(Path(sys.executable).parent / "retire"), "--version"],
    ):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        assert out.strip() == f"retire {__version__}"


def test_cli_import_does_not_load_heavy_modules() -> None:
    code = (
        "import sys, retire.cli; print(sorted(m for m in ('pandas', 'numpy', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_wheel_ships_the_queries(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("retire-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    promql = {Path(n).name for n in names if n.startswith("retire/queries/")}
    assert promql == {p.name for p in (ROOT / "queries").glob("*.promql")}
    # An installed copy, away from the source tree, finds its templates.
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    code = (
        "import retire.sources.prometheus.queries as q; from retire.config import Settings, build; "
        "print(q.render('series_start', build.params_from(Settings())))"
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); " + code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert "offset 86400s" in out


def test_readme_deployments_cover_every_preset_and_backend() -> None:
    from retire.config import PRESETS

    section = (ROOT / "docs" / "deployments.md").read_text()  # README "Where next" links it
    assert section.startswith("# Deployments and presets\n")
    for preset in PRESETS:
        assert f"`{preset}`" in section
    for backend in (
        "\n## Prometheus",
        "\n## VictoriaMetrics",
        "\n## Thanos",
        "\n## Grafana Mimir",
        "--model-config",
    ):
        assert backend in section


def test_query_prints_what_report_sends_for_a_preset() -> None:
    run = run_cli("query", "max_hourly_qps", "--preset", "triton")
    assert run.exit_code == 0, run.stderr
    assert run.stdout.startswith("max_over_time(sum by (model, version) (rate(nv_inference_request_success{")

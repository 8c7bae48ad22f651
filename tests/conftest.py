"""Shared fixtures: one real Prometheus per test session, real model trees, the real CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from retire.cli import app
from retire.lab.servers import Prometheus, VictoriaMetrics, backfill
from retire.lab.synth import Scenario, make_model_tree, write_import_text, write_openmetrics
from tests import scenarios

if TYPE_CHECKING:
    from retire.sources.loaded import Loaded


@dataclass
class Lab:
    url: str
    end: float
    root: Path

    def models(self, scenario: Scenario) -> Path:
        path = self.root / "models" / scenario.name
        if not path.exists():
            make_model_tree(path, scenario, self.end)
        return path

    def args(self, scenario: Scenario, *extra: str, coverage: bool = True) -> list[str]:
        out = [
            "--prometheus",
            self.url,
            "--model-dir",
            str(self.models(scenario)),
            "--selector",
            f'scenario="{scenario.name}"',
            "--at",
            str(self.end),
        ]
        if coverage:
            out += ["--coverage", f'up{{scenario="{scenario.name}"}}']
        if scenario.name in ("triton", "torchserve", "triton0", "torchserve0", "tritonfail"):
            out += ["--preset", scenario.name.rstrip("0").removesuffix("fail")]
        if scenario.name.startswith("tfstock"):
            out += ["--preset", "tfserving"]
        return [*out, *extra]


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    om = root / "history.om"
    write_openmetrics(
        om,
        scenarios.ALL + scenarios.ABSENCE + scenarios.REACH + scenarios.STOCK_ALL + scenarios.FAILURES,
        end=scenarios.END,
        history=scenarios.HISTORY,
        interval=60,
    )
    backfill(om, root / "tsdb")
    with Prometheus(root / "tsdb", root / "prometheus") as server:
        yield Lab(server.url, scenarios.END, root)


@pytest.fixture(scope="session")
def vm_lab(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """VictoriaMetrics with the same history as `lab`, sharing its model trees."""
    root = tmp_path_factory.mktemp("vm")
    text = root / "history.txt"
    write_import_text(text, scenarios.ALL, end=scenarios.END, history=scenarios.HISTORY, interval=60)
    with VictoriaMetrics(root / "vm") as server:
        server.load(text)
        yield Lab(server.url, scenarios.END, lab.root)


@dataclass
class Run:
    exit_code: int
    stdout: str
    stderr: str

    def json(self) -> object:
        return json.loads(self.stdout)


def run_cli(*args: str, env: dict[str, str] | None = None) -> Run:
    """The CLI in-process (real HTTP, real disk); the console script is tested in a subprocess too."""
    result = CliRunner(env=env).invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


def statuses(report: object) -> dict[tuple[str, str], str]:
    assert isinstance(report, dict)
    return {(r["model"], r["version"]): r["status"] for r in report["rows"]}


def rows(report: object) -> dict[tuple[str, str], dict[str, object]]:
    assert isinstance(report, dict)
    return {(r["model"], r["version"]): r for r in report["rows"]}


def ask_loaded(server: str, url: str, models: Sequence[str] = (), **kwargs: Any) -> Loaded:
    """`--server` as retire.run asks it: the server found by name, then its status API."""
    from retire.servers import status_server
    from retire.sources import loaded

    return loaded.ask(status_server(server), url, models, **kwargs)

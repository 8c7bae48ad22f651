"""Shared fixtures: one real Prometheus per test session, real model trees, the real CLI."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from retire.cli import app
from retire.lab.servers import Prometheus, VictoriaMetrics, backfill, copy_blocks
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


def run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary directory of this whole run: under pytest-xdist the workers' base
    directories (popen-gw0, ...) share it as their parent; without xdist it is the base itself."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], None]) -> Path:
    """A directory `build` fills once per run, whichever xdist worker asks first (the others wait
    on a lock, then reuse it), so a backfill costs one promtool run however many workers there
    are. Callers copy what they need out of it: it is shared, never written after it is built."""
    target = run_root(tmp_path_factory) / f"shared-{name}"
    with open(f"{target}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until the build is done or seen done
        if not (target / ".done").exists():
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            build(target)
            (target / ".done").touch()
    return target


def build_lab_history(target: Path) -> None:
    om = target / "history.om"
    write_openmetrics(
        om,
        scenarios.ALL + scenarios.ABSENCE + scenarios.REACH + scenarios.STOCK_ALL + scenarios.FAILURES,
        end=scenarios.END,
        history=scenarios.HISTORY,
        interval=60,
    )
    backfill(om, target / "tsdb")
    om.unlink()  # 23 MB, read by nobody after the backfill


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One Prometheus per worker; the backfill is built once per run and its blocks copied. Each
    worker computes scenarios.END at import, so the shared history is named after it: a worker
    that started in the next hour builds its own."""
    root = tmp_path_factory.mktemp("lab")
    shared = built_once(tmp_path_factory, f"lab-{int(scenarios.END)}", build_lab_history)
    copy_blocks(shared / "tsdb", root / "tsdb")
    with Prometheus(root / "tsdb", root / "prometheus") as server:
        yield Lab(server.url, scenarios.END, root)


@pytest.fixture(scope="session")
def present_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The offload and unload tests' Prometheus at the present (tests/offload_lab.py), one per
    worker: its live tail keeps it current however long the session runs."""
    from tests.offload_lab import present_lab_server

    yield from present_lab_server(tmp_path_factory)


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


# The real model-server tiers spend minutes on real-time timelines (a scraped traffic history),
# mostly waiting. Run first (Triton's, the longest, before MLServer's), they overlap everything
# else on the other xdist workers (`--dist loadscope` hands modules out in collection order);
# run last, they would be the run's tail. The order changes nothing else: tests are independent.
SLOW_FIRST = ("triton", "mlserver")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank: dict[str, int] = {}
    for item in items:
        for i, name in enumerate(SLOW_FIRST):
            if item.get_closest_marker(name) is not None:
                rank[item.nodeid.split("::")[0]] = min(i, rank.get(item.nodeid.split("::")[0], i))
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(SLOW_FIRST)))

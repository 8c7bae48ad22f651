"""The four bugs issue #15 names, each against real servers: a mailed Prometheus failure prints its
error once; `offload --plan` journals only into the --archive-dir it locked and checked; `rules`
honours RETIRE_OUTPUT as its help says; `plan --format` takes only the formats it has."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from retire.lab.servers import free_port
from tests import scenarios as sc
from tests.conftest import Lab, run_cli
from tests.smtp_servers import Inbox, smtp

MAIL = ["--mail-to", "a@example.com,b@example.com", "--mail-from", "retire@example.com", "--smtp-host"]


def _mail(port: int) -> list[str]:
    return [*MAIL, "127.0.0.1", "--smtp-port", str(port)]


@pytest.mark.parametrize("refuse", [set(), {"b@example.com"}])
def test_a_mailed_prometheus_failure_prints_its_error_once(tmp_path: Path, refuse: set[str]) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    down = f"http://127.0.0.1:{free_port()}"
    with smtp(Inbox(refuse=refuse)) as port:
        run = run_cli("report", "--prometheus", down, "--model-dir", str(tmp_path), *_mail(port))
    lines = run.stderr.splitlines()
    assert sum("cannot reach Prometheus" in line for line in lines) == 1, run.stderr
    if refuse:  # the cause, then why nobody was told
        assert run.exit_code == 5 and "refused recipient b@example.com" in lines[-1]
    else:
        assert run.exit_code == 3 and lines[0].startswith("retire: mailed the failure to")


def test_rules_writes_to_retire_output(tmp_path: Path) -> None:
    target = tmp_path / "rules.yml"
    run = run_cli("rules", env={"RETIRE_OUTPUT": str(target)})
    assert run.exit_code == 0, run.stderr
    assert run.stdout == "" and target.read_text().startswith("# ") and "groups:" in target.read_text()
    flag = tmp_path / "flag.yml"
    assert run_cli("rules", "-o", str(flag), env={"RETIRE_OUTPUT": str(target)}).exit_code == 0
    assert flag.read_text() == target.read_text()


@pytest.mark.prometheus
def test_plan_format_is_validated(lab: Lab, tmp_path: Path) -> None:
    archive = ["--archive-dir", str(tmp_path / "archive")]
    run = run_cli("plan", *lab.args(sc.BASIC), *archive, "--format", "xml")
    assert run.exit_code == 2 and run.stdout == ""
    assert run.stderr == "retire: error: --format 'xml' is not available here; use one of: text, json\n"
    text = run_cli("plan", *lab.args(sc.BASIC), *archive, "--format", "text")
    assert text.exit_code == 0 and text.stdout == run_cli("plan", *lab.args(sc.BASIC), *archive).stdout
    assert json.loads(run_cli("plan", *lab.args(sc.BASIC), *archive, "-f", "json").stdout)["moves"]


@pytest.mark.prometheus
def test_offload_plan_for_another_archive_moves_nothing_anywhere(lab: Lab, tmp_path: Path) -> None:
    tree = tmp_path / "models"
    shutil.copytree(lab.models(sc.BASIC), tree, symlinks=True)
    args = lab.args(sc.BASIC)
    args[args.index("--model-dir") + 1] = str(tree)
    planned, other = tmp_path / "planned", tmp_path / "other"
    plan = tmp_path / "plan.json"
    made = run_cli("plan", *args, "--archive-dir", str(planned), "--format", "json", "-o", str(plan))
    assert made.exit_code == 0 and json.loads(plan.read_text())["moves"], made.stderr
    run = run_cli("offload", *args, "--archive-dir", str(other), "--plan", str(plan), "--apply")
    assert run.exit_code == 6 and "was made for the archive" in run.stderr
    assert not planned.exists() and not (other / "journal.jsonl").exists() and not (other / "models").exists()
    assert all((tree / m / v).is_dir() for m, v in (("alpha", "2"), ("alpha", "3"), ("beta", "2")))

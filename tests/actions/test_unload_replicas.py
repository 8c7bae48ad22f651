"""`retire unload` and reports with `--server` given once per replica: two small real HTTP
servers that speak Triton's repository API (tests/model_servers.py) as two replicas, a real
Prometheus (the basic scenario, as tests/actions/test_unload.py). Faults come from the second
replica: it refuses, answers too late, or lets a kept version go down mid-way; each time the
first replica, already changed, gets its model back as it was and the run exits 6.

The real Triton with two processes as two replicas is tested in tests/e2e/test_unload_triton.py.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from retire.actions.unload import journal_records
from retire.config import resolve
from retire.errors import ConfigError
from tests import scenarios as sc
from tests.actions.test_unload import AFTER, ON_DISK, TRITON_FLAGS, loaded, one_line_error
from tests.conftest import Lab, run_cli
from tests.model_servers import FakeTriton
from tests.offload_lab import evidence, present_lab_server

pytestmark = pytest.mark.prometheus

ALL = {m: set(v) for m, v in ON_DISK.items()}


@pytest.fixture(scope="module")
def present_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from present_lab_server(tmp_path_factory)


@pytest.fixture
def tree(present_lab: Lab, tmp_path: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(present_lab.models(sc.BASIC), dst, symlinks=True)
    return dst


@pytest.fixture
def pair() -> Iterator[tuple[FakeTriton, str, FakeTriton, str]]:
    a, b = FakeTriton(ON_DISK), FakeTriton(ON_DISK)
    with a.running() as url_a, b.running() as url_b:
        yield a, url_a, b, url_b


def args(lab: Lab, tree: Path, urls: tuple[str, ...], archive: Path, *extra: str) -> list[str]:
    servers = [w for url in urls for w in ("--server", url)]
    return [
        *evidence(lab, "--model-dir", str(tree), *TRITON_FLAGS),
        *servers,
        "--archive-dir",
        str(archive),
        *extra,
    ]


def report(lab: Lab, tree: Path, urls: tuple[str, ...], archive: Path, *extra: str) -> dict[str, object]:
    out = run_cli("report", *args(lab, tree, urls, archive, "--format", "json", *extra)[0:])
    assert out.exit_code in (0, 4), out.stderr
    doc = json.loads(out.stdout)
    assert isinstance(doc, dict)
    return {f"{r['model']}:{r['version']}": r for r in doc["rows"]}


def test_the_server_option_takes_one_url_per_replica_from_flags_env_and_file(tmp_path: Path) -> None:
    flags = resolve({"server": ["http://a:8000", "http://b:8000"]}, env={})
    assert flags.server == ("http://a:8000", "http://b:8000")
    comma = resolve({}, env={"RETIRE_SERVER": "http://a:8000, http://b:8000"})
    lines = resolve({}, env={"RETIRE_SERVER": "http://a:8000\nhttp://b:8000\n"})
    assert comma.server == lines.server == ("http://a:8000", "http://b:8000")
    # A comma that is not followed by a URL stays in its URL (a path, or a password).
    assert resolve({}, env={"RETIRE_SERVER": "http://u:p,w@a:8000"}).server == ("http://u:p,w@a:8000",)
    conf = tmp_path / "retire.toml"
    conf.write_text('server = ["http://a:8000", "http://b:8000", "http://a:8000/"]\n')
    assert resolve({}, env={}, config=conf).server == ("http://a:8000", "http://b:8000")  # once each
    assert resolve({}, env={}).server == ()
    with pytest.raises(ConfigError) as e:
        resolve({}, env={"RETIRE_SERVER": "http://a:8000,http://b:8000?token=s3cret"})
    assert "s3cret" not in e.value.message


def test_a_report_gives_the_loaded_state_per_replica(
    present_lab: Lab, tree: Path, pair: tuple[FakeTriton, str, FakeTriton, str], tmp_path: Path
) -> None:
    _, url_a, b, url_b = pair
    b.models["alpha"].loaded = {"1", "5", "8"}  # replica b has unloaded alpha 2 and 3 already
    rows = report(present_lab, tree, (url_a, url_b), tmp_path / "archive")
    two = rows["alpha:2"]
    assert two["loaded"] is True and two["loaded_from"] == "server"  # loaded if any replica has it
    assert two["loaded_on"] == {url_a: True, url_b: False}
    assert rows["alpha:1"]["loaded_on"] == {url_a: True, url_b: True}
    table = run_cli("report", *args(present_lab, tree, (url_a, url_b), tmp_path / "archive"))
    line = next(line for line in table.stdout.splitlines() if line.split()[:2] == ["alpha", "2"])
    assert " 1/2 " in line, table.stdout
    # One server: no per-replica states (nothing to disagree about).
    assert "loaded_on" not in report(present_lab, tree, (url_a,), tmp_path / "archive")["alpha:2"]
    # A replica that cannot be reached fails the report as a single server does (exit 3).
    down = run_cli("report", *args(present_lab, tree, (url_a, "http://127.0.0.1:9"), tmp_path / "archive"))
    one_line_error(down, 3, "127.0.0.1:9")


def test_apply_unloads_on_every_replica_and_undo_loads_back_on_each(
    present_lab: Lab, tree: Path, pair: tuple[FakeTriton, str, FakeTriton, str], tmp_path: Path
) -> None:
    a, url_a, b, url_b = pair
    archive = tmp_path / "archive"
    dry = run_cli("unload", *args(present_lab, tree, (url_a, url_b), archive))
    assert dry.exit_code == 0, dry.stderr
    assert dry.stdout.count("alpha: keep 1, 5, 8; unload 2, 3\n") == 2
    assert f"would ask {url_a} " in dry.stdout and f"would ask {url_b} " in dry.stdout
    run = run_cli("unload", *args(present_lab, tree, (url_a, url_b), archive, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert loaded(a) == loaded(b) == AFTER
    assert f"unloaded alpha 2, 3 (kept 1, 5, 8 loaded) on {url_b}" in run.stderr
    assert f"--server {url_a} --server {url_b} --preset triton`" in run.stderr
    steps = [(r["server"], r["model"], r["phase"]) for r in journal_records(archive)]
    assert steps == [
        (url_a, "alpha", "begin"),
        (url_a, "alpha", "done"),
        (url_b, "alpha", "begin"),
        (url_b, "alpha", "done"),
        (url_a, "beta", "begin"),
        (url_a, "beta", "done"),
        (url_b, "beta", "begin"),
        (url_b, "beta", "done"),
    ]
    rows = report(present_lab, tree, (url_a, url_b), archive)
    assert rows["alpha:2"]["status"] == "unloaded"
    assert f"--server {url_a} " in str(rows["alpha:2"]["reason"])  # the undo names both replicas
    assert f"--server {url_b} " in str(rows["alpha:2"]["reason"])

    # Someone loads alpha 2 back on replica a only: still unloaded (b's clients still fail).
    a.models["alpha"].loaded.add("2")
    assert report(present_lab, tree, (url_a, url_b), archive)["alpha:2"]["status"] == "unloaded"
    # Asked of a alone, neither: b, where it was unloaded too, was not asked.
    assert report(present_lab, tree, (url_a,), archive)["alpha:2"]["status"] == "unloaded"
    b.models["alpha"].loaded.add("2")  # and on b: every replica it was unloaded from has it again
    assert report(present_lab, tree, (url_a, url_b), archive)["alpha:2"]["status"] == "safe"
    a.models["alpha"].loaded.discard("2")
    b.models["alpha"].loaded.discard("2")

    # The undo must name every replica the journal unloaded from.
    half = run_cli("unload", "--undo", "--preset", "triton", "--server", url_a, "--archive-dir", str(archive))
    one_line_error(half, 6, url_b, "run with that --server")
    assert loaded(a) == loaded(b) == AFTER
    back = run_cli(
        "unload",
        "--undo",
        "--preset",
        "triton",
        "--server",
        url_a,
        "--server",
        url_b,
        "--archive-dir",
        str(archive),
    )
    assert back.exit_code == 0, back.stderr
    assert loaded(a) == loaded(b) == ALL
    assert f"loaded back alpha 2, 3 on {url_b}" in back.stderr
    assert "unloaded" not in {
        r["status"] for r in report(present_lab, tree, (url_a, url_b), archive).values()
    }


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("refuse", "the server refused"),
        ("slow", "did not answer within 1s"),
        ("kept-down", "1 is not loaded"),
    ],
)
def test_a_failing_second_replica_puts_back_every_replica_and_stops(
    present_lab: Lab,
    tree: Path,
    pair: tuple[FakeTriton, str, FakeTriton, str],
    tmp_path: Path,
    fault: str,
    said: str,
) -> None:
    a, url_a, b, url_b = pair
    b.faults.add(fault)
    b.delay = 1.5 if fault == "slow" else 0.0
    archive = tmp_path / "archive"
    run = run_cli("unload", *args(present_lab, tree, (url_a, url_b), archive, "--apply", "--timeout", "1s"))
    one_line_error(run, 6, "unloading alpha failed and was undone", said)
    b.faults.discard("slow")
    assert loaded(a) == loaded(b) == ALL  # alpha back on both; beta never asked
    assert f"loaded alpha 2, 3 back on {url_a}: another replica failed" in run.stderr
    records = [(r["server"], r["op"], r["phase"]) for r in journal_records(archive)]
    assert records == [
        (url_a, "unload", "begin"),
        (url_a, "unload", "done"),
        (url_b, "unload", "begin"),
        (url_b, "unload", "failed"),
        (url_a, "reload", "begin"),
        (url_a, "reload", "done"),
    ]
    # Nothing is left unloaded: reports and --undo agree.
    assert "unloaded" not in {
        r["status"] for r in report(present_lab, tree, (url_a, url_b), archive).values()
    }


def test_a_second_replica_that_cannot_be_reached_puts_the_first_back(
    present_lab: Lab, tree: Path, pair: tuple[FakeTriton, str, FakeTriton, str], tmp_path: Path
) -> None:
    """b answers its status (the report, the re-check) but not the config request its change
    starts from: the change on a is undone (exit 6), not left unloaded on one replica."""
    a, url_a, b, url_b = pair
    archive = tmp_path / "archive"
    b.faults.add("no-config")
    run = run_cli("unload", *args(present_lab, tree, (url_a, url_b), archive, "--apply", "--timeout", "2s"))
    one_line_error(run, 6, f"unloading alpha on {url_b} failed", "HTTP 503")
    assert loaded(a) == loaded(b) == ALL


def test_mlserver_and_tf_serving_unload_take_one_server(tmp_path: Path) -> None:
    for preset, more in (("mlserver", ()), ("tfserving", ("--model-config", str(tmp_path / "m.config")))):
        run = run_cli(
            "unload",
            "--prometheus",
            "http://127.0.0.1:9",
            "--model-dir",
            str(tmp_path),
            "--preset",
            preset,
            "--server",
            "http://a:1",
            "--server",
            "http://b:1",
            "--archive-dir",
            str(tmp_path / "archive"),
            *more,
        )
        one_line_error(run, 2, "--server")

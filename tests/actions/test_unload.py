"""`retire unload`: a real Prometheus whose history ends now (the basic scenario), real model
trees, and small real HTTP servers that speak Triton's repository API and TorchServe's
management API (tests/model_servers.py says why TorchServe is played, and how). The real Triton
is tested in tests/e2e/test_unload_triton.py.

Under `--preset triton` the basic scenario's evidence (read with its own metric and labels) makes
alpha 2, alpha 3 and beta 2 safe; every version on disk is loaded on the fake Triton, so unload
keeps alpha 1, 5, 8 and beta 1, 3.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from retire.actions.unload import journal_records
from tests import scenarios as sc
from tests.conftest import Lab, Run, run_cli
from tests.model_servers import FakeTorchServe, FakeTriton
from tests.offload_lab import cli, evidence

pytestmark = pytest.mark.prometheus

TRITON_FLAGS = (
    "--preset",
    "triton",
    "--metric",
    ":tensorflow:serving:model_call_count",
    "--model-label",
    "model_name",
    "--version-label",
    "model_version",
)
ON_DISK = {"alpha": ["1", "2", "3", "5", "8"], "beta": ["1", "2", "3"]}
AFTER = {"alpha": {"1", "5", "8"}, "beta": {"1", "3"}}


@pytest.fixture
def tree(present_lab: Lab, tmp_path: Path) -> Path:
    dst = tmp_path / "models"
    shutil.copytree(present_lab.models(sc.BASIC), dst, symlinks=True)
    return dst


@pytest.fixture
def triton() -> Iterator[tuple[FakeTriton, str]]:
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        yield fake, url


def triton_args(lab: Lab, tree: Path, url: str, archive: Path, *extra: str) -> list[str]:
    return [
        *evidence(lab, "--model-dir", str(tree), *TRITON_FLAGS),
        "--server",
        url,
        "--archive-dir",
        str(archive),
        *extra,
    ]


def undo_args(url: str, archive: Path, *extra: str) -> list[str]:
    return ["unload", "--undo", "--preset", "triton", "--server", url, "--archive-dir", str(archive), *extra]


def one_line_error(run: Run, code: int, *words: str) -> None:
    """A refusal as the README promises: the exit code, one `retire: error:` line, no traceback."""
    assert run.exit_code == code, (run.exit_code, run.stderr)
    errors = [line for line in run.stderr.splitlines() if line.startswith("retire: error: ")]
    assert len(errors) == 1 and "Traceback" not in run.stderr, run.stderr
    for word in words:
        assert word in errors[0], run.stderr


def loaded(fake: FakeTriton) -> dict[str, set[str]]:
    return {m: fake.loaded(m) for m in ON_DISK}


def changes(fake: FakeTriton) -> list[tuple[str, str]]:
    return [(s.method, s.path) for s in fake.log if s.method != "GET" and s.path != "/v2/repository/index"]


def test_dry_run_says_what_it_would_ask_and_asks_nothing(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    fake, url = triton
    run = run_cli("unload", *triton_args(present_lab, tree, url, tmp_path / "archive"))
    assert run.exit_code == 0, run.stderr
    assert run.stdout == (
        f"would ask {url} (Triton model repository API (explicit model control)):\n"
        "  alpha: keep 1, 5, 8; unload 2, 3\n"
        "  beta: keep 1, 3; unload 2\n"
    )
    assert "dry run: nothing was unloaded; add --apply to act" in run.stderr
    assert changes(fake) == [] and loaded(fake) == {m: set(v) for m, v in ON_DISK.items()}
    assert not (tmp_path / "archive" / "unload.jsonl").exists()


def test_apply_unloads_only_the_safe_loaded_versions_and_undo_loads_them_back(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    fake, url = triton
    archive = tmp_path / "archive"
    run = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert loaded(fake) == AFTER
    # Only the version policy changed; the rest is the config the server returned.
    assert [c["version_policy"] for c in fake.loads] == [
        {"specific": {"versions": [1, 5, 8]}},
        {"specific": {"versions": [1, 3]}},
    ]
    assert all(c["backend"] == "python" and c["max_batch_size"] == 0 for c in fake.loads)
    assert "unloaded alpha 2, 3 (kept 1, 5, 8 loaded)" in run.stderr
    assert (
        f"undo with `retire unload --undo --archive-dir {archive} --server {url} --preset triton`"
        in run.stderr
    )
    records = list(journal_records(archive))
    assert [(r["op"], r["phase"], r["model"]) for r in records] == [
        ("unload", "begin", "alpha"),
        ("unload", "done", "alpha"),
        ("unload", "begin", "beta"),
        ("unload", "done", "beta"),
    ]
    done = records[1]
    assert done["had"]["config"]["version_policy"] == {"all": {}}
    assert done["versions"] == ["2", "3"] and done["keep"] == ["1", "5", "8"] and done["server"] == url
    assert done["asked"][0]["status"] == 200 and done["asked"][0]["request"].endswith("/alpha/load")

    # Nothing safe is loaded any more: a second run has nothing to do.
    again = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply"))
    assert again.exit_code == 0 and "nothing to unload" in again.stderr

    # With --model-dir the policy it had is read against the disk: it loads all that is loaded
    # now, so it is loaded back as it was (without, `specific`: attacks_24).
    back = run_cli(*undo_args(url, archive, "--model-dir", str(tree)))
    assert back.exit_code == 0, back.stderr
    assert loaded(fake) == {m: set(v) for m, v in ON_DISK.items()}
    assert fake.loads[-1]["version_policy"] == {"all": {}}  # the policy it had
    assert "loaded back 3 version(s)" in back.stderr
    nothing = run_cli(*undo_args(url, archive))
    one_line_error(nothing, 6, "nothing unloaded")


def test_undo_only_one_version(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    fake, url = triton
    archive = tmp_path / "archive"
    assert run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply")).exit_code == 0
    run = run_cli(*undo_args(url, archive, "--only", "alpha:3"))
    assert run.exit_code == 0, run.stderr
    assert loaded(fake) == {"alpha": {"1", "3", "5", "8"}, "beta": {"1", "3"}}
    assert fake.loads[-1]["version_policy"] == {"specific": {"versions": [1, 3, 5, 8]}}
    rest = run_cli(*undo_args(url, archive))
    assert rest.exit_code == 0, rest.stderr
    assert loaded(fake) == {m: set(v) for m, v in ON_DISK.items()}
    unknown = run_cli(*undo_args(url, archive, "--only", "alpha:1"))
    assert unknown.exit_code == 6 and "was not unloaded by retire" in unknown.stderr


def test_only_picks_and_refuses_what_is_not_safe_or_not_loaded(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    fake, url = triton
    archive = tmp_path / "archive"
    run = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--only", "beta:2", "--apply"))
    assert run.exit_code == 0, run.stderr
    assert loaded(fake) == {"alpha": set(ON_DISK["alpha"]), "beta": {"1", "3"}}
    busy = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--only", "alpha:1"))
    assert busy.exit_code == 6 and "alpha:1 is in-use, not safe" in busy.stderr
    gone = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--only", "beta:2"))
    # The report knows retire unloaded it (the journal in --archive-dir): refused as such.
    assert gone.exit_code == 6 and "--only beta:2 is already unloaded" in gone.stderr
    assert loaded(fake) == {"alpha": set(ON_DISK["alpha"]), "beta": {"1", "3"}}


def test_never_leaves_a_model_without_a_loaded_version(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    """beta has only its safe version 2 loaded: naming it is refused; without --only it is kept
    and said."""
    fake, url = triton
    fake.models["beta"].loaded = {"2"}
    archive = tmp_path / "archive"
    only = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--only", "beta:2", "--apply"))
    one_line_error(only, 6, "every loaded version of beta")
    run = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply"))
    assert run.exit_code == 0, run.stderr
    assert "kept beta 2 loaded: retire never leaves a model with no loaded version" in run.stderr
    assert loaded(fake) == {"alpha": AFTER["alpha"], "beta": {"2"}}


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ("refuse", "the server refused: model server"),
        ("kept-down", "1 is not loaded"),
        ("ignore", "2 is still loaded"),
        ("disagree", "is unsure"),
    ],
)
def test_a_misbehaving_server_gets_the_model_back_and_the_run_stops(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path, fault: str, said: str
) -> None:
    fake, url = triton
    fake.faults.add(fault)
    archive = tmp_path / "archive"
    run = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply", "--timeout", "2s"))
    one_line_error(run, 6, "unloading alpha failed and was undone", said)
    fake.faults.discard("disagree")
    fake.disagree = set()
    assert loaded(fake) == {m: set(v) for m, v in ON_DISK.items()}  # alpha as it was; beta never asked
    records = list(journal_records(archive))
    assert [(r["op"], r["phase"], r["model"]) for r in records] == [
        ("unload", "begin", "alpha"),
        ("unload", "failed", "alpha"),
    ]
    assert said in records[1]["reason"]
    if fault == "refuse":
        assert records[1]["asked"][0]["status"] == 400
        assert "at capacity" in json.dumps(records[1]["asked"][0]["answer"])


def test_a_server_too_slow_to_answer(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    """The load answers after 1.5 s, --timeout 1s: the run stops (exit 6) within its bounds, and
    the model is loaded back with the config it had (the late change landed meanwhile)."""
    fake, url = triton
    fake.faults.add("slow")
    fake.delay = 1.5
    archive = tmp_path / "archive"
    run = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply", "--timeout", "1s"))
    one_line_error(run, 6, "unloading alpha failed and was undone", "did not answer within 1s")
    assert loaded(fake) == {m: set(v) for m, v in ON_DISK.items()}
    assert fake.loads[-1]["version_policy"] == {"all": {}}


def test_a_server_that_never_answers_leaves_a_step_for_undo(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    fake, url = triton
    fake.faults.add("slow")
    fake.delay = 4.0
    archive = tmp_path / "archive"
    run = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply", "--timeout", "1s"))
    one_line_error(run, 6, "loading it back failed too", "retire unload --undo")
    assert [r["phase"] for r in journal_records(archive)] == ["begin"]
    fake.faults.discard("slow")
    back = run_cli(*undo_args(url, archive, "--timeout", "10s"))
    assert back.exit_code == 0, back.stderr
    assert loaded(fake) == {m: set(v) for m, v in ON_DISK.items()}
    assert [r["phase"] for r in journal_records(archive)] == ["begin", "begin", "done", "failed"]


def test_secrets_never_reach_the_model_server_nor_the_journal(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    """Prometheus's header and token stay with Prometheus; the --server URL's own credentials go
    only to the model server, never into a message or the journal."""
    fake, url = triton
    token = tmp_path / "token"
    token.write_text("prom-token-4242\n")
    secret_url = url.replace("http://", "http://ops:srv-pass-777@")
    archive = tmp_path / "archive"
    extra = ("--header", "X-Prom-Key: prom-header-999", "--bearer-token-file", str(token), "--apply")
    args = triton_args(present_lab, tree, secret_url, archive, *extra)
    run = run_cli("unload", *args)
    assert run.exit_code == 0, run.stderr
    fake.faults.add("refuse")
    fake.models["beta"].loaded = {"1", "2", "3"}
    fake.models["beta"].config = {**fake.models["beta"].config, "version_policy": {"all": {}}}
    refused = run_cli("unload", *args)
    assert refused.exit_code == 6
    sent = json.dumps([s.headers for s in fake.log])
    assert "prom-header-999" not in sent and "prom-token-4242" not in sent
    assert all(s.headers.get("Authorization", "").startswith("Basic ") for s in fake.log)
    seen = run.stdout + run.stderr + refused.stdout + refused.stderr + (archive / "unload.jsonl").read_text()
    for secret in ("srv-pass-777", "prom-header-999", "prom-token-4242"):
        assert secret not in seen
    assert "http://***@127.0.0.1:" in (archive / "unload.jsonl").read_text()


def test_presets_it_cannot_unload_yet_are_refused_in_one_line(tmp_path: Path) -> None:
    """TF Serving unloads through --model-config now (tests/actions/test_unload_file.py): without
    it, the refusal names it."""
    for preset in ("tfserving", "tfserving-patched"):
        run = run_cli(
            "unload", "--preset", preset, "--server", "http://127.0.0.1:9", "--archive-dir", str(tmp_path)
        )
        one_line_error(run, 2, f"retire unload --preset {preset} rewrites the model config file")
    no_server = run_cli("unload", "--preset", "triton", "--archive-dir", str(tmp_path))
    one_line_error(no_server, 2, "needs --server")


def test_the_journal_is_untrusted(triton: tuple[FakeTriton, str], tmp_path: Path) -> None:
    fake, url = triton
    archive = tmp_path / "archive"
    archive.mkdir()
    record: dict[str, Any] = {
        "step": 1,
        "phase": "done",
        "op": "unload",
        "server": url,
        "kind": "triton",
        "model": "alpha",
        "loaded": ["1", "2"],
        "keep": ["1"],
        "versions": ["../2"],
        "had": {"config": {"version_policy": {"all": {}}}},
        "time": 1_700_000_000.0,  # as Journal.append writes it
    }
    (archive / "unload.jsonl").write_text(json.dumps(record) + "\n")
    run = run_cli(*undo_args(url, archive))
    one_line_error(run, 6, "is not a journal record retire wrote")
    record["versions"] = ["2"]
    record["server"] = "http://elsewhere:8000"
    (archive / "unload.jsonl").write_text(json.dumps(record) + "\n")
    other = run_cli(*undo_args(url, archive))
    one_line_error(other, 6, "not on --server")
    assert changes(fake) == []


# --- crashes (a subprocess killed after each journal write, tests/crash.py) ---

WRITES = 4  # begin and done, for alpha and beta


@pytest.mark.parametrize("after", range(1, WRITES + 1))
def test_a_crash_after_any_journal_write_is_undone(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path, after: int
) -> None:
    fake, url = triton
    archive = tmp_path / "archive"
    crashed = cli("unload", *triton_args(present_lab, tree, url, archive, "--apply"), crash_after=after)
    assert crashed.returncode == -9, crashed.stderr
    back = cli(*undo_args(url, archive))
    assert back.returncode == 0, back.stderr
    assert loaded(fake) == {m: set(v) for m, v in ON_DISK.items()}
    again = cli(*undo_args(url, archive))
    assert again.returncode == 6 and "nothing unloaded" in again.stderr


@pytest.mark.parametrize("after", range(1, WRITES + 1))
def test_a_crash_after_any_journal_write_is_finished_by_a_rerun(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path, after: int
) -> None:
    fake, url = triton
    archive = tmp_path / "archive"
    args = triton_args(present_lab, tree, url, archive, "--apply")
    crashed = cli("unload", *args, crash_after=after)
    assert crashed.returncode == -9, crashed.stderr
    rerun = cli("unload", *args)
    assert rerun.returncode == 0, rerun.stderr
    assert loaded(fake) == AFTER
    records = list(journal_records(archive))
    steps: dict[int, str] = {}
    for r in records:
        steps[r["step"]] = r["phase"]
    assert "begin" not in steps.values()  # nothing left unfinished


# --- TorchServe's management API ---


@pytest.fixture
def torchserve() -> Iterator[tuple[FakeTorchServe, str]]:
    fake = FakeTorchServe(
        {
            "bert": {"1.0": "bert_v1.mar", "2.0": "bert_v2.mar", "10.0": "bert_v10.mar"},
            "resnet": {"1.0": "resnet_a.mar", "2.0": "resnet_b.mar"},
        },
        default={"bert": "1.0", "resnet": "2.0"},
    )
    with fake.running() as url:
        yield fake, url


def test_torchserve_unload_moves_the_default_first_and_undo_registers_it_again(
    present_lab: Lab, torchserve: tuple[FakeTorchServe, str], tmp_path: Path
) -> None:
    fake, url = torchserve
    archive = tmp_path / "archive"
    store = present_lab.models(sc.TORCHSERVE)
    args = [
        *evidence(present_lab, "--model-dir", str(store), scenario="torchserve"),
        "--server",
        url,
        "--archive-dir",
        str(archive),
    ]
    refused = run_cli("unload", *args)
    assert refused.exit_code == 6 and "unknown" in refused.stderr  # resnet 1.0: "default" calls
    dry = run_cli("unload", *args, "--only", "bert:1.0")
    assert dry.exit_code == 0, dry.stderr
    assert "  bert: keep 2.0, 10.0; unload 1.0\n" in dry.stdout
    run = run_cli("unload", *args, "--only", "bert:1.0", "--apply")
    assert run.exit_code == 0, run.stderr
    assert "not made durable for bert: TorchServe registers at start" in run.stdout + run.stderr
    assert set(fake.registered["bert"]) == {"2.0", "10.0"} and fake.default["bert"] == "10.0"
    assert [(s.method, s.path) for s in fake.log if s.method in ("PUT", "DELETE")] == [
        ("PUT", "/models/bert/10.0/set-default"),
        ("DELETE", "/models/bert/1.0"),
    ]
    bare = ["unload", "--undo", "--preset", "torchserve", "--server", url, "--archive-dir", str(archive)]
    blind = run_cli(*bare)  # the archive to register is checked against the store (attacks_24)
    assert blind.exit_code == 2 and "needs --model-dir" in blind.stderr
    back = run_cli(*bare, "--model-dir", str(store))
    assert back.exit_code == 0, back.stderr
    assert set(fake.registered["bert"]) == {"1.0", "2.0", "10.0"} and fake.default["bert"] == "1.0"
    posts = [s.path for s in fake.log if s.method == "POST"]
    assert posts == ["/models?url=bert_v1.mar&model_name=bert&initial_workers=1&synchronous=true"]


def test_torchserve_refusing_the_unregister_gets_the_default_back(
    present_lab: Lab, torchserve: tuple[FakeTorchServe, str], tmp_path: Path
) -> None:
    fake, url = torchserve
    fake.faults.add("refuse")
    archive = tmp_path / "archive"
    store = present_lab.models(sc.TORCHSERVE)
    args = [
        *evidence(present_lab, "--model-dir", str(store), scenario="torchserve"),
        "--server",
        url,
        "--archive-dir",
        str(archive),
    ]
    run = run_cli("unload", *args, "--only", "bert:1.0", "--apply")
    one_line_error(run, 6, "unloading bert failed and was undone", "HTTP 500")
    assert set(fake.registered["bert"]) == {"1.0", "2.0", "10.0"} and fake.default["bert"] == "1.0"


def test_the_readme_shows_a_real_dry_run(
    present_lab: Lab, tree: Path, triton: tuple[FakeTriton, str], tmp_path: Path
) -> None:
    _, url = triton
    run = run_cli("unload", *triton_args(present_lab, tree, url, tmp_path / "archive"))
    page = Path(__file__).resolve().parents[2] / "docs" / "offload-and-unload.md"  # README links it
    shown = page.read_text(encoding="utf-8").split("<!-- unload-dry-run -->\n```\n", 1)[1].split("```", 1)[0]
    assert run.stdout.replace(url, "http://triton:8000") == shown

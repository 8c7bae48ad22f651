"""Attacks on `retire unload` (issue #24): a real Prometheus whose history ends now (the basic
and TorchServe scenarios of tests/offload_lab.py), and small real HTTP servers speaking Triton's
repository API and TorchServe's management API (tests/model_servers.py, extended below where an
attack needs a server that behaves otherwise). No real Triton: none of these attacks needs one.

Strict xfails are attacks that work now; the plain tests are attacks that held.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from retire.actions.unload import journal_records
from retire.servers import torchserve, triton
from retire.sources.loaded import conversation
from tests import scenarios as sc
from tests.actions.test_unload import AFTER, ON_DISK, one_line_error, triton_args
from tests.conftest import Lab, run_cli
from tests.model_servers import FakeTorchServe, FakeTriton
from tests.offload_lab import cli, evidence

pytestmark = pytest.mark.prometheus


@pytest.fixture
def tree(present_lab: Lab) -> Path:
    return present_lab.models(sc.BASIC)  # read only: unload never touches the model tree


def undo_args(url: str, archive: Path, *extra: str, preset: str = "triton") -> list[str]:
    return ["unload", "--undo", "--preset", preset, "--server", url, "--archive-dir", str(archive), *extra]


def rewrite_journal(archive: Path, change: Any) -> None:
    """Edit every record of the unload journal in place (as someone with write access could)."""
    path = archive / "unload.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    path.write_text("".join(json.dumps(change(r)) + "\n" for r in records))


def operator_loads(url: str, model: str, config: dict[str, Any]) -> None:
    """Someone else changes the server between the unload and the undo, through its own API."""
    body = {"parameters": {"config": json.dumps(config)}}
    answer = httpx.post(f"{url}/v2/repository/models/{model}/load", json=body, timeout=5)
    assert answer.status_code == 200


# =============================================================================================
# Attacks that work (strict xfails)


def test_undo_never_unloads_a_version_loaded_now(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    """alpha runs with `latest { num_versions: 5 }` (all five on disk loaded). retire unloads 2
    and 3. Later a new version 9 is added and loaded by the operator (specific 1, 5, 8, 9). `--undo`
    puts back `latest 5`, which on a repository of six versions is 2, 3, 5, 8, 9: Triton unloads
    alpha 1, which clients call (in-use in the basic scenario). The undo then fails its
    confirmation, but alpha 1 is already gone."""
    fake = FakeTriton(ON_DISK)
    fake.models["alpha"].config["version_policy"] = {"latest": {"num_versions": 5}}
    archive = tmp_path / "archive"
    with fake.running() as url:
        run = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply"))
        assert run.exit_code == 0, run.stderr
        assert fake.loaded("alpha") == AFTER["alpha"]
        fake.models["alpha"].versions.append("9")
        operator_loads(
            url,
            "alpha",
            {**fake.models["alpha"].config, "version_policy": {"specific": {"versions": [1, 5, 8, 9]}}},
        )
        assert fake.loaded("alpha") == {"1", "5", "8", "9"}
        run_cli(*undo_args(url, archive))
        # Whatever the undo says, it must only load back: everything loaded before it still is.
        assert {"1", "5", "8", "9"} <= fake.loaded("alpha"), fake.loaded("alpha")


def test_an_edited_version_policy_cannot_make_undo_unload(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        assert run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply")).exit_code == 0

        def edit(r: dict[str, Any]) -> dict[str, Any]:
            r["had"]["config"]["version_policy"] = {"specific": {"versions": [8]}}
            return r

        rewrite_journal(archive, edit)
        run_cli(*undo_args(url, archive))
        assert AFTER["alpha"] <= fake.loaded("alpha"), fake.loaded("alpha")


class WordyTriton(FakeTriton):
    """A Triton whose index also lists alpha version "x", READY (and ready): not a version Triton
    could have, so an answer retire must refuse in one line."""

    def __init__(self) -> None:
        super().__init__(ON_DISK)
        self.models["alpha"].versions.append("x")
        self.models["alpha"].loaded.add("x")


def test_a_non_numeric_version_in_the_index_is_refused_in_one_line(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    fake = WordyTriton()
    archive = tmp_path / "archive"
    with fake.running() as url:
        run = cli("unload", *triton_args(present_lab, tree, url, archive, "--apply"))
        assert "Traceback" not in run.stderr, run.stderr[-600:]
        assert run.returncode in (3, 6), run.stderr
        assert fake.loads == []  # nothing asked
        assert fake.loaded("alpha") == {*ON_DISK["alpha"], "x"}


def test_a_query_string_in_server_is_never_shown(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        secret_url = f"{url}/?api_key=srv-query-secret-31"
        run = run_cli("unload", *triton_args(present_lab, tree, secret_url, tmp_path / "archive"))
        assert "srv-query-secret-31" not in run.stdout + run.stderr, run.stderr


class StoreTorchServe(FakeTorchServe):
    """TorchServe as documented: `POST /models?url=<.mar>&model_name=<m>` registers the archive
    under `model_name` whatever its MANIFEST.json says ("If this parameter is not present,
    modelName in MANIFEST.json will be used"); the version is the manifest's."""

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "POST" and path.strip("/") == "models" and query.get("url") in self.store:
            model, version = (
                query.get("model_name") or self.store[query["url"]][0],
                self.store[query["url"]][1],
            )
            if version in self.registered.setdefault(model, {}):
                return 409, {"code": 409, "message": f"Model version {version} is already registered."}
            self.registered[model][version] = query["url"]
            return 200, {"status": f'Model "{model}" Version: {version} registered with 1 initial workers'}
        return super().answer(method, path, query, body)


def test_an_edited_journal_cannot_register_another_models_archive(present_lab: Lab, tmp_path: Path) -> None:
    fake = StoreTorchServe(
        {
            "bert": {"1.0": "bert_v1.mar", "2.0": "bert_v2.mar", "10.0": "bert_v10.mar"},
            "resnet": {"1.0": "resnet_a.mar", "2.0": "resnet_b.mar"},
        },
        default={"bert": "1.0", "resnet": "2.0"},
    )
    archive = tmp_path / "archive"
    store = present_lab.models(sc.TORCHSERVE)
    with fake.running() as url:
        args = [
            *evidence(present_lab, "--model-dir", str(store), scenario="torchserve"),
            "--server",
            url,
            "--archive-dir",
            str(archive),
        ]
        run = run_cli("unload", *args, "--only", "bert:1.0", "--apply")
        assert run.exit_code == 0, run.stderr

        def edit(r: dict[str, Any]) -> dict[str, Any]:
            r["had"]["versions"]["1.0"]["url"] = "resnet_a.mar"
            return r

        rewrite_journal(archive, edit)
        run_cli(*undo_args(url, archive, preset="torchserve"))
        assert fake.registered["bert"].get("1.0") in (None, "bert_v1.mar"), fake.registered["bert"]


class RestartingTriton(FakeTriton):
    """Answers the load and the status reads as asked, then, 1 s after the first index read
    that follows the load, the first kept version goes down (a kept version restarted by the
    load, and failing to come back)."""

    def __init__(self) -> None:
        super().__init__(ON_DISK)
        self.loaded_at: float | None = None
        self.timer: threading.Timer | None = None

    def _drop(self) -> None:
        with self.lock:
            self.models["alpha"].loaded.discard("1")

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        status, payload = super().answer(method, path, query, body)
        if method == "POST" and path.endswith("/alpha/load") and self.loaded_at is None:
            self.loaded_at = time.monotonic()
        elif path == "/v2/repository/index" and self.loaded_at is not None and self.timer is None:
            self.timer = threading.Timer(1.0, self._drop)
            self.timer.start()
        return status, payload


def test_a_kept_version_that_goes_down_after_the_first_read_is_caught(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    fake = RestartingTriton()
    archive = tmp_path / "archive"
    with fake.running() as url:
        run = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply", "--only", "alpha:2"))
        time.sleep(1.3)  # the drop has happened, whenever the run ended
        assert run.exit_code == 6 or "1" in fake.loaded("alpha"), (run.exit_code, run.stderr)


# =============================================================================================
# Attacks that held


@pytest.mark.parametrize(
    "name",
    ["a b", "..%2F..", "x?load=1#frag", "caf\u00e9", "<b>&amp;", "%2e%2e", "a;b=c"],
)
def test_odd_model_names_stay_one_path_segment(name: str) -> None:
    """The server modules quote every name as one segment: no path, query or fragment injection
    into `/v2/repository/models/{m}/load` or `/models/{m}/{v}`."""
    fake = FakeTriton({name: ["1", "2"]})
    ts = FakeTorchServe({name: {"1": "a.mar", "2 /x?": "b.mar"}}, default={name: "1"})
    with fake.running() as url, conversation(triton.SERVER, url) as asker:
        had = triton.setup(asker, name)
        triton.unload(asker, name, ("1",), ("2",), had)
        assert fake.loaded(name) == {"1"}
        assert triton.state(asker, name) == {"1": True, "2": False}
    with ts.running() as url, conversation(torchserve.SERVER, url) as asker:
        had = torchserve.setup(asker, name)
        torchserve.unload(asker, name, ("1",), ("2 /x?",), had)
        assert set(ts.registered[name]) == {"1"}
    for seen in fake.log + ts.log:  # the name is one segment, whole: nothing past it was added
        path = seen.path.split("?")[0]
        assert "#" not in seen.path and path.count("/") <= 6, seen.path
        if name in {unquote(p) for p in path.split("/")}:
            assert quote(name, safe="") in path.split("/"), seen.path


@pytest.mark.parametrize("name", ["a/b", "..", "tab\tname", "nl\nname"])
def test_a_journal_naming_an_unsafe_model_is_refused(name: str, tmp_path: Path) -> None:
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    archive.mkdir()
    with fake.running() as url:
        record = {
            "step": 1,
            "phase": "done",
            "op": "unload",
            "server": url,
            "kind": "triton",
            "model": name,
            "loaded": ["1", "2"],
            "keep": ["1"],
            "versions": ["2"],
            "had": {"config": {"version_policy": {"all": {}}}},
        }
        (archive / "unload.jsonl").write_text(json.dumps(record) + "\n")
        one_line_error(run_cli(*undo_args(url, archive)), 6, "not a safe name")
        assert [s for s in fake.log if s.method == "POST" and "load" in s.path] == []


def test_an_edited_config_in_the_journal_changes_only_the_version_policy(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """Extra fields in the journal's `had.config` (another backend, instance groups, another name)
    never reach the server: the undo loads the config the server runs now, with the policy only."""
    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url:
        assert run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply")).exit_code == 0

        def edit(r: dict[str, Any]) -> dict[str, Any]:
            r["had"]["config"].update(
                backend="evil", name="beta", instance_group=[{"count": 64, "kind": "KIND_GPU"}]
            )
            return r

        rewrite_journal(archive, edit)
        back = run_cli(*undo_args(url, archive))
        assert back.exit_code == 0, back.stderr
        assert {m: fake.loaded(m) for m in ON_DISK} == {m: set(v) for m, v in ON_DISK.items()}
        assert all(c["backend"] == "python" and "instance_group" not in c for c in fake.loads)
        assert [c["name"] for c in fake.loads[-2:]] == ["alpha", "beta"]


class RedirectingTriton(FakeTriton):
    """Answers every load with a redirect to another host (which logs what reaches it)."""

    def __init__(self, elsewhere: str) -> None:
        super().__init__(ON_DISK)
        self.elsewhere = elsewhere

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        if method == "POST" and path.endswith("/load"):
            return 307, {"location": self.elsewhere + path}
        return super().answer(method, path, query, body)


def test_a_redirect_is_not_followed_and_nothing_reaches_the_other_host(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    other = FakeTriton(ON_DISK)
    with other.running() as elsewhere:
        fake = RedirectingTriton(elsewhere)
        with fake.running() as url:
            secret_url = url.replace("http://", "http://ops:redir-pass-55@")
            archive = tmp_path / "archive"
            run = run_cli("unload", *triton_args(present_lab, tree, secret_url, archive, "--apply"))
            one_line_error(run, 6, "unloading alpha failed")
            assert other.log == []
            assert {m: fake.loaded(m) for m in ON_DISK} == {m: set(v) for m, v in ON_DISK.items()}
            assert "redir-pass-55" not in run.stderr + (archive / "unload.jsonl").read_text()


class HangingUpTriton(FakeTriton):
    """Does the first load, then closes the connection without an answer (its handler fails to
    write one: the object it would answer is not JSON)."""

    def __init__(self) -> None:
        super().__init__(ON_DISK)
        self.hung_up = False

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, Any]:
        status, payload = super().answer(method, path, query, body)
        if method == "POST" and path.endswith("/load") and not self.hung_up:
            self.hung_up = True
            return 200, object()  # json.dumps fails in the handler: the socket closes unanswered
        return status, payload


def test_a_change_done_but_never_answered_is_put_back(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    """retire in a subprocess: the fake's own traceback (its handler failing) stays in pytest's
    stderr, apart from retire's."""
    fake = HangingUpTriton()
    archive = tmp_path / "archive"
    with fake.running() as url:
        run = cli("unload", *triton_args(present_lab, tree, url, archive, "--apply"))
        assert run.returncode == 6 and "Traceback" not in run.stderr, run.stderr
        assert "unloading alpha failed and was undone" in run.stderr, run.stderr
        assert {m: fake.loaded(m) for m in ON_DISK} == {m: set(v) for m, v in ON_DISK.items()}
        assert [r["phase"] for r in journal_records(archive)] == ["begin", "failed"]


@pytest.mark.parametrize(
    ("only", "said"),
    [("alpha:1", "in-use, not safe"), ("alpha:99", "not found, not safe"), ("gamma:1", "not found")],
)
def test_only_never_reaches_past_the_report(
    present_lab: Lab, tree: Path, tmp_path: Path, only: str, said: str
) -> None:
    fake = FakeTriton(ON_DISK)
    with fake.running() as url:
        run = run_cli(
            "unload", *triton_args(present_lab, tree, url, tmp_path / "a", "--only", only, "--apply")
        )
        one_line_error(run, 6, said)
        assert fake.loads == []


def test_another_run_holding_the_archive_is_a_refusal(present_lab: Lab, tree: Path, tmp_path: Path) -> None:
    """A second run (here: this test, holding the archive's lock through retire's own lock) makes
    `--apply` and `--undo` refuse before any change."""
    from retire.actions.locks import locked

    fake = FakeTriton(ON_DISK)
    archive = tmp_path / "archive"
    with fake.running() as url, locked(archive):
        run = run_cli("unload", *triton_args(present_lab, tree, url, archive, "--apply"))
        one_line_error(run, 6, "holds")
        one_line_error(run_cli(*undo_args(url, archive)), 6, "holds")
        assert fake.loads == []


@pytest.mark.parametrize("only", ["resnet:1.0", "resnet:2.0", "resnet:default"])
def test_torchserve_versions_reachable_through_the_default_label_are_never_unloaded(
    present_lab: Lab, tmp_path: Path, only: str
) -> None:
    """resnet is called without a version (`model_version="default"`): any of its versions may be
    the one answering, so none may be named, nor the label itself."""
    fake = FakeTorchServe(
        {"resnet": {"1.0": "resnet_a.mar", "2.0": "resnet_b.mar"}, "bert": {"1.0": "bert_v1.mar"}},
        default={"resnet": "1.0", "bert": "1.0"},
    )
    store = present_lab.models(sc.TORCHSERVE)
    with fake.running() as url:
        args = [
            *evidence(present_lab, "--model-dir", str(store), scenario="torchserve"),
            "--server",
            url,
            "--archive-dir",
            str(tmp_path / "archive"),
        ]
        run = run_cli("unload", *args, "--only", only, "--apply")
        one_line_error(run, 6, "not safe")
        assert [s for s in fake.log if s.method in ("PUT", "DELETE", "POST")] == []


def test_a_server_that_holds_the_load_past_the_deadline_is_bounded(
    present_lab: Lab, tree: Path, tmp_path: Path
) -> None:
    """The load is held 8 s; --timeout 30s but --deadline 6s: the run ends by its deadline (exit 6,
    the step left begun for --undo), it does not wait for the server."""
    fake = FakeTriton(ON_DISK)
    fake.faults.add("slow")
    fake.delay = 8.0
    archive = tmp_path / "archive"
    with fake.running() as url:
        started = time.monotonic()
        run = run_cli(
            "unload",
            *triton_args(present_lab, tree, url, archive, "--apply", "--timeout", "30s", "--deadline", "6s"),
        )
        took = time.monotonic() - started
        one_line_error(run, 6, "--deadline")
        assert took < 7.5, took
        assert [r["phase"] for r in journal_records(archive)] == ["begin"]
        time.sleep(max(0.0, 8.5 - took))  # the held load lands, then --undo puts it back
        back = run_cli(*undo_args(url, archive))
        assert back.exit_code == 0, back.stderr
        assert {m: fake.loaded(m) for m in ON_DISK} == {m: set(v) for m, v in ON_DISK.items()}

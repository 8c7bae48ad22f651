"""Rewriting TF Serving's --model_config_file to unload versions (issue #24): every policy kind,
version labels, several models, the result read back by protobuf's text_format against the real
ModelServerConfig schema (retire/sources/disk/server_configs.py); models not named untouched byte
for byte; and the file replaced atomically, keeping mode, owner and symlinks, with real faults (a
read-only and a full filesystem: small tmpfs mounts in a private mount namespace)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from retire.actions.tfserving_config import (
    Rewrite,
    keep_original,
    read_config,
    restore,
    rewrite,
    write_atomically,
)
from retire.errors import InventoryError, OffloadError
from retire.sources.disk.server_configs import (
    VersionPolicy,
    _schema,
    parse_tfserving_text,
    read_tfserving_config,
    tfserving_policy,
)
from tests.sources.disk.test_text_format import _set_policy

ROOT = Path(__file__).resolve().parents[2]


def _one(policy: str, labels: str = "") -> str:
    return f"model_config_list {{ config {{ name: 'm' base_path: '/m' {policy} {labels} }} }}\n"


def _read_back(tmp_path: Path, text: str) -> dict[str, VersionPolicy]:
    """The policies TF Serving's schema reads from the text, through retire's own reader."""
    path = tmp_path / "read_back.config"
    path.write_text(text, encoding="utf-8")
    return {e.name: e.policy for e in read_tfserving_config(path)}


def _served(policy: VersionPolicy, disk: set[int]) -> set[int]:
    """The versions TF Serving loads under a policy (file_system_storage_path_source.cc)."""
    if policy.kind == "specific":
        return set(policy.versions)
    if policy.kind == "all":
        return set(disk)
    return set(sorted(disk)[-policy.num_versions :]) if disk else set()


# (policy text, versions to unload, versions on disk, policy after; None: refused with `needle`)
CHANGED = {
    "specific": ("model_version_policy { specific { versions: [1, 2, 3] } }", {1}, None, "specific 2 3"),
    "specific, two of three": (
        "model_version_policy { specific { versions: 3 versions: 1 versions: 2 } }",
        {1, 3},
        None,
        "specific 2",
    ),
    "specific, a version listed twice": (
        "model_version_policy { specific { versions: [5, 4, 5] } }",
        {5},
        None,
        "specific 4",
    ),
    "latest, the oldest": (
        "model_version_policy { latest { num_versions: 3 } }",
        {3},
        {1, 2, 3, 4, 5},
        "latest 2",
    ),
    "latest, the two oldest": (
        "model_version_policy { latest { num_versions: 3 } }",
        {3, 4},
        {1, 2, 3, 4, 5},
        "latest 1",
    ),
    # Fewer on disk than N: latest 5 serves 1-3, so 5 - 1 = 4 would unload nothing; min(5, 3) - 1.
    "latest, fewer on disk than N": (
        "model_version_policy { latest { num_versions: 5 } }",
        {1},
        {1, 2, 3},
        "latest 2",
    ),
    "all, converted when asked": ("model_version_policy { all {} }", {2}, {1, 2, 3}, "specific 1 3"),
}


def _policy(words: str) -> VersionPolicy:
    kind, *numbers = words.split()
    if kind == "latest":
        return VersionPolicy("latest", int(numbers[0]))
    return VersionPolicy("specific", versions=tuple(int(n) for n in numbers))


@pytest.mark.parametrize(("policy", "unload", "disk", "after"), CHANGED.values(), ids=CHANGED.keys())
def test_changed_policies_read_back(
    tmp_path: Path, policy: str, unload: set[int], disk: set[int] | None, after: str
) -> None:
    text = _one(policy)
    r = rewrite(text, {"m": unload}, {"m": disk} if disk else None, all_to_specific=True)
    assert not r.refusals and [c.model for c in r.changes] == ["m"]
    (change,) = r.changes
    assert change.after == _policy(after) == _read_back(tmp_path, r.text)["m"]
    assert change.before == _read_back(tmp_path, text)["m"]
    on_disk = disk or set(change.before.versions)
    assert _served(change.after, on_disk) == _served(change.before, on_disk) - unload
    # Only the policy's text changed.
    start = text.index("model_version_policy")
    assert r.text.startswith(text[:start]) and r.text.endswith(text[start + len(policy) :])


REFUSED = {
    "specific, not listed": (
        "model_version_policy { specific { versions: [1, 2] } }",
        {3},
        None,
        "version 3 is not in its specific list, so this file does not load it",
    ),
    "specific, one listed one not": (
        "model_version_policy { specific { versions: [1, 2] } }",
        {1, 3, 4},
        None,
        "versions 3, 4 are not in its specific list",
    ),
    "specific, emptied": (
        "model_version_policy { specific { versions: [1, 2] } }",
        {1, 2},
        None,
        "would empty its specific list, and TF Serving would then unload every version",
    ),
    "latest, not the oldest": (
        "model_version_policy { latest { num_versions: 3 } }",
        {4},
        {1, 2, 3, 4, 5},
        "latest 3 loads 3, 4, 5; lowering it unloads the oldest first, and 4 are not the oldest 1 "
        "of them (that would be 3)",
    ),
    "latest, not loaded": (
        "model_version_policy { latest { num_versions: 2 } }",
        {3},
        {1, 2, 3, 4, 5},
        "version 3 is not among the 2 newest on disk that latest 2 loads (4, 5)",
    ),
    "latest, all it serves": (
        "model_version_policy { latest { num_versions: 2 } }",
        {4, 5},
        {1, 2, 3, 4, 5},
        "would leave none of the versions latest 2 loads",
    ),
    "latest 0 (read as 1)": (
        "model_version_policy { latest { num_versions: 0 } }",
        {5},
        {4, 5},
        "would leave none of the versions latest 1 loads",
    ),
    "no policy (latest 1)": ("", {5}, {4, 5}, "would leave none of the versions latest 1 loads"),
    "a policy with no kind (latest 1)": (
        "model_version_policy { }",
        {5},
        {4, 5},
        "would leave none of the versions latest 1 loads",
    ),
    "latest, disk not given": (
        "model_version_policy { latest { num_versions: 3 } }",
        {1},
        None,
        "its policy is `latest 3`, and which versions that loads depends on the versions on disk",
    ),
    "all, by default": (
        "model_version_policy { all {} }",
        {1},
        {1, 2},
        "its policy is `all`, which no edit can narrow without becoming a specific list",
    ),
    "all, disk not given": ("model_version_policy { all {} }", {1}, None, "its policy is `all`, and which"),
}


@pytest.mark.parametrize(("policy", "unload", "disk", "needle"), REFUSED.values(), ids=REFUSED.keys())
def test_refused_policies_leave_the_file_as_it_was(
    policy: str, unload: set[int], disk: set[int] | None, needle: str
) -> None:
    text = _one(policy)
    r = rewrite(text, {"m": unload}, {"m": disk} if disk else None)
    assert r == Rewrite(text, (), r.refusals) and not r.changed
    (refusal,) = r.refusals
    assert (refusal.model, refusal.versions) == ("m", tuple(sorted(unload)))
    assert needle in refusal.reason and "\n" not in refusal.reason


@pytest.mark.parametrize(
    ("disk", "unload", "needle"),
    [
        ({1, 2}, {3}, "version 3 is not on disk, so `all` does not load it"),
        ({1, 2}, {1, 2}, "would unload every version on disk"),
    ],
)
def test_all_converted_refusals(disk: set[int], unload: set[int], needle: str) -> None:
    r = rewrite(_one("model_version_policy { all {} }"), {"m": unload}, {"m": disk}, all_to_specific=True)
    assert not r.changed and needle in r.refusals[0].reason


def test_all_converted_says_what_it_changes() -> None:
    r = rewrite(_one("model_version_policy { all {} }"), {"m": {1}}, {"m": {1, 2, 3}}, all_to_specific=True)
    assert r.changes[0].note == "all -> specific 2, 3: versions that arrive later will no longer be loaded"


def test_latest_says_what_a_new_version_will_do() -> None:
    r = rewrite(_one("model_version_policy { latest { num_versions: 3 } }"), {"m": {3}}, {"m": {3, 4, 5}})
    assert (
        r.changes[0].note == "latest 3 -> 2: a version that arrives later will push out the oldest one kept"
    )


@pytest.mark.parametrize(
    ("labels", "unload", "needle"),
    [
        ("version_labels { key: 'stable' value: 1 }", {1}, "version label 'stable' -> 1 still points at"),
        (
            "version_labels { key: 'canary' value: 3 } version_labels { key: 'stable' value: 1 }",
            {1, 3},
            "version label 'stable' -> 1, 'canary' -> 3 still points",
        ),
    ],
)
def test_labelled_versions_are_refused(labels: str, unload: set[int], needle: str) -> None:
    text = _one("model_version_policy { specific { versions: [1, 2, 3] } }", labels)
    r = rewrite(text, {"m": unload})
    assert r.text == text and not r.changes
    assert needle in r.refusals[0].reason and "reach it by label" in r.refusals[0].reason


def test_a_label_on_a_kept_version_does_not_stop_the_unload(tmp_path: Path) -> None:
    text = _one(
        "model_version_policy { specific { versions: [1, 2] } }", "version_labels { key: 's' value: 2 }"
    )
    r = rewrite(text, {"m": {1}})
    assert _read_back(tmp_path, r.text)["m"] == VersionPolicy("specific", versions=(2,))
    assert parse_tfserving_text(r.text).model_config_list.config[0].version_labels["s"] == 2


SEVERAL = """\
# Models served by the ranking cluster. Reviewed by ml-platform.
model_config_list {
  config {
    name: "ranker"  # the one with traffic
    base_path: "/models/ranker"
    model_platform: "tensorflow"
    model_version_policy {
      specific {
        versions: 7   # stable, do not touch
        versions: 8
        versions: 9
      }
    }
    version_labels { key: "stable" value: 9 }
  }
  config: {
    name: 'embedder' base_path: '/models/embedder'
    model_version_policy: < latest: < num_versions: 0x3 > >;  # three, hex on purpose
  },
  config [ { name: "old" base_path: "/models/old" model_version_policy { all {} } },
           { name: "other" base_path: "/models/other" model_version_policy { specific { versions: [1, 2] } } } ]
}
"""


def test_several_models_only_the_changed_policies_move(tmp_path: Path) -> None:
    r = rewrite(
        SEVERAL,
        {"ranker": {7, 8}, "embedder": {4}, "old": {1}, "other": {3}, "ghost": {1}},
        {"embedder": {1, 2, 3, 4, 5, 6}, "old": {1, 2}},
    )
    ranker = """    model_version_policy {
      specific {
        versions: 9
      }
    }
"""
    embedder = "model_version_policy { latest { num_versions: 2 } };  # three, hex on purpose"
    expected = SEVERAL.replace(
        SEVERAL[SEVERAL.index("    model_version_policy {\n") : SEVERAL.index("    version_labels")], ranker
    )
    expected = expected.replace(
        "model_version_policy: < latest: < num_versions: 0x3 > >;  # three, hex on purpose", embedder
    )
    assert r.text == expected  # every other byte, comments and all, as it was
    assert [(c.model, c.after) for c in r.changes] == [
        ("embedder", VersionPolicy("latest", 2)),
        ("ranker", VersionPolicy("specific", versions=(9,))),
    ]
    assert "the comments inside its model_version_policy were dropped" in r.changes[1].note
    assert r.changes[0].note.startswith("latest 3 -> 2")  # its comment was outside the policy
    assert {f.model: f.reason.split(",")[0] for f in r.refusals} == {
        "ghost": "it is not in config",
        "old": "its policy is `all`",
        "other": "version 3 is not in its specific list",
    }
    assert _read_back(tmp_path, r.text) == {
        "ranker": VersionPolicy("specific", versions=(9,)),
        "embedder": VersionPolicy("latest", 2),
        "old": VersionPolicy("all"),
        "other": VersionPolicy("specific", versions=(1, 2)),
    }


def test_crlf_and_indentation_are_kept() -> None:
    text = (
        "model_config_list {\r\n"
        "\tconfig {\r\n"
        "\t\tname: 'm' base_path: '/m'\r\n"
        "\t\tmodel_version_policy {\r\n"
        "\t\t\tspecific { versions: 1 versions: 2 }\r\n"
        "\t\t}\r\n"
        "\t}\r\n"
        "}\r\n"
    )
    r = rewrite(text, {"m": {1}})
    assert r.text == text.replace(
        "model_version_policy {\r\n\t\t\tspecific { versions: 1 versions: 2 }\r\n\t\t}",
        "model_version_policy {\r\n\t\t  specific {\r\n\t\t    versions: 2\r\n\t\t  }\r\n\t\t}",
    )
    assert tfserving_policy(
        parse_tfserving_text(r.text).model_config_list.config[0].model_version_policy
    ) == (VersionPolicy("specific", versions=(2,)))


def test_a_model_listed_twice_is_refused() -> None:
    text = "model_config_list { config { name: 'm' base_path: '/a' } config { name: 'm' base_path: '/b' } }"
    r = rewrite(text, {"m": {1}}, {"m": {1, 2}})
    assert r.text == text and "listed 2 times in config, a file TF Serving refuses" in r.refusals[0].reason


def test_nothing_asked_changes_nothing() -> None:
    text = _one("model_version_policy { specific { versions: [1, 2] } }")
    assert rewrite(text, {"m": set()}) == Rewrite(text, (), ())


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            "model_config_list { config { name: 'm' model_version_polcy { } } }",
            "unknown field 'model_version_polcy'",
        ),
        ("custom_model_config { }", "no model_config_list"),
        ("model_config_list { config { name: 'm' ", "expected"),
    ],
)
def test_a_config_tf_serving_refuses_is_an_error(text: str, needle: str) -> None:
    with pytest.raises(InventoryError) as e:
        rewrite(text, {"m": {1}}, where="models.config")
    assert str(e.value).startswith("models.config") and needle in str(e.value) and "\n" not in str(e.value)


# --------------------------------------------------------------------------------------------
# Any config protobuf prints, any versions to unload: a reason, or exactly those versions gone.

VERSION = st.integers(0, 9)
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=6) | st.sampled_from(
    ["m", "'", '"', "\\", "#x", "a b", "{}<>[]:;,", "model_version_policy"]
)
policies = st.one_of(
    st.none(),
    st.just(("none", None)),
    st.tuples(st.just("latest"), st.integers(0, 6)),
    st.tuples(st.just("latest"), st.integers(2, 6)),
    st.just(("all", None)),
    st.tuples(st.just("specific"), st.lists(VERSION, max_size=5)),
)
models = st.lists(
    st.fixed_dictionaries(
        {
            "name": names,
            "policy": policies,
            "labels": st.dictionaries(st.text(max_size=4), VERSION, max_size=2),
            "disk": st.sets(VERSION, max_size=7),
            # what to unload: nothing, any versions, or some of those it loads (often accepted)
            "unload": st.sampled_from(["oldest loaded", "loaded", "any", "none"]),
        }
    ),
    min_size=1,
    max_size=4,
)
printers = st.fixed_dictionaries(
    {
        "as_one_line": st.booleans(),
        "use_short_repeated_primitives": st.booleans(),
        "pointy_brackets": st.booleans(),
        "force_colon": st.booleans(),
    }
)


def _expected(choice: tuple[str, Any] | None) -> VersionPolicy:
    """The policy TF Serving applies for a choice drawn below."""
    if choice is None or choice[0] == "none":
        return VersionPolicy()
    kind, arg = choice
    if kind == "latest":
        return VersionPolicy("latest", max(arg, 1))
    return VersionPolicy("specific", versions=tuple(arg)) if kind == "specific" else VersionPolicy("all")


def _without_policy(config: Any) -> Any:
    out = type(config)()
    out.CopyFrom(config)
    out.ClearField("model_version_policy")
    return out


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.data(),
    ms=models,
    printer=printers,
    comments=st.booleans(),
    all_to_specific=st.booleans(),
    stranger=st.sampled_from([None, None, None, {1}]),
)
def test_any_printed_config_any_unload(
    data: st.DataObject,
    ms: list[dict[str, Any]],
    printer: dict[str, bool],
    comments: bool,
    all_to_specific: bool,
    stranger: set[int] | None,
) -> None:
    from google.protobuf import text_format

    root: Any = _schema().model_server_config()
    for i, m in enumerate(ms):
        c = root.model_config_list.config.add()
        c.name, c.base_path = m["name"], f"/models/{i}"
        _set_policy(c.model_version_policy, m["policy"])
        for k, v in m["labels"].items():
            c.version_labels[k] = v
    text = text_format.MessageToString(root, **printer)
    if comments:  # a comment at the end of every line (strings never span lines)
        text = "".join(f"{line} # note {{ }} 'x\n" for line in text.split("\n"))
    unload = {}
    for m in ms:
        loaded = sorted(_served(_expected(m["policy"]), m["disk"]))
        if m["unload"] == "any":
            unload[m["name"]] = data.draw(st.sets(VERSION, max_size=4))
        elif m["unload"] == "loaded" and loaded:
            unload[m["name"]] = set(data.draw(st.lists(st.sampled_from(loaded), min_size=1, max_size=3)))
        elif m["unload"] == "oldest loaded" and loaded:
            unload[m["name"]] = set(loaded[: data.draw(st.integers(1, len(loaded)))])
    if stranger is not None:
        unload["not listed \x00"] = stranger
    disk = {m["name"]: m["disk"] for m in ms}  # the last of two same names wins, as a dict does

    r = rewrite(text, unload, disk, all_to_specific=all_to_specific)

    event("some model changed" if r.changes else "nothing changed")
    event(f"kinds changed: {sorted({c.before.kind for c in r.changes})}")
    asked = {m for m, vs in unload.items() if vs}
    assert {c.model for c in r.changes} | {f.model for f in r.refusals} == asked
    assert not {c.model for c in r.changes} & {f.model for f in r.refusals}
    assert all("\n" not in f.reason and f.reason for f in r.refusals)
    if not r.changes:
        assert r.text == text
    before, after = root.model_config_list.config, parse_tfserving_text(r.text).model_config_list.config
    assert len(after) == len(before)
    changed = {c.model: c for c in r.changes}
    for old, new in zip(before, after, strict=True):
        if old.name not in changed:
            assert new == old  # refused or not named: the same config
            continue
        assert _without_policy(new) == _without_policy(old)  # only the policy moved
        change, gone = changed[old.name], set(unload[old.name])
        was, now = tfserving_policy(old.model_version_policy), tfserving_policy(new.model_version_policy)
        assert (change.before, change.after) == (was, now)
        on_disk = disk[old.name]
        assert gone <= _served(was, on_disk)  # only loaded versions are unloaded...
        assert _served(now, on_disk) == _served(was, on_disk) - gone  # ...and every other one stays
        assert _served(now, on_disk)  # never none
        assert not gone & set(old.version_labels.values())  # no labelled version
        if was.kind == "all":
            assert all_to_specific and "no longer be loaded" in change.note
        if now.kind == "latest":
            assert was.kind == "latest" and now.num_versions < was.num_versions


# --------------------------------------------------------------------------------------------
# Writing the file


def _config(
    tmp_path: Path, text: str = _one("model_version_policy { specific { versions: [1, 2] } }")
) -> Path:
    path = tmp_path / "models.config"
    path.write_text(text, encoding="utf-8")
    return path


def test_rewrite_keep_write_restore(tmp_path: Path) -> None:
    path = _config(tmp_path)
    os.chmod(path, 0o640)
    os.chown(path, 65534, 65534)  # as another user (the tests run as root here)
    journal = tmp_path / "journal"
    journal.mkdir()
    old = read_config(path)
    r = rewrite(old, {"m": {1}}, where=str(path))
    kept = keep_original(path, journal, expected=old)
    assert kept.parent == journal and kept.read_text(encoding="utf-8") == old
    assert keep_original(path, journal, expected=old) == kept  # a rerun finds the same copy
    write_atomically(path, r.text, expected=old)
    assert read_config(path) == r.text
    assert _read_back(tmp_path, read_config(path))["m"] == VersionPolicy("specific", versions=(2,))
    st_ = os.stat(path)
    assert (st_.st_mode & 0o7777, st_.st_uid, st_.st_gid) == (0o640, 65534, 65534)
    assert sorted(os.listdir(tmp_path)) == ["journal", "models.config", "read_back.config"]
    restore(path, kept, expected=r.text)
    assert read_config(path) == old
    assert (os.stat(path).st_uid, os.stat(path).st_mode & 0o7777) == (65534, 0o640)


def test_a_symlinked_config_stays_a_link(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "etc").mkdir()
    target = _config(tmp_path / "real")
    link = tmp_path / "etc" / "models.config"
    link.symlink_to("../real/models.config")
    r = rewrite(read_config(link), {"m": {2}})
    write_atomically(link, r.text, expected=read_config(link))
    assert link.is_symlink() and os.readlink(link) == "../real/models.config"
    assert target.read_text(encoding="utf-8") == r.text
    assert os.listdir(tmp_path / "etc") == ["models.config"]
    assert os.listdir(tmp_path / "real") == ["models.config"]


def _one_line_refusal(call: Any, needle: str) -> str:
    with pytest.raises(OffloadError) as e:
        call()
    message = str(e.value)
    assert "\n" not in message and needle in message and e.value.exit_code == 6
    return message


def test_a_file_changed_since_it_was_read_is_not_overwritten(tmp_path: Path) -> None:
    path = _config(tmp_path)
    old = read_config(path)
    r = rewrite(old, {"m": {1}})
    path.write_text(old + "# edited by someone\n", encoding="utf-8")
    _one_line_refusal(lambda: write_atomically(path, r.text, expected=old), "it changed since retire read it")
    _one_line_refusal(lambda: keep_original(path, tmp_path, expected=old), "changed since retire read it")
    assert read_config(path) == old + "# edited by someone\n"


def test_hard_links_and_non_files_are_refused(tmp_path: Path) -> None:
    path = _config(tmp_path)
    os.link(path, tmp_path / "other.config")
    _one_line_refusal(lambda: write_atomically(path, "x"), "it has 2 hard links")
    _one_line_refusal(lambda: write_atomically(tmp_path, "x"), "it is not a regular file")
    _one_line_refusal(lambda: write_atomically(tmp_path / "missing", "x"), "No such file or directory")
    assert read_config(path) == _one("model_version_policy { specific { versions: [1, 2] } }")


def test_a_tampered_kept_copy_is_not_restored(tmp_path: Path) -> None:
    path = _config(tmp_path)
    kept = keep_original(path, tmp_path)
    kept.write_text("model_config_list { }", encoding="utf-8")
    _one_line_refusal(lambda: restore(path, kept), "is not a copy retire kept")
    _one_line_refusal(lambda: restore(path, tmp_path / "models.config"), "is not a copy retire kept")
    assert read_config(path) == _one("model_version_policy { specific { versions: [1, 2] } }")


def test_crlf_bytes_survive_reading_and_writing(tmp_path: Path) -> None:
    path = tmp_path / "models.config"
    path.write_bytes(
        _one("model_version_policy { specific { versions: [1, 2] } }").replace("\n", "\r\n").encode()
    )
    text = read_config(path)
    write_atomically(path, rewrite(text, {"m": {1}}).text, expected=text)
    assert path.read_bytes() == (
        b"model_config_list { config { name: 'm' base_path: '/m' "
        b"model_version_policy { specific { versions: 2 } }  } }\r\n"
    )


# Real faults: a tmpfs mounted in a private mount namespace (`unshare --mount`), so the mount
# goes away with the process and the machine's mounts never change.
FAULT = textwrap.dedent(
    """
    import json, os, subprocess, sys
    from pathlib import Path
    from retire.actions.tfserving_config import keep_original, read_config, rewrite, write_atomically
    from retire.errors import RetireError

    where, fault = Path(sys.argv[1]), sys.argv[2]
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(where)], check=True)
    config = where / "models.config"
    old = "model_config_list { config { name: 'm' base_path: '/m' " + "#" * 3000 + "\\n"
    old += "model_version_policy { specific { versions: [1, 2] } } } }\\n"
    config.write_text(old)
    new = rewrite(old, {"m": {1}}).text
    if fault == "full":
        with open(where / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"x" * 512)
            except OSError:
                pass
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
    errors = []
    for call in (lambda: write_atomically(config, new, expected=old), lambda: keep_original(config, where)):
        try:
            call()
            errors.append(None)
        except RetireError as e:
            errors.append(str(e))
    print(json.dumps({"errors": errors, "intact": read_config(config) == old, "files": sorted(os.listdir(where))}))
    """
)


@pytest.mark.parametrize(
    ("fault", "why"), [("full", "No space left on device"), ("ro", "Read-only file system")]
)
def test_a_full_or_read_only_filesystem_leaves_the_file_intact(tmp_path: Path, fault: str, why: str) -> None:
    unshare = shutil.which("unshare")
    if (
        unshare is None
        or subprocess.run([unshare, "--mount", "true"], capture_output=True, timeout=30).returncode
    ):
        pytest.skip("needs `unshare --mount` (root, or CAP_SYS_ADMIN) to mount a small tmpfs")
    where = tmp_path / "mnt"
    where.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [unshare, "--mount", sys.executable, "-c", FAULT, str(where), fault],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["intact"]
    assert result["files"] == (["filler", "models.config"] if fault == "full" else ["models.config"])
    write_error, keep_error = result["errors"]
    assert write_error.startswith(f"cannot rewrite {where / 'models.config'}: {why}")
    assert write_error.endswith("the file was not changed") and "\n" not in write_error
    assert keep_error.startswith(f"cannot keep a copy of {where / 'models.config'} in {where}: {why}")
    assert os.listdir(where) == []  # the mount went with its namespace


# --- putting versions back (`retire unload --undo` on a file retire did not write last) ---

ADDED = {
    "specific grows": (
        "model_version_policy { specific { versions: [5, 8] } }",
        {2},
        {2, 5, 8},
        "specific 5 8 2",
    ),
    "latest grows by the next older": (
        "model_version_policy { latest { num_versions: 1 } }",
        {2},
        {1, 2, 3},
        "latest 2",
    ),
    "latest, two back": (
        "model_version_policy { latest { num_versions: 1 } }",
        {1, 2},
        {1, 2, 3},
        "latest 3",
    ),
}


@pytest.mark.parametrize(("policy", "add", "disk", "after"), ADDED.values(), ids=ADDED.keys())
def test_add_back_only_adds_and_reads_back(
    tmp_path: Path, policy: str, add: set[int], disk: set[int], after: str
) -> None:
    from retire.actions.tfserving_config import add_back, loads

    text = _one(policy)
    r = add_back(text, {"m": add}, {"m": disk})
    assert not r.refusals and _read_back(tmp_path, r.text)["m"] == _policy(after) == r.changes[0].after
    assert loads(r.changes[0].after, disk) == loads(r.changes[0].before, disk) | add


@pytest.mark.parametrize(
    ("policy", "add", "disk", "needle"),
    [
        ("model_version_policy { latest { num_versions: 1 } }", {1}, {1, 2, 3}, "would also load 2"),
        ("model_version_policy { latest { num_versions: 2 } }", {9}, {1, 2, 3}, "not on disk"),
        ("", {1}, {1, 2}, "not written in the file"),
    ],
)
def test_add_back_refusals(policy: str, add: set[int], disk: set[int], needle: str) -> None:
    from retire.actions.tfserving_config import add_back

    text = _one(policy)
    r = add_back(text, {"m": add}, {"m": disk})
    assert r.text == text and not r.changed and needle in r.refusals[0].reason


def test_add_back_of_what_is_loaded_changes_nothing() -> None:
    from retire.actions.tfserving_config import add_back

    for policy in (
        "model_version_policy { all {} }",
        "model_version_policy { specific { versions: [1, 2] } }",
    ):
        r = add_back(_one(policy), {"m": {2}}, {"m": {1, 2}})
        assert r == Rewrite(_one(policy), (), ())


def test_a_kept_copy_is_put_back_only_where_it_only_adds_back() -> None:
    from retire.actions.tfserving_config import only_adds_back

    now = _one("model_version_policy { specific { versions: [1, 5] } }")
    kept = _one("model_version_policy { specific { versions: [1, 2, 5] } }")
    assert only_adds_back(kept, now, "m", {2}, {1, 2, 5}) is None
    assert "would not load 5" in (
        only_adds_back(
            _one("model_version_policy { specific { versions: [1, 2] } }"), now, "m", {2}, {1, 2, 5}
        )
        or ""
    )
    other = kept.replace("base_path: '/m'", "base_path: '/evil'")
    assert "more than the version policy" in (only_adds_back(other, now, "m", {2}, {1, 2, 5}) or "")
    assert "would not load 2" in (only_adds_back(now, now, "m", {2}, {1, 2, 5}) or "")

"""Attacks on the text edit of a Triton config.pbtxt (retire/actions/triton_config.py `plan`):
real files, no server. The edit must change the top-level version_policy alone, every other
byte kept, or refuse in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from retire.actions import triton_config as durable

ALL = {"all": {}}


def plan(tmp_path: Path, text: str | bytes, server: object = ALL) -> durable.Edit | str:
    path = tmp_path / "m" / "config.pbtxt"
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return durable.plan("m", path, ["2", "3"], [server], [1, 2, 3, 4])


NEW = "version_policy { specific { versions: [ 2, 3 ] } }"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # the field's name inside a string, and in a comment, before the real one
            'parameters { key: "n" value { string_value: "version_policy { all {} }" } }\n'
            "# version_policy { latest { num_versions: 1 } }\n"
            "version_policy { all {} }\n",
            'parameters { key: "n" value { string_value: "version_policy { all {} }" } }\n'
            "# version_policy { latest { num_versions: 1 } }\n"
            f"{NEW}\n",
        ),
        (  # a nested message with its own field of that name is not the model's
            'ensemble_scheduling { step [ { model_name: "x" model_version: -1 } ] }\n'
            "version_policy: { all: { } }\n",
            f'ensemble_scheduling {{ step [ {{ model_name: "x" model_version: -1 }} ] }}\n{NEW}\n',
        ),
        (  # written on one line between other fields
            'name: "m" version_policy { all {} } backend: "python"\n',
            f'name: "m" {NEW} backend: "python"\n',
        ),
    ],
    ids=["string-and-comment", "nested", "one-line"],
)
def test_only_the_top_level_policy_is_replaced(tmp_path: Path, text: str, expected: str) -> None:
    edit = plan(tmp_path, text)
    assert isinstance(edit, durable.Edit), edit
    assert edit.after == expected


@pytest.mark.parametrize(
    "text",
    [
        b"version_policy { all {} }\n\xff\xfe",  # not UTF-8
        b"version_policy { all {} }\nversion_policy { all {} }\n",  # twice
        b"version_policy: 3\n",  # not a message
        b"version_policy { all {} } }\n",  # unbalanced
        b"{" * 5000 + b"}" * 5000,  # deep nesting
        b"version_policy { latest { num_versions: 1 } }\n",  # not what the server runs (all)
    ],
    ids=["not-utf8", "twice", "scalar", "unbalanced", "deep", "other-policy"],
)
def test_what_cannot_be_edited_is_one_line_and_nothing_written(tmp_path: Path, text: bytes) -> None:
    why = plan(tmp_path, text)
    assert isinstance(why, str), why
    assert "\n" not in why and len(why) < 600, why
    assert (tmp_path / "m" / "config.pbtxt").read_bytes() == text


def test_a_bom_and_crlf_are_kept(tmp_path: Path) -> None:
    text = '\ufeffname: "m"\r\nversion_policy { all {} }\r\n'
    edit = plan(tmp_path, text)
    if isinstance(edit, durable.Edit):
        assert edit.after == f'\ufeffname: "m"\r\n{NEW}\r\n'
    else:
        assert "\n" not in edit

"""retire.run: the pipeline as a library call, without the CLI, against the real Prometheus lab."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from retire.config import Settings, resolve
from retire.errors import ConfigError
from retire.run import build_report
from tests import scenarios as sc
from tests.conftest import Lab


def _settings(lab: Lab, *extra: str) -> Settings:
    args = lab.args(sc.BASIC, *extra)
    flags: dict[str, object] = {
        k.lstrip("-").replace("-", "_"): v for k, v in zip(args[::2], args[1::2], strict=True)
    }
    flags["model_dir"] = [Path(str(flags["model_dir"]))]
    return resolve(flags, env={})


@pytest.mark.prometheus
def test_build_report_is_one_quiet_call(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(lab)
    said: list[str] = []
    report = build_report(settings, now=lab.end + 60, say=said.append)
    assert {(r.model, r.version): r.status.value for r in report.rows()} == sc.BASIC_EXPECTED
    assert report.header.generated_at == lab.end + 60  # the clock is the caller's
    assert capsys.readouterr() == ("", "") and said == []  # a library prints nothing
    verbose = dataclasses.replace(settings, verbose=True, insecure=True)
    build_report(verbose, now=lab.end + 60, say=said.append)
    assert said[0].startswith("WARNING: --insecure") and any(" queries in " in s for s in said)


def test_build_report_refuses_missing_sources_before_any_query() -> None:
    with pytest.raises(ConfigError, match="no Prometheus URL"):
        build_report(resolve({}, env={}), now=0.0)
    with pytest.raises(ConfigError, match="no model directory"):
        build_report(resolve({"prometheus": "http://127.0.0.1:1"}, env={}), now=0.0)


def test_the_model_base_path_note_quotes_the_model_name_as_promql() -> None:
    """Found by the attack on the new seams: the suggested --selector was built with the name
    between bare double quotes, so a name holding one gave a selector that does not parse."""
    from retire.run import _note_other_models
    from tests import builders as b

    name = 'a"b'
    settings = resolve({"model_base_path": "/m/x", "model_name": name}, env={})
    report = b.report(b.row(name, "1"), b.row("other", "2", on_disk=False, path=None))
    (note,) = _note_other_models(settings, report).header.notes
    assert """--selector 'model_name="a\\"b"'""" in note

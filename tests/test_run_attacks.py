"""retire.run.build_report called as a library with Settings built by hand, without
config.resolve (issue #15's attacks): odd numbers are refused as the CLI refuses them."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from retire.config import Settings
from retire.errors import ConfigError
from retire.run import build_report
from tests import hostile_servers as hs


@pytest.mark.parametrize(
    ("key", "value", "needle"),
    [
        ("threshold", math.nan, "--threshold"),  # every version was idle, busy ones included
        ("threshold", math.inf, "--threshold"),
        ("threshold", -1.0, "--threshold"),
        ("keep_latest", -1, "--keep-latest"),
        ("min_age", math.nan, "--min-age"),
        ("max_gap", math.nan, "--max-gap"),  # a traceback (ValueError) before
        ("max_gap", math.inf, "--max-gap"),
        ("window", math.nan, "--window"),
        ("step", math.nan, "--step"),
        ("step", 0.0, "--step"),
        ("timeout", math.nan, "--timeout"),
        ("smtp_port", 0, "--smtp-port"),
    ],
)
def test_library_settings_with_odd_numbers_are_refused(
    tmp_path: Path, key: str, value: object, needle: str
) -> None:
    (tmp_path / "m" / "1").mkdir(parents=True)
    with hs.serve(hs.normal) as url:
        settings = dataclasses.replace(Settings(prometheus=url, model_dir=(tmp_path,)), **{key: value})
        with pytest.raises(ConfigError, match=needle):
            build_report(settings, now=1_800_000_000.0)

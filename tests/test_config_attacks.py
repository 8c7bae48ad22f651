"""Hostile option values (issue #15's attacks on the option table): each is refused in one line
naming the option, or means what it says; none silently means something else."""

from __future__ import annotations

from pathlib import Path

import pytest

from retire import config
from retire.config import OPTIONS, resolve
from retire.errors import ConfigError

PATH_KEYS = [o.key for o in OPTIONS if o.parse in (config._path, config._paths)]


# A list is refused by its type for a single path, so `[""]` is tried only where lists are paths.
EMPTY_PATHS = [
    (key, value)
    for key in PATH_KEYS
    for value in ('""', '"  "', '[""]')
    if not value.startswith("[") or config.OPTION[key].parse is config._paths
]


@pytest.mark.parametrize(("key", "value"), EMPTY_PATHS)
def test_an_empty_path_in_the_config_file_is_refused_not_the_current_directory(
    tmp_path: Path, key: str, value: str
) -> None:
    """A templated config whose variable was unset (`model_dir = ["${MODEL_ROOT}"]`) gives "":
    read as a path it is `.`, and the working directory would be scanned, offloaded from or
    written to. An empty environment variable already means "not set"; here there is no unset."""
    cfg = tmp_path / "retire.toml"
    cfg.write_text(f"{key} = {value}\n")
    if key == "model_dir" and value == '""':  # `:`-separated text with no item: none given
        assert resolve({}, env={}, config=cfg).model_dir == ()
        return
    with pytest.raises(ConfigError, match=f"{key}: .*empty"):
        resolve({}, env={}, config=cfg)

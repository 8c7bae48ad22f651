"""TensorFlow Serving with the patched per-version call counter of the original write-up.

TF Serving reads a version directory's name with `safe_strto64` (surrounding white space,
digits, int64 range) and serves non-negative numbers: `00123/` is version 123. The counter is
created on a version's first call, so "no series" means "never called in the window" only where
the query reaches that server (README "How verdicts are made").
"""

from __future__ import annotations

from retire.servers import Server

INT64_MAX = 2**63 - 1
_SPACES = " \t\n\v\f\r"


def version_of(name: str) -> int | None:
    text = name.strip(_SPACES)
    if not text.isascii() or not text.isdigit():
        return None  # also refuses "-1": negative versions are not served
    number = int(text)
    return number if number <= INT64_MAX else None


def canonical(label: str) -> str:
    number = version_of(label)
    return str(number) if number is not None else label


def label_is_version(label: str) -> bool:
    return version_of(label) is not None


SERVER = Server(
    preset="tfserving-patched",
    metric=":tensorflow:serving:model_call_count",
    model_label="model_name",
    version_label="model_version",
    version_of=version_of,
    not_a_version="not a version directory (name is not a non-negative integer)",
    model_config=True,
    canonical=canonical,
    label_is_version=label_is_version,
)

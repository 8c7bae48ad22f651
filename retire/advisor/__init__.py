"""The advisor: the pure join of what is on disk with the traffic evidence, and the verdicts.

No I/O, no clock, no environment; see `verdicts` for the order of the rules, `report` for what it hands on.
"""

from retire.advisor.report import (
    Header,
    Policy,
    Report,
    Row,
    Status,
    Summary,
    fmt_calls,
    fmt_qps,
    human_bytes,
    iso,
)
from retire.advisor.verdicts import advise

__all__ = [
    "Header",
    "Policy",
    "Report",
    "Row",
    "Status",
    "Summary",
    "advise",
    "fmt_calls",
    "fmt_qps",
    "human_bytes",
    "iso",
]

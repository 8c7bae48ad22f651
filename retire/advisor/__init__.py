"""The advisor: the pure join of what is on disk with the traffic evidence, and the verdicts.

No I/O, no clock, no environment. `verdicts` holds advise() and the order of the rules; `join`
makes one row per version from the sources' columns; `facts` what the evidence says of each row;
`doubts` and `protections` are tables, one entry each; `wording` the reasons; `report` what it
hands on (the report model and the number formatting every renderer shares); `changes` what
changed since the previous report (`--since-last`); `plan` the offload plan model (which safe
version goes where; the checks on disk are `retire.actions`).
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

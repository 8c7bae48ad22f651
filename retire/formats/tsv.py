"""TSV, the safe list for shell loops: `model<TAB>version<TAB>path`, one safe version a line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from retire.escape import has_unsafe, printable
from retire.formats import SAFE_LIST, SCRIPTS, Format

if TYPE_CHECKING:
    from retire.advisor import Report


def _tsv_unfit(*fields: str) -> bool:
    """A tab or line break would split a line or a field; a backslash is undone by `read`
    without -r; other control characters mislead a terminal. TSV cannot carry such a name."""
    return any("\\" in f or has_unsafe(f) for f in fields)


def safe_tsv(report: Report) -> str:
    """`model<TAB>version<TAB>path`, one safe version a line, nothing else: for `while read`.

    A version whose model, version or path cannot be written as one TSV line is left out (never
    escaped: a script would act on the escaped, wrong path); `tsv_refused` says which, for stderr.
    """
    return "".join(
        f"{r.model}\t{r.version}\t{r.path}\n"
        for r in report.safe_rows()
        if not _tsv_unfit(r.model, r.version, str(r.path))
    )


def tsv_refused(report: Report) -> list[str]:
    """Why safe versions were left out of the TSV safe list, one sentence each."""
    return [
        f"not listed: {printable(r.model)} {printable(r.version)} ({printable(str(r.path))}) is safe, but "
        "its name holds a tab, line break, backslash or control character, which TSV cannot carry; "
        "use --format json"
        for r in report.safe_rows()
        if _tsv_unfit(r.model, r.version, str(r.path))
    ]


FORMAT = Format(
    name="tsv",
    audience=SCRIPTS,
    commands=(SAFE_LIST,),
    shape="model<TAB>version<TAB>path",
    safe_list=safe_tsv,
    left_out=tsv_refused,
)

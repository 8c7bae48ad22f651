"""How a table fits a terminal's width: which columns it shows and how wide, the sparkline
shortened without hiding a call, reasons cut at a word. Pure arithmetic on display cells; the
table format (table.py) draws what this decides."""

from __future__ import annotations

import math
from dataclasses import dataclass

GAP = 2  # spaces between columns
# On a terminal: MODEL, VERSION and STATUS always; then as many of these as fit, in this order,
# each at its full width (TRAFFIC may be shortened down to TRAFFIC_MIN points), with the reason
# keeping at least REASON_MIN cells. QPS and calls are also in the reason's words; CALLS comes
# before the sparkline, being what most often decides (at threshold 0, any call).
OPTIONAL = ("SIZE", "CALLS", "TRAFFIC", "BUSIEST QPS")
REASON_MIN = 30
TRAFFIC_MIN = 8


@dataclass(frozen=True)
class Layout:
    """Which columns a terminal shows and how wide each is, in display cells."""

    widths: dict[str, int]  # in display order; REASON last when shown
    traffic_points: int  # characters of sparkline (0 when TRAFFIC is left out)
    left_out: tuple[str, ...]
    fold: bool  # MODEL/VERSION/STATUS together are wider than the terminal: longest names fold

    @property
    def total(self) -> int:
        return sum(self.widths.values()) + GAP * (len(self.widths) - 1)


def fit(natural: dict[str, int], width: int) -> Layout:
    """Choose columns and widths for a terminal `width` cells wide from each column's natural
    width (its widest cell or header). Never wider than `width`.

    MODEL, VERSION and STATUS keep their natural width whenever the three fit side by side; only
    names longer than the terminal allows are folded (`Layout.fold`), and then the names are
    capped so that SIZE and a readable reason still fit beside them."""
    essential = {n: natural[n] for n in ("MODEL", "VERSION", "STATUS")}
    reason_natural = natural.get("REASON", 0)
    reason_min = min(reason_natural, REASON_MIN)
    room = width - GAP * 2
    fold = sum(essential.values()) > room
    if fold:
        rest = (reason_min + GAP if reason_natural else 0) + natural.get("SIZE", -GAP) + GAP
        budget = max(room // 3, room - rest)
        widths = {n: min(w, max(1, budget // 3)) for n, w in essential.items()}
        spare = budget - sum(widths.values())
        for n in ("STATUS", "VERSION", "MODEL"):  # statuses are short words: whole first
            grow = max(0, min(spare, essential[n] - widths[n]))
            widths[n] += grow
            spare -= grow
        essential = widths
    used = sum(essential.values()) + GAP * 2
    chosen = dict(essential)
    traffic_points = 0
    # a column added to COLUMNS later is shown when it fits, after the known ones
    extra = [n for n in natural if n not in (*OPTIONAL, *essential, "REASON")]
    for name in [*OPTIONAL, *extra]:
        if name not in natural:
            continue
        free = width - used - GAP - (reason_min + GAP if reason_natural else 0)
        want = natural[name]
        if name == "TRAFFIC":
            got = min(want, free) if free >= min(want, TRAFFIC_MIN) else 0
            traffic_points = got
        else:
            got = want if free >= want else 0
        if got:
            chosen[name] = got
            used += GAP + got
    if reason_natural and width - used - GAP >= min(reason_min, 8):
        chosen["REASON"] = min(reason_natural, width - used - GAP)
    widths = {n: chosen[n] for n in natural if n in chosen}  # in display order
    left_out = tuple(n for n in natural if n not in widths)
    return Layout(widths, traffic_points, left_out, fold=fold)


def shrink(points: tuple[float | None, ...], n: int) -> tuple[float | None, ...]:
    """`points` in `n` buckets, each its busiest point, so a shortened sparkline never hides a
    call: a bucket with any traffic shows traffic, `+Inf` and NaN are kept (they are doubts)."""
    if n >= len(points) or n <= 0:
        return points
    out: list[float | None] = []
    for i in range(n):
        bucket = points[i * len(points) // n : (i + 1) * len(points) // n]
        finite = [p for p in bucket if p is not None and math.isfinite(p)]
        odd = [p for p in bucket if p is not None and not math.isfinite(p)]
        if any(p == math.inf for p in odd):
            out.append(math.inf)
        elif finite:
            out.append(max(finite))
        elif odd:
            out.append(odd[0])
        else:
            out.append(None)
    return tuple(out)


def shorten(text: str, width: int) -> str:
    """`text` in at most `width` display cells, cut at a word boundary with `…` when it must be."""
    from rich.cells import cell_len, set_cell_size

    if cell_len(text) <= width:
        return text
    if width <= 1:
        return "…"[:width]
    head = set_cell_size(text, width - 1).rstrip()
    cut = head.rfind(" ")
    if cut >= width // 2:  # a word boundary that keeps most of the room
        head = head[:cut]
    return head.rstrip(" ;,(<>=≤≥") + "…"

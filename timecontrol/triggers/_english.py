"""Plain-English fragments shared by the `explain()` methods."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

WEEKDAYS_MON0 = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# Cron numbers weekdays from Sunday = 0; this table is indexed that way.
WEEKDAYS_SUN0 = ("Sunday", *WEEKDAYS_MON0[:6])
MONTHS = (
    "",
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
ORDINALS = ("", "first", "second", "third", "fourth", "fifth")


def join(items: Sequence[str], word: str = "and") -> str:
    """ "a", "a and b", "a, b and c"."""
    items = list(items)
    if not items:
        return ""
    if len(items) == 1:
        return items[0]
    return f"{', '.join(items[:-1])} {word} {items[-1]}"


def runs(values: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted ints as maximal runs of consecutive values: [1,2,3,7] → [(1,3),(7,7)]."""
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        if out and v == out[-1][1] + 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def compress(values: Sequence[int]) -> str:
    """ "0 to 5, 10 and 20 to 25"."""
    parts = []
    for a, b in runs(values):
        if a == b:
            parts.append(str(a))
        elif b == a + 1:
            parts.extend((str(a), str(b)))
        else:
            parts.append(f"{a} to {b}")
    return join(parts)


def progression(values: Sequence[int], size: int) -> tuple[int, int] | None:
    """`(first, step)` if `values` is every step-th value of a field of `size` values.

    Only steps that divide the field qualify: ``*/7`` minutes is not "every 7 minutes" (it
    jumps from :56 to :00), so it is spelled out instead.
    """
    vs = sorted(values)
    if len(vs) < 2:
        return None
    step = vs[1] - vs[0]
    if size % step or vs[0] >= step:
        return None
    if any(b - a != step for a, b in pairwise(vs)) or vs[-1] + step < size:
        return None
    return vs[0], step


def hms(seconds_of_day: int, *, with_seconds: bool = False) -> str:
    """ "09:30" or "09:30:15"."""
    h, rem = divmod(seconds_of_day, 3600)
    m, s = divmod(rem, 60)
    if with_seconds or s:
        return f"{h:02d}:{m:02d}:{s:02d}"
    return f"{h:02d}:{m:02d}"


def weekday_phrase(days_sun0: Sequence[int]) -> str:
    """A set of cron weekdays (Sunday = 0) in English: "Monday to Friday", "on Mondays"."""
    ds = sorted(set(days_sun0))
    if len(ds) == 7:
        return "every day"
    if len(ds) == 1:
        return f"on {WEEKDAYS_SUN0[ds[0]]}s"
    # Order from Monday so that "Saturday and Sunday" reads as one weekend run.
    mon0 = sorted((d - 1) % 7 for d in ds)
    rs = runs(mon0)
    if len(rs) == 1 and len(mon0) >= 3:
        return f"{WEEKDAYS_MON0[rs[0][0]]} to {WEEKDAYS_MON0[rs[0][1]]}"
    return f"on {join([WEEKDAYS_MON0[d] for d in mon0])}"


def month_phrase(months: Sequence[int]) -> str:
    """ "" for every month, "from March to May", "in January and July"."""
    ms = sorted(set(months))
    if len(ms) == 12:
        return ""
    rs = runs(ms)
    if len(rs) == 1 and len(ms) >= 3:
        return f"from {MONTHS[rs[0][0]]} to {MONTHS[rs[0][1]]}"
    return f"in {join([MONTHS[m] for m in ms])}"

"""Per-zone transition tables: classify a naive local time as regular, in a gap, or repeated.

`zoneinfo` answers "what is the offset of this local time" at about 1.3 µs a call, and telling
a gap from a repeated hour needs two such calls. Cron's next-fire budget is a few µs in total,
so instead each zone gets a small table per year: the UTC instants where its offset changes,
found once by sampling the zone every 12 hours and bisecting to the second. Classifying a
local time is then a few naive-datetime comparisons against at most a handful of entries.

Sampling every 12 hours is safe because no two offset changes in the IANA database (1900 on)
lie closer than three days (checked over all 599 zones of tzdata 2026); the bisection then
finds each change to the second, which is the database's own resolution.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import NamedTuple

from timecontrol.triggers._time import fixed_zone

__all__ = ["FOLD", "GAP", "REGULAR", "Transition", "ZoneRules", "rules_for"]

REGULAR = 0
GAP = 1
FOLD = 2

_SAMPLE = timedelta(hours=12)
_SECOND = timedelta(seconds=1)
# Offsets are read between these instants only: converting an instant within a day of
# datetime's ends to local time can leave its range (OverflowError). No zone changes its
# offset in the first or last days of the calendar, so the clamped answer is the true one.
_EARLIEST = datetime.min + timedelta(days=2)
_LATEST = datetime.max - timedelta(days=2)


class Transition(NamedTuple):
    """One offset change: at UTC instant `at` the offset goes from `before` to `after`.

    `lo`/`hi` bound the irregular local wall times it creates: for a gap (clocks forward)
    the times in ``[lo, hi)`` never happen; for a fold (clocks back) they happen twice.
    """

    lo: datetime
    hi: datetime
    at: datetime
    before: timedelta
    after: timedelta


class ZoneRules:
    """Transition lookups for one time zone (fixed-offset zones short-circuit)."""

    __slots__ = ("_fixed", "_years", "zone")

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._fixed: timedelta | None = zone.utcoffset(None) if isinstance(zone, timezone) else None
        self._years: dict[int, tuple[timedelta, tuple[Transition, ...]]] = {}

    @property
    def fixed_offset(self) -> timedelta | None:
        """The offset if the zone never changes it (UTC, "UTC+05:30"), else None."""
        return self._fixed

    def _offset_at(self, u: datetime) -> timedelta:
        u = min(max(u, _EARLIEST), _LATEST)
        off = u.replace(tzinfo=UTC).astimezone(self.zone).utcoffset()
        assert off is not None
        return off

    def table(self, year: int) -> tuple[timedelta, tuple[Transition, ...]]:
        """Offset at the start of a window around `year`, and the transitions inside it.

        The window runs from 30 December of the previous year to 3 January of the next (UTC),
        so it covers every local time of `year` in any zone (offsets stay within ±26 h).
        """
        cached = self._years.get(year)
        if cached is not None:
            return cached
        if self._fixed is not None:
            result: tuple[timedelta, tuple[Transition, ...]] = (self._fixed, ())
            self._years[year] = result
            return result
        start = datetime(year - 1, 12, 30) if year > 1 else _EARLIEST
        end = datetime(year + 1, 1, 3) if year < 9999 else _LATEST
        t = start
        off = self._offset_at(t)
        first = off
        found: list[Transition] = []
        while t < end:
            t2 = min(t + _SAMPLE, end)
            off2 = self._offset_at(t2)
            if off2 != off:
                lo_t, hi_t = t, t2  # offset(lo_t) == off, offset(hi_t) == off2
                while hi_t - lo_t > _SECOND:
                    mid = (lo_t + (hi_t - lo_t) // 2).replace(microsecond=0)
                    if mid <= lo_t:
                        mid = lo_t + _SECOND
                    if self._offset_at(mid) == off:
                        lo_t = mid
                    else:
                        hi_t = mid
                at = hi_t  # within [_EARLIEST, _LATEST]: its local bounds exist in datetime
                found.append(Transition(at + min(off, off2), at + max(off, off2), at, off, off2))
                off = off2
            t = t2
        result = (first, tuple(found))
        if len(self._years) > 4096:  # bounded memory for long-lived processes
            self._years.clear()
        self._years[year] = result
        return result

    def classify(self, local: datetime) -> tuple[int, timedelta, Transition | None]:
        """Classify naive local time `local` as REGULAR, GAP or FOLD.

        Returns `(kind, offset, transition)`: for REGULAR its offset and None; for GAP and
        FOLD the offset before the change and the `Transition` whose region holds `local`.
        """
        if self._fixed is not None:
            return REGULAR, self._fixed, None
        off, transitions = self.table(local.year)
        for tr in transitions:
            if local < tr.lo:
                break
            if local < tr.hi:
                return (GAP if tr.after > tr.before else FOLD), tr.before, tr
            off = tr.after
        return REGULAR, off, None

    def localize(self, u: datetime) -> datetime:
        """Naive-UTC instant `u` as local wall time with a fixed offset (see `_time`).

        Fire times always have a local time (they lie in the range of `_time`); an origin
        given by a caller may not (year 1 at UTC-05:00): that one is shown in UTC.
        """
        off, _ = self.offset_at(u)
        try:
            return (u + off).replace(tzinfo=fixed_zone(off))
        except OverflowError:
            return u.replace(tzinfo=UTC)

    def __deepcopy__(self, memo: dict[int, object]) -> ZoneRules:
        # Tables are caches of immutable facts: copies of a trigger share them.
        return self

    def offset_at(self, u: datetime) -> tuple[timedelta, Transition | None]:
        """UTC offset at naive-UTC instant `u`, and an offset change lying close to it.

        "Close" means within the size of that change: only then can a local time earlier than
        `u`'s own map to an instant later than `u` (see `_wallclock`).
        """
        if self._fixed is not None:
            return self._fixed, None
        off, transitions = self.table(u.year)
        near: Transition | None = None
        for tr in transitions:
            size = abs(tr.after - tr.before)
            if tr.at - size <= u <= tr.at + size:
                near = tr
            if u < tr.at:
                break
            off = tr.after
        return off, near


_RULES: dict[str, ZoneRules] = {}


def rules_for(spec: str, zone: tzinfo) -> ZoneRules:
    """The shared `ZoneRules` for a zone spec (tables are built once per process)."""
    rules = _RULES.get(spec)
    if rules is None:
        rules = ZoneRules(zone)
        _RULES[spec] = rules
    return rules

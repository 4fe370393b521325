"""Wall-clock triggers and their DST policy, shared by cron, calendar and local one-shot dates.

A wall-clock trigger names local times ("09:30 in Europe/Berlin"). Twice a year some local
times do not exist (spring forward) and some exist twice (fall back). The policy says what
happens then, for every wall-clock trigger alike:

* ``nonexistent="gap_end"`` (default): run **once, at the end of the gap** — the instant the
  clocks jump (03:00 CEST for 02:30 in Berlin). Several skipped times collapse into that one
  run. ``"shift"``: move the time forward by the gap length (02:30 → 03:30, the PEP 495 /
  JavaScript Temporal "compatible" reading). ``"skip"``: do not run.
* ``ambiguous="first"`` (default): run **once, at the first occurrence**. ``"last"``: once at
  the second. ``"both"``: at both occurrences.

Subclasses supply one method, `_next_local(t)`: the first matching naive local time strictly
after naive `t`. This module turns those candidates into instants.

Why the search is correct, and bounded:

* Among candidates that exist exactly once ("regular"), local order is instant order, and no
  later candidate of any kind maps to an earlier instant than a regular one (a shifted gap time
  lands *after* the gap; a repeated time's first occurrence lies before the fold ends). So
  candidates are scanned in local order and the first regular one past `after` ends the scan.
* The candidates inside one gap or fold ("region") are settled at once: within a region each
  policy maps wall times to instants with a single offset (or, for "gap_end", to one instant),
  so the first candidate past the threshold is the earliest. The scan then jumps to the
  region's end. However fine the trigger (a cron with seconds), a search touches at most one
  region and a few candidates around it.
* Only near an offset change, and only for policies that map a wall time to a *later* instant
  ("shift", "last", "both"), can a wall time earlier than `after`'s own still fire after it;
  there the scan starts at the region, no earlier than ``u + smallest offset``.
"""

from __future__ import annotations

from abc import abstractmethod
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from timecontrol.triggers._errors import TriggerError
from timecontrol.triggers._protocol import TriggerBase
from timecontrol.triggers._time import (
    LAST_INSTANT,
    ONE_US,
    fixed_zone,
    get_field,
    in_range,
    resolve_zone,
    search_from,
    shown,
    spec_error,
)
from timecontrol.triggers._zones import FOLD, GAP, Transition, rules_for

__all__ = [
    "AMBIGUOUS_POLICIES",
    "NONEXISTENT_POLICIES",
    "Ambiguous",
    "Nonexistent",
    "WallClockTrigger",
]

Nonexistent = Literal["gap_end", "shift", "skip"]
"""What a wall-clock trigger does with a local time that a DST change skips."""
Ambiguous = Literal["first", "last", "both"]
"""What a wall-clock trigger does with a local time that a DST change repeats."""
NONEXISTENT_POLICIES: tuple[str, ...] = ("gap_end", "shift", "skip")
AMBIGUOUS_POLICIES: tuple[str, ...] = ("first", "last", "both")


# Every instant of a wall time before this lies in the range (offsets stay below 24 h).
_SAFE_LOCAL = LAST_INSTANT - timedelta(days=1)


def _fire(c: datetime, off: timedelta) -> datetime | None:
    """Local wall time `c` at offset `off` as a fire time, or None past the range's end.

    (Candidates lie after the search start, which `search_from` keeps inside the range.)
    """
    try:
        if c - off > LAST_INSTANT:
            return None
    except OverflowError:  # an instant after year 9999 in UTC
        return None
    return c.replace(tzinfo=fixed_zone(off))


def _check_policy(nonexistent: object, ambiguous: object) -> tuple[Nonexistent, Ambiguous]:
    if nonexistent not in NONEXISTENT_POLICIES:
        raise TriggerError(
            f"nonexistent={shown(nonexistent)} is not a DST policy; accepted: "
            f"{', '.join(map(repr, NONEXISTENT_POLICIES))}"
        )
    if ambiguous not in AMBIGUOUS_POLICIES:
        raise TriggerError(
            f"ambiguous={shown(ambiguous)} is not a DST policy; accepted: "
            f"{', '.join(map(repr, AMBIGUOUS_POLICIES))}"
        )
    return cast(Nonexistent, nonexistent), cast(Ambiguous, ambiguous)


class WallClockTrigger(TriggerBase):
    """Base of every trigger that names local wall-clock times in a time zone."""

    def __init__(
        self,
        tz: object = "UTC",
        *,
        nonexistent: Nonexistent = "gap_end",
        ambiguous: Ambiguous = "first",
    ) -> None:
        self._tz_spec, self._zone = resolve_zone(tz)
        self._rules = rules_for(self._tz_spec, self._zone)
        self._nonexistent, self._ambiguous = _check_policy(nonexistent, ambiguous)
        # Only policies that map a wall time to a *later* instant need to look back.
        self._lookback = self._nonexistent == "shift" or self._ambiguous != "first"

    @property
    def tz(self) -> str:
        """The zone name as written to JSON ("Europe/Berlin", "UTC", "UTC+05:30")."""
        return self._tz_spec

    @abstractmethod
    def _next_local(self, t: datetime) -> datetime | None:
        """The first matching naive local time strictly after naive `t`, or None."""

    def next(self, after: datetime) -> datetime | None:
        """The first fire time strictly after `after`, as local time with a fixed offset."""
        u = search_from(after)
        if u is None:
            return None
        rules = self._rules
        off, near = rules.offset_at(u)
        local = u + off
        if rules.fixed_offset is not None:
            c = self._next_local(local)
            if c is not None and c < _SAFE_LOCAL:  # the common case, without a call
                return c.replace(tzinfo=fixed_zone(off))
            return None if c is None else _fire(c, off)

        cand = local
        if near is not None and self._lookback:
            # A candidate with wall time c maps to c - offset; it can be later than `after`
            # only if c > u + (smallest offset around), and only inside the change's region.
            early = max(near.lo - ONE_US, u + min(near.before, near.after))
            cand = min(cand, early)
        best: tuple[datetime, datetime, timedelta] | None = None
        while True:
            c = self._next_local(cand)
            if c is None:
                break
            kind, before, tr = rules.classify(c)
            if tr is None:
                if c <= local:
                    # A regular wall time not after `after`'s own never maps past it.
                    cand = local
                    continue
                if best is None:
                    if c < _SAFE_LOCAL:  # the common case, without a call
                        return c.replace(tzinfo=fixed_zone(before))
                    return _fire(c, before)
                fire = _fire(c, before)
                if fire is not None and c - before < best[0]:
                    return fire
                break
            for found in self._region(kind, c, u, tr):
                if best is None or found[0] < best[0]:
                    best = found
            cand = tr.hi - ONE_US  # the region is settled: go on from its end
        if best is None:
            return None
        return in_range(best[0], best[2])

    def _region(
        self, kind: int, c: datetime, u: datetime, tr: Transition
    ) -> list[tuple[datetime, datetime, timedelta]]:
        """Earliest instants past `u` from the candidates of one gap or fold, per the policy.

        `c` is the region's first candidate after the search start. Within a region, each
        policy maps wall times to instants with one fixed offset (or to one instant), so the
        first candidate past the threshold is that policy's earliest: no need to walk them all.
        Returns `(utc, local wall time, offset)` triples.
        """
        out: list[tuple[datetime, datetime, timedelta]] = []
        if kind == GAP:
            if self._nonexistent == "gap_end":
                if tr.at > u:
                    out.append((tr.at, tr.at + tr.after, tr.after))
            elif self._nonexistent == "shift":
                c2 = self._first_past(c, u, tr.before, tr)
                if c2 is not None:
                    shifted = c2 - tr.before
                    out.append((shifted, shifted + tr.after, tr.after))
            return out
        assert kind == FOLD
        offsets = {
            "first": (tr.before,),
            "last": (tr.after,),
            "both": (tr.before, tr.after),
        }[self._ambiguous]
        for o in offsets:
            c2 = self._first_past(c, u, o, tr)
            if c2 is not None:
                out.append((c2 - o, c2, o))
        return out

    def _first_past(
        self, c: datetime, u: datetime, offset: timedelta, tr: Transition
    ) -> datetime | None:
        """The first candidate ≥ `c` in `tr`'s region whose instant (c - offset) is after `u`."""
        c2 = c if c - offset > u else self._next_local(u + offset)
        return c2 if c2 is not None and c2 < tr.hi else None

    # ------------------------------------------------------------------ JSON / English helpers

    def _zone_json(self) -> dict[str, Any]:
        return {"tz": self._tz_spec, "nonexistent": self._nonexistent, "ambiguous": self._ambiguous}

    @staticmethod
    def _zone_kwargs(d: dict[str, Any], kind: str) -> dict[str, Any]:
        tz = get_field(d, "tz", kind)
        if not isinstance(tz, str):
            spec_error(kind, "tz", tz, "a time zone name")
        return {
            "tz": tz,
            "nonexistent": d.get("nonexistent", "gap_end"),
            "ambiguous": d.get("ambiguous", "first"),
        }

    def _zone_english(self) -> str:
        text = self._tz_spec
        notes = []
        if self._nonexistent == "shift":
            notes.append("times skipped by a DST change run shifted by the gap")
        elif self._nonexistent == "skip":
            notes.append("times skipped by a DST change do not run")
        if self._ambiguous == "last":
            notes.append("repeated times run at their second occurrence")
        elif self._ambiguous == "both":
            notes.append("repeated times run at both occurrences")
        if notes:
            text += f" ({'; '.join(notes)})"
        return text

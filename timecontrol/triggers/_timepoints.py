"""Time-point sequences: fire at offsets from a sequence start (the reaction-monitoring case).

"6 samples 60 s apart, then 10 samples 120 s apart" is ``timepoints.pairs((6, 60), (10, 120))``.

**A block's first point lies one spacing after the block's start**, and each block starts where
the previous one ended (at its last point). So ``pairs((6, 60), (10, 120))`` fires at
+60, +120, ..., +360 s, then +480, ..., +1560 s: 16 points over 26 minutes, and a block of
*n* × *s* always spans exactly *n·s*. This is how hein_control's sampling scheduler counts, and
it keeps every point strictly after the start, which is what `next(after)` yields when the
start is bound by the first call. Want a sample at the start itself? Add ``with_points(0)``
and give an explicit `start` (or call `next` with an instant before it).

The start is either given or bound by the first `next(after)` call (to `after`). Offsets are
seconds (int/float) or `timedelta`s, held as integer microseconds.

Running sequences change by *value*: ``with_points``, ``with_block`` and ``with_now`` return a
new `TimePoints` (hand it to the scheduler to replace the running one); its JSON lists every
block, inserted offset and manual point, so a persisted sequence resumes exactly.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

from timecontrol.triggers._errors import TimePointError
from timecontrol.triggers._protocol import TriggerBase
from timecontrol.triggers._time import (
    LAST_INSTANT,
    MAX_US,
    ONE_US,
    dt_from_json,
    dt_to_json,
    duration_us,
    format_duration,
    get_field,
    get_opt_dt,
    origin_from,
    require_instant,
    resolve_zone,
    search_from,
    shown,
    spec_error,
    us_from_json,
    us_to_json,
    utc_naive,
    zone_of,
)
from timecontrol.triggers._zones import ZoneRules, rules_for

__all__ = ["TimePoints", "timepoints"]

Duration = float | timedelta
Block = tuple[
    int, int, int
]  # (begin µs, count, spacing µs): points at begin + i·spacing, i=1..count


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise TimePointError(f"{where}: count={shown(value)} is not a whole number ≥ 1")
    return value


def _spacing(value: object, where: str) -> int:
    if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
        us = duration_us(
            value, f"{where}: spacing", TimePointError, allow_negative=True, allow_zero=True
        )
        if us < 0:
            raise TimePointError(
                f"{where}: spacing={shown(value)} is negative; spacings must be positive durations "
                f"(time points only move forward)"
            )
        if us == 0:
            raise TimePointError(
                f"{where}: spacing={shown(value)} is zero; spacings must be positive durations"
            )
        return us
    raise TimePointError(f"{where}: spacing={shown(value)} is not seconds or a timedelta")


def _offset(value: object, where: str) -> int:
    us = duration_us(value, where, TimePointError, allow_zero=True, allow_negative=True)
    if us < 0:
        raise TimePointError(
            f"{where}={shown(value)} is negative; offsets are measured forward from the start (≥ 0)"
        )
    return us


def _items(value: object, what: str) -> list[Any]:
    """The elements of an iterable argument (a list, a tuple, a generator ...)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise TimePointError(f"{what}={shown(value)} is not a list")
    return list(value)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _blocks_of(blocks: object) -> tuple[Block, ...]:
    """Validated `(begin µs, count, spacing µs)` blocks, each ending within `MAX_US`."""
    out: list[Block] = []
    for block in _items(blocks, "blocks"):
        if not (isinstance(block, (tuple, list)) and len(block) == 3 and all(map(_is_int, block))):
            raise TimePointError(
                f"block {shown(block)} is not a (begin µs, count, spacing µs) tuple of ints"
            )
        begin, count, spacing = block
        _count(count, "block")
        if begin < 0 or spacing <= 0 or begin + count * spacing > MAX_US:
            raise TimePointError(
                f"block (begin={shown(begin)} µs, count={shown(count)}, spacing={shown(spacing)}"
                f" µs) needs begin ≥ 0, spacing > 0, and its last point within 50 years of the "
                f"start"
            )
        out.append((begin, count, spacing))
    return tuple(out)


def _points_of(points: object) -> tuple[int, ...]:
    """Validated offsets in µs: ints from 0 to `MAX_US`, sorted, without duplicates."""
    values = _items(points, "points")
    for p in values:
        if not _is_int(p) or not 0 <= p <= MAX_US:
            raise TimePointError(
                f"offset {shown(p)} µs is not accepted; offsets are whole microseconds from 0 "
                f"to 50 years"
            )
    return tuple(sorted(set(values)))


class TimePoints(TriggerBase):
    """A sequence of time points: blocks of `count × spacing`, single offsets, manual instants.

    Build one with the `timepoints` helpers (`pairs`, `block`, `offsets`, `spacings`).
    """

    json_type = "timepoints"
    json_keys = frozenset({"type", "start", "tz", "blocks", "points", "manual"})

    def __init__(
        self,
        blocks: Iterable[Block] = (),
        points: Iterable[int] = (),
        manual: Iterable[datetime] = (),
        *,
        start: datetime | None = None,
        tz: object = None,
    ) -> None:
        # Low-level constructor (offsets in µs); prefer the `timepoints` helpers.
        self._blocks = _blocks_of(blocks)
        self._points = _points_of(points)
        given = [require_instant(m, "manual point") for m in _items(manual, "manual")]
        self._manual: tuple[datetime, ...] = tuple(sorted({utc_naive(m) for m in given}))
        self._start: datetime | None = None
        self._start_u: datetime | None = None
        self._tz_spec: str | None = None
        self._rules: ZoneRules | None = None
        if tz is not None:
            self._set_zone(*resolve_zone(tz))
        if start is not None:
            self._bind(require_instant(start, "start"))
        elif given and self._rules is None:
            self._set_zone(*zone_of(given[0]))

    # ------------------------------------------------------------------ state

    def _set_zone(self, spec: str, zone: Any) -> None:
        self._tz_spec = spec
        self._rules = rules_for(spec, zone)

    def _bind(self, start: datetime) -> None:
        self._start = start
        self._start_u = utc_naive(start)
        if self._rules is None:
            self._set_zone(*zone_of(start))

    def _copy(
        self,
        blocks: Iterable[Block] | None = None,
        points: Iterable[int] | None = None,
        manual: Iterable[datetime] | None = None,
    ) -> TimePoints:
        new = TimePoints(
            self._blocks if blocks is None else blocks,
            self._points if points is None else points,
            [m.replace(tzinfo=UTC) for m in self._manual] if manual is None else manual,
            start=self._start,
            tz=self._tz_spec,
        )
        return new

    @property
    def is_bound(self) -> bool:
        """False until a start is given or bound by the first `next()`."""
        return self._start is not None

    @property
    def start(self) -> datetime | None:
        """The sequence start (None until bound)."""
        return self._start

    def offsets(self) -> list[timedelta]:
        """Every relative point (blocks and inserted offsets), ascending, without duplicates.

        Manual points are absolute and not included. Expands blocks, so mind huge counts.
        """
        out = set(self._points)
        for begin, count, spacing in self._blocks:
            out.update(begin + i * spacing for i in range(1, count + 1))
        return [timedelta(microseconds=us) for us in sorted(out)]

    def _end_us(self) -> int:
        ends = [b + c * s for b, c, s in self._blocks] + list(self._points[-1:])
        return max(ends, default=0)

    # ------------------------------------------------------------------ inserting

    def with_points(self, *offsets: Duration) -> TimePoints:
        """A copy with extra single points at `offsets` from the start (seconds or timedelta)."""
        if not offsets:
            raise TimePointError("with_points() needs at least one offset")
        new = [_offset(o, f"offset #{i}") for i, o in enumerate(offsets)]
        return self._copy(points=self._points + tuple(new))

    def with_block(
        self,
        count: int,
        spacing: Duration,
        *,
        after: Duration | None = None,
        shift_subsequent: bool = False,
    ) -> TimePoints:
        """A copy with `count` points `spacing` apart, the first one spacing after `after`.

        `after` is an offset from the start; by default the end of the sequence (its last
        relative point), i.e. the block is appended. With ``shift_subsequent=True`` every
        relative point later than `after` moves later by ``count × spacing`` (inserting a
        pause-and-sample block into a running sequence); manual points never move.
        """
        n = _count(count, "with_block")
        sp = _spacing(spacing, "with_block")
        if not isinstance(shift_subsequent, bool):
            raise TimePointError(
                f"with_block: shift_subsequent={shown(shift_subsequent)} is not True or False"
            )
        at = self._end_us() if after is None else _offset(after, "with_block: after")
        blocks = list(self._blocks)
        points = list(self._points)
        if shift_subsequent:
            shift = n * sp
            blocks = []
            for begin, c, s in self._blocks:
                k = 0 if at < begin + s else min(c, (at - begin) // s)  # points ≤ at stay
                if k:
                    blocks.append((begin, k, s))
                if c - k:
                    blocks.append((begin + k * s + shift, c - k, s))
            points = [p + shift if p > at else p for p in points]
        blocks.append((at, n, sp))
        return self._copy(blocks=blocks, points=points)

    def with_now(self, now: datetime) -> TimePoints:
        """A copy with a manual point at instant `now` (the caller supplies the time)."""
        require_instant(now, "now")
        manual = [m.replace(tzinfo=UTC) for m in self._manual] + [now]
        return self._copy(manual=manual)

    # ------------------------------------------------------------------ Trigger

    def next(self, after: datetime) -> datetime | None:
        """The first point strictly after `after` (binds the start on the first call)."""
        u = search_from(after)
        if u is None:
            return None
        if self._start_u is None:
            self._bind(origin_from(after, u))
        start_u = self._start_u
        assert start_u is not None
        rel = (u - start_u) // ONE_US
        best: int | None = None
        for begin, count, spacing in self._blocks:
            i = 1 if rel < begin + spacing else (rel - begin) // spacing + 1
            if i <= count:
                cand = begin + i * spacing
                if best is None or cand < best:
                    best = cand
        j = bisect_right(self._points, rel)
        if j < len(self._points) and (best is None or self._points[j] < best):
            best = self._points[j]
        best_u: datetime | None = None
        # Compared before adding: past the range's end the sum may not exist.
        if best is not None and best <= (LAST_INSTANT - start_u) // ONE_US:
            best_u = start_u + timedelta(microseconds=best)
        k = bisect_right(self._manual, u)
        manual = self._manual[k] if k < len(self._manual) else None
        if manual is not None and manual <= LAST_INSTANT and (best_u is None or manual < best_u):
            best_u = manual
        if best_u is None:
            return None
        assert self._rules is not None
        return self._rules.localize(best_u)

    def to_json(self) -> dict[str, Any]:
        """Blocks as `[begin, count, spacing]` in seconds, inserted offsets, manual instants."""
        return {
            "type": "timepoints",
            "start": None if self._start is None else dt_to_json(self._start),
            "tz": self._tz_spec,
            "blocks": [[us_to_json(b), c, us_to_json(s)] for b, c, s in self._blocks],
            "points": [us_to_json(p) for p in self._points],
            "manual": [dt_to_json(m.replace(tzinfo=UTC)) for m in self._manual],
        }

    @classmethod
    def _from_json(cls, d: dict[str, Any]) -> TimePoints:
        kind = "timepoints"
        raw_blocks = get_field(d, "blocks", kind)
        raw_points = d.get("points", [])
        raw_manual = d.get("manual", [])
        if not isinstance(raw_blocks, list) or not all(
            isinstance(b, list) and len(b) == 3 for b in raw_blocks
        ):
            spec_error(kind, "blocks", raw_blocks, "a list of [begin, count, spacing] lists")
        if not isinstance(raw_points, list):
            spec_error(kind, "points", raw_points, "a list of offsets in seconds")
        if not isinstance(raw_manual, list):
            spec_error(kind, "manual", raw_manual, "a list of ISO date-time strings")
        blocks = []
        for b in raw_blocks:
            if isinstance(b[1], bool) or not isinstance(b[1], int):
                spec_error(kind, "blocks", b, "[begin seconds, integer count, spacing seconds]")
            blocks.append(
                (us_from_json(b[0], "blocks", kind), b[1], us_from_json(b[2], "blocks", kind))
            )
        tz = d.get("tz")
        if tz is not None and not isinstance(tz, str):
            spec_error(kind, "tz", tz, "a time zone name or null")
        return cls(
            blocks,
            [us_from_json(p, "points", kind) for p in raw_points],
            [dt_from_json(m, "manual", kind) for m in raw_manual],
            start=get_opt_dt(d, "start", kind),
            tz=tz,
        )

    def explain(self) -> str:
        """E.g. "6 points 1 minute apart, then 10 points 2 minutes apart (16 points over 26
        minutes) from the first call"."""
        parts: list[str] = []
        prev_end = 0
        total = len(self._points) + len(self._manual)
        for begin, count, spacing in self._blocks:
            what = f"{count} point{'s' if count != 1 else ''}"
            if count > 1:
                what += f" {format_duration(spacing)} apart"
            else:
                what += f" {format_duration(spacing)} after"
            if not parts:
                lead = "" if begin == 0 else f"from +{format_duration(begin)}: "
                parts.append(lead + what)
            elif begin == prev_end:
                parts.append(f"then {what}")
            else:
                parts.append(f"then from +{format_duration(begin)}: {what}" if begin else what)
            prev_end = begin + count * spacing
            total += count
        if self._points:
            n = len(self._points)
            parts.append(f"{n} single point{'s' if n != 1 else ''}")
        if self._manual:
            n = len(self._manual)
            parts.append(f"{n} manual point{'s' if n != 1 else ''}")
        body = ", ".join(parts) if parts else "no points"
        end = self._end_us()
        span = f" over {format_duration(end)}" if end else ""
        origin = (
            f"from {self._start.isoformat(sep=' ')}"
            if self._start is not None
            else "from the first call"
        )
        return f"{body} ({total} points{span}) {origin}"


class _TimePointsFactory:
    """Constructors for `TimePoints`: ``timepoints.pairs((6, 60), (10, 120))`` and friends."""

    def pairs(
        self,
        *pairs: tuple[int, Duration] | Sequence[tuple[int, Duration]],
        start: datetime | None = None,
        tz: object = None,
    ) -> TimePoints:
        """Consecutive blocks of ``(count, spacing)``; each starts where the previous ended.

        ``pairs((6, 60), (10, 120))`` or ``pairs([(6, 60), (10, 120)])``.
        """
        items: list[Any] = list(pairs)
        if (
            len(items) == 1
            and isinstance(items[0], (list, tuple))
            and items[0]
            and all(isinstance(p, (list, tuple)) for p in items[0])
        ):
            items = list(items[0])
        if not items:
            raise TimePointError("pairs() needs at least one (count, spacing) pair")
        blocks: list[Block] = []
        begin = 0
        for i, pair in enumerate(items):
            if not isinstance(pair, (list, tuple)) or len(pair) != 2:
                raise TimePointError(f"pair #{i} {shown(pair)} is not a (count, spacing) pair")
            n = _count(pair[0], f"pair #{i} {shown(tuple(pair))}")
            sp = _spacing(pair[1], f"pair #{i} {shown(tuple(pair))}")
            blocks.append((begin, n, sp))
            begin += n * sp
        return TimePoints(blocks, start=start, tz=tz)

    def block(
        self, count: int, spacing: Duration, *, start: datetime | None = None, tz: object = None
    ) -> TimePoints:
        """`count` points `spacing` apart, the first one spacing after the start."""
        return self.pairs((count, spacing), start=start, tz=tz)

    def offsets(
        self, offsets: Iterable[Duration], *, start: datetime | None = None, tz: object = None
    ) -> TimePoints:
        """Points at these offsets from the start; they must be ≥ 0 and strictly increasing."""
        values = [_offset(o, f"offsets[{i}]") for i, o in enumerate(_items(offsets, "offsets"))]
        if not values:
            raise TimePointError("offsets() needs at least one offset")
        for i, (a, b) in enumerate(pairwise(values)):
            if b <= a:
                raise TimePointError(
                    f"offsets[{i + 1}] ({us_to_json(b)} s) is not after offsets[{i}] "
                    f"({us_to_json(a)} s): a spacing of {us_to_json(b - a)} s; offsets must "
                    f"strictly increase (use spacings() for gaps between points)"
                )
        return TimePoints(points=values, start=start, tz=tz)

    def spacings(
        self, spacings: Iterable[Duration], *, start: datetime | None = None, tz: object = None
    ) -> TimePoints:
        """Points separated by these gaps, the first one the first gap after the start."""
        total = 0
        values = []
        for i, s in enumerate(_items(spacings, "spacings")):
            total += _spacing(s, f"spacings[{i}]")
            values.append(total)
        if not values:
            raise TimePointError("spacings() needs at least one spacing")
        return TimePoints(points=values, start=start, tz=tz)


timepoints = _TimePointsFactory()
"""Constructors for time-point sequences: `pairs`, `block`, `offsets`, `spacings`."""

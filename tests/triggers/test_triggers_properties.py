"""Hypothesis properties over every trigger family, and cron against independent references.

References: cronsim (a separate cron implementation; our cron parses with croniter and
evaluates on its own tables) and APScheduler 3's CronTrigger, for random expressions and
instants away from DST changes. DST behaviour gets its own oracle: daily triggers are checked
against a brute-force reading of `zoneinfo` for instants around real transitions.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from importlib.util import find_spec
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from triggers_strategies import (
    DST_ZONES,
    CronCase,
    afters,
    any_triggers,
    cron_cases,
    policies,
    utc,
    wallclock_triggers,
)

import timecontrol.triggers as T

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Instants around the real 2024-2026 transitions of the DST zones (UTC).
_TRANSITIONS = [
    datetime(2024, 3, 31, 1), datetime(2024, 10, 27, 1),
    datetime(2025, 3, 30, 1), datetime(2025, 10, 26, 1),
    datetime(2024, 3, 10, 7), datetime(2024, 11, 3, 6),
    datetime(2025, 3, 9, 7), datetime(2025, 11, 2, 6),
    datetime(2024, 4, 6, 15), datetime(2024, 10, 5, 15, 30),
    datetime(2025, 4, 5, 15), datetime(2025, 10, 4, 15, 30),
]  # fmt: skip
near_dst = st.builds(
    lambda t, s: (t + timedelta(seconds=s)).replace(tzinfo=UTC),
    st.sampled_from(_TRANSITIONS),
    st.integers(-6 * 3600, 6 * 3600),
)


def _bind(trigger: T.TriggerBase, after: datetime) -> None:
    """Bind lazily bound origins the way a scheduler would: one `next` call."""
    trigger.next(after)


# ----------------------------------------------------------------------------- generic properties


@PROPS
@given(trigger=any_triggers(), after=afters() | near_dst)
def test_fire_times_strictly_increase_and_are_aware(
    trigger: T.TriggerBase, after: datetime
) -> None:
    fires = trigger.preview(25, after)
    previous = after
    for f in fires:
        assert f.tzinfo is not None
        assert f.utcoffset() is not None
        assert f > previous
        previous = f


@PROPS
@given(trigger=wallclock_triggers(), after=near_dst | afters())
def test_wall_clock_fire_times_carry_the_zones_real_offset(
    trigger: T.TriggerBase, after: datetime
) -> None:
    assert isinstance(trigger, T.WallClockTrigger)
    zone = ZoneInfo(trigger.tz) if "/" in trigger.tz else UTC
    for f in trigger.preview(8, after):
        assert f.utcoffset() == f.astimezone(zone).utcoffset()
        assert f.replace(tzinfo=None) == f.astimezone(zone).replace(tzinfo=None)


@PROPS
@given(trigger=any_triggers(), after=near_dst | afters(), frac=st.floats(0, 1))
def test_no_fire_time_is_skipped(trigger: T.TriggerBase, after: datetime, frac: float) -> None:
    _bind(trigger, after)
    first = trigger.next(after)
    assume(first is not None)
    assert first is not None
    middle = after + (first - after) * frac
    if middle < first:
        assert trigger.next(middle) == first


@PROPS
@given(
    trigger=any_triggers(depth=0),
    start=afters(),
    length=st.integers(0, 200 * 86400),
    after=afters(),
)
def test_all_fire_times_lie_inside_the_window(
    trigger: T.TriggerBase, start: datetime, length: int, after: datetime
) -> None:
    end = start + timedelta(seconds=length)
    windowed = trigger.window(start=start, end=end)
    for f in windowed.preview(30, after):
        assert start <= f <= end


@PROPS
@given(
    trigger=any_triggers(depth=0),
    n=st.integers(1, 8),
    after=afters(),
    steps=st.lists(st.integers(0, 40 * 86400), max_size=30),
)
def test_at_most_max_executions(
    trigger: T.TriggerBase, n: int, after: datetime, steps: list[int]
) -> None:
    limited = trigger.limit(n)
    assert len(limited.preview(n + 10, after)) <= n
    # However the scheduler walks forward (including re-asking), at most n distinct times.
    seen: set[datetime] = set()
    t = after
    for s in steps:
        f = limited.next(t)
        if f is not None:
            seen.add(f)
        t = t + timedelta(seconds=s)
    assert len(seen) <= n


@PROPS
@given(trigger=any_triggers(), after=afters() | near_dst, bind=st.booleans())
def test_json_round_trip_gives_an_equal_trigger_with_equal_fire_times(
    trigger: T.TriggerBase, after: datetime, bind: bool
) -> None:
    if bind:
        _bind(trigger, after)
    spec = trigger.to_json()
    revived = T.trigger_from_json(json.loads(json.dumps(spec)))
    assert revived == trigger
    assert revived.to_json() == spec
    assert revived.preview(15, after) == trigger.preview(15, after)


# ----------------------------------------------------------------------------- cron references


def _away_from_dst(zone: str, after: datetime, *results: datetime) -> bool:
    """True when no offset change lies between `after` and the results, nor at a result."""
    if zone not in DST_ZONES:
        return True
    z = ZoneInfo(zone)
    last = max(results)
    same_offset = all(
        r.astimezone(z).utcoffset() == after.astimezone(z).utcoffset() for r in results
    )
    unambiguous = all(
        (loc := r.astimezone(z)).replace(fold=1 - loc.fold).utcoffset() == loc.utcoffset()
        for r in results
    )
    return (last - after) < timedelta(days=60) and same_offset and unambiguous


REF_ZONES = st.sampled_from(
    ["UTC", "UTC", "Asia/Kolkata", "Asia/Tokyo", "Europe/Berlin", "America/New_York"]
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(case=cron_cases(), zone=REF_ZONES, after=afters())
@pytest.mark.skipif(find_spec("cronsim") is None, reason="reference cronsim not installed")
def test_cron_agrees_with_cronsim(case: CronCase, zone: str, after: datetime) -> None:
    from cronsim import CronSim, CronSimError

    try:
        ours = T.cron(case.ours, zone)
    except T.CronSyntaxError as exc:
        problem = str(exc)
    else:
        problem = ""
    if problem:
        # The generator only writes valid syntax; the one acceptable refusal is "never fires".
        assert "never fires" in problem, problem
        return
    tz = ZoneInfo(zone) if zone != "UTC" else UTC
    start = after.astimezone(tz)
    try:
        ref = CronSim(case.cronsim, start)
        expected = [next(ref) for _ in range(3)]
    except (CronSimError, StopIteration):
        assume(False)
        return
    got = ours.preview(3, after)
    # Compared as UTC instants: `==` between a ZoneInfo datetime in a repeated hour and any
    # other zone's is always False (PEP 495), whatever the instants.
    if iso(got) != iso(expected):
        # Only a DST change between `after` and the results may explain a difference;
        # such cases are outside this comparison (DST has its own tests and oracle).
        assert not _away_from_dst(zone, after, *got, *expected), (iso(got), iso(expected))
        assume(False)


def iso(values: list[datetime]) -> list[str]:
    return [utc(v).isoformat() for v in values]


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(case=cron_cases(seconds=False), zone=REF_ZONES, after=afters())
@pytest.mark.skipif(find_spec("apscheduler") is None, reason="reference APScheduler missing")
def test_cron_agrees_with_apscheduler(case: CronCase, zone: str, after: datetime) -> None:
    from apscheduler.triggers.cron import CronTrigger

    assume(case.apscheduler is not None)
    assert case.apscheduler is not None
    try:
        ours = T.cron(case.ours, zone)
    except T.CronSyntaxError:
        assume(False)
        return
    tz = ZoneInfo(zone) if zone != "UTC" else UTC
    try:
        ref = CronTrigger.from_crontab(case.apscheduler, timezone=tz)
    except ValueError:  # e.g. APScheduler refuses a step longer than its range ("5-6/2")
        assume(False)
        return
    expected: list[datetime] = []
    t = after.astimezone(tz)
    for _ in range(3):
        nxt = ref.get_next_fire_time(t, t)
        if nxt is None:
            break
        expected.append(nxt)
        t = nxt
    got = ours.preview(len(expected), after)
    # Compared as UTC instants: `==` between a ZoneInfo datetime in a repeated hour and any
    # other zone's is always False (PEP 495), whatever the instants.
    if iso(got) != iso(expected):
        # Only a DST change between `after` and the results may explain a difference;
        # such cases are outside this comparison (DST has its own tests and oracle).
        assert not _away_from_dst(zone, after, *got, *expected), (iso(got), iso(expected))
        assume(False)


# ----------------------------------------------------------------------------- DST oracle


def _transition(zone: ZoneInfo, lo: datetime, hi: datetime) -> datetime:
    """The UTC instant in (lo, hi] where the offset changes (brute bisection on zoneinfo)."""
    off_lo = lo.astimezone(zone).utcoffset()
    lo_s, hi_s = int(lo.timestamp()), int(hi.timestamp())
    while hi_s - lo_s > 1:
        mid = (lo_s + hi_s) // 2
        if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == off_lo:
            lo_s = mid
        else:
            hi_s = mid
    return datetime.fromtimestamp(hi_s, UTC)


def _oracle(
    zone_name: str, times: list[time], day: date, nonexistent: str, ambiguous: str
) -> list[datetime]:
    """Fire instants of `daily(times)` on `day`, read straight from zoneinfo."""
    zone = ZoneInfo(zone_name)
    out: list[datetime] = []
    for t in times:
        first = datetime.combine(day, t, tzinfo=zone)
        second = first.replace(fold=1)
        real_first = first.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
        if real_first != first.replace(tzinfo=None):  # nonexistent wall time
            if nonexistent == "skip":
                continue
            if nonexistent == "shift":
                out.append(first.astimezone(UTC))  # fold=0 reads the pre-change offset
                continue
            lo = second.astimezone(UTC)  # fold=1: before the change
            hi = first.astimezone(UTC)
            out.append(_transition(zone, lo, hi))
        elif first.utcoffset() != second.utcoffset():  # repeated wall time
            if ambiguous in ("first", "both"):
                out.append(first.astimezone(UTC))
            if ambiguous in ("last", "both"):
                out.append(second.astimezone(UTC))
        else:
            out.append(first.astimezone(UTC))
    return out


@settings(max_examples=300, deadline=None)
@given(
    zone=st.sampled_from(DST_ZONES),
    when=st.sampled_from(_TRANSITIONS),
    times=st.lists(
        st.builds(time, st.integers(0, 4), st.integers(0, 59), st.sampled_from([0, 0, 30])),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    pol=policies,
)
def test_daily_matches_a_brute_force_zoneinfo_oracle_around_transitions(
    zone: str, when: datetime, times: list[time], pol: dict[str, str]
) -> None:
    trigger = T.daily(times, zone, **pol)  # type: ignore[arg-type]
    z = ZoneInfo(zone)
    first_day = (when - timedelta(days=2)).date()
    expected: set[datetime] = set()
    for k in range(5):
        expected.update(_oracle(zone, times, first_day + timedelta(days=k), **pol))
    start = datetime.combine(first_day, time(0), tzinfo=z).astimezone(UTC) - timedelta(seconds=1)
    end = datetime.combine(first_day + timedelta(days=4), time(23, 59, 59), tzinfo=z)
    got = [f for f in trigger.preview(40, start) if f <= end]
    assert iso(got) == iso(sorted(expected))


@pytest.mark.parametrize("zone", DST_ZONES)
def test_transition_tables_agree_with_zoneinfo_for_many_years(zone: str) -> None:
    """Every local quarter-hour of 1970-2037 transition days classifies like zoneinfo does."""
    from timecontrol.triggers._zones import FOLD, GAP, REGULAR, rules_for

    z = ZoneInfo(zone)
    rules = rules_for(zone, z)
    t = datetime(1970, 1, 1, tzinfo=UTC)
    checked = 0
    while t.year < 2038:
        t2 = t + timedelta(days=1)
        if t.astimezone(z).utcoffset() != t2.astimezone(z).utcoffset():
            local_day = t.astimezone(z).replace(tzinfo=None, hour=0, minute=0, second=0)
            for q in range(3 * 96):
                wall = local_day + timedelta(minutes=15 * q)
                a, b = wall.replace(tzinfo=z), wall.replace(tzinfo=z, fold=1)
                exists = a.astimezone(UTC).astimezone(z).replace(tzinfo=None) == wall
                if not exists:
                    want = GAP
                elif a.utcoffset() != b.utcoffset():
                    want = FOLD
                else:
                    want = REGULAR
                kind, offset, _tr = rules.classify(wall)
                assert kind == want, (zone, wall)
                if kind == REGULAR:
                    assert offset == a.utcoffset()
                checked += 1
        t = t2
    assert checked > 1000

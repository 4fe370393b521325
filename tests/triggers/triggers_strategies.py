"""Hypothesis strategies and helpers shared by the trigger tests (not a test module)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

import timecontrol.triggers as T

ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
DST_ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]

instants = st.datetimes(
    min_value=datetime(1995, 1, 1), max_value=datetime(2055, 1, 1), timezones=st.just(UTC)
)
# Instants expressed in assorted zones: triggers must not care how `after` is written.
after_zones = st.sampled_from([UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("Asia/Tokyo")])


@st.composite
def afters(draw: st.DrawFn) -> datetime:
    """An aware instant, shown in one of several zones."""
    return draw(instants).astimezone(draw(after_zones))


def utc(dt: datetime) -> datetime:
    """Naive UTC for printing and arithmetic in assertions."""
    return dt.astimezone(UTC).replace(tzinfo=None)


def at(zone: str, *args: int, fold: int = 0) -> datetime:
    """A ZoneInfo-aware datetime: at("Europe/Berlin", 2025, 3, 30, 1, 59)."""
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold)  # type: ignore[misc]


def iso_utc(values: list[datetime]) -> list[str]:
    """Fire times as UTC ISO strings: compact, exact assertions."""
    return [utc(v).isoformat() for v in values]


# ----------------------------------------------------------------------------- cron expressions


@dataclass(frozen=True)
class CronCase:
    """One random expression rendered in each library's dialect (None where unsupported)."""

    ours: str
    cronsim: str
    apscheduler: str | None  # None: uses syntax or semantics APScheduler 3 does not share


_DOW_NAMES = [*(d.lower() for d in calendar.day_abbr[6:] + calendar.day_abbr[:6]), "sun"]
_MON_NAMES = [m.lower() for m in calendar.month_abbr]


@st.composite
def _numeric_field(draw: st.DrawFn, lo: int, hi: int, *, star_ok: bool = True) -> str:
    kind = draw(st.sampled_from(["star", "step", "value", "range", "rangestep", "list"]))
    if kind == "star" and star_ok:
        return "*"
    if kind == "step":
        return f"*/{draw(st.integers(1, (hi - lo) // 2 + 1))}"
    if kind == "range":
        a = draw(st.integers(lo, hi))
        return f"{a}-{draw(st.integers(a, hi))}"
    if kind == "rangestep":
        # a < b: cronsim reads "5-5/3" as "5/3" (5, 8, 11, ...), Vixie cron as just 5.
        a = draw(st.integers(lo, hi - 1))
        b = draw(st.integers(a + 1, hi))
        return f"{a}-{b}/{draw(st.integers(1, b - a + 1))}"
    if kind == "list":
        values = draw(st.lists(st.integers(lo, hi), min_size=2, max_size=4, unique=True))
        return ",".join(map(str, values))
    return str(draw(st.integers(lo, hi)))


@st.composite
def cron_cases(draw: st.DrawFn, *, seconds: bool | None = None) -> CronCase:
    """Random cron expressions within the syntax both croniter and cronsim understand."""
    minute = draw(_numeric_field(0, 59))
    hour = draw(_numeric_field(0, 23))
    month_kind = draw(st.sampled_from(["numeric", "names"]))
    if month_kind == "names":
        a = draw(st.integers(1, 12))
        b = draw(st.integers(a, 12))
        month = f"{_MON_NAMES[a]}-{_MON_NAMES[b]}".upper()
    else:
        month = draw(_numeric_field(1, 12))
    aps_ok = True
    dom_kind = draw(st.sampled_from(["star", "star", "numeric", "L"]))
    if dom_kind == "star":
        dom = "*"
    elif dom_kind == "L":
        dom, aps_ok = "L", False
    else:
        dom = draw(_numeric_field(1, 31, star_ok=False))
    dow_kind = draw(st.sampled_from(["star", "star", "value", "range", "names", "nth", "last"]))
    ours_dow = sim_dow = aps_dow = "*"
    if dow_kind == "value":
        d = draw(st.integers(0, 7))
        ours_dow = sim_dow = str(d)
        aps_dow = _DOW_NAMES[d]
    elif dow_kind in ("range", "names"):
        a = draw(st.integers(1, 6))  # APScheduler 3 cannot express a range starting at Sunday
        b = draw(st.integers(a, 7))
        if dow_kind == "names":
            ours_dow = sim_dow = f"{_DOW_NAMES[a]}-{_DOW_NAMES[b] if b < 7 else 'sun'}".upper()
            if b == 7:  # SUN as a range end means 0 to cronsim; spell it 7 for both
                ours_dow = sim_dow = f"{_DOW_NAMES[a].upper()}-7"
        else:
            ours_dow = sim_dow = f"{a}-{b}"
        aps_dow = f"{_DOW_NAMES[a]}-{_DOW_NAMES[b]}"
    elif dow_kind == "nth":
        d, n = draw(st.integers(0, 6)), draw(st.integers(1, 5))
        ours_dow = sim_dow = f"{d}#{n}"
        aps_ok = False
    elif dow_kind == "last":
        d = draw(st.integers(0, 6))
        ours_dow, sim_dow = f"L{d}", f"{d}L"
        aps_ok = False
    # APScheduler ANDs the two day fields; Vixie cron ORs them when both are restricted.
    if dom != "*" and ours_dow != "*":
        aps_ok = False
    use_seconds = draw(st.booleans()) if seconds is None else seconds
    prefix = f"{draw(_numeric_field(0, 59))} " if use_seconds else ""
    ours = f"{prefix}{minute} {hour} {dom} {month} {ours_dow}"
    sim = f"{prefix}{minute} {hour} {dom} {month} {sim_dow}"
    aps = None if (not aps_ok or use_seconds) else f"{minute} {hour} {dom} {month} {aps_dow}"
    return CronCase(ours, sim, aps)


# ----------------------------------------------------------------------------- random triggers

policies = st.fixed_dictionaries(
    {
        "nonexistent": st.sampled_from(["gap_end", "shift", "skip"]),
        "ambiguous": st.sampled_from(["first", "last", "both"]),
    }
)
times_of_day = st.lists(
    st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45]), st.sampled_from([0, 0, 30])),
    min_size=1,
    max_size=3,
).map(lambda ts: [f"{h:02d}:{m:02d}:{s:02d}" for h, m, s in ts])


@st.composite
def wallclock_triggers(draw: st.DrawFn) -> T.TriggerBase:
    """A random cron/daily/weekly/monthly/local-date trigger in a random zone and policy."""
    zone = draw(st.sampled_from(ZONES))
    pol = draw(policies)
    kind = draw(st.sampled_from(["cron", "cron", "daily", "weekly", "monthly", "date"]))
    if kind == "cron":
        # Hourly-or-finer expressions exercise the DST gap and fold on every transition.
        expr = draw(
            st.sampled_from(
                [
                    "*/15 * * * *",
                    "30 2 * * *",
                    "0 * * * *",
                    "*/20 1-3 * * *",
                    "45 1 * * 0",
                    "0 0 L * *",
                    "15 2 * * 1-5",
                ]
            )
            | cron_cases(seconds=False).map(lambda c: c.ours)
        )
        try:
            return T.cron(expr, zone, **pol)
        except T.CronSyntaxError:
            return T.cron("*/15 * * * *", zone, **pol)
    if kind == "daily":
        return T.daily(draw(times_of_day), zone, **pol)
    if kind == "weekly":
        days = draw(
            st.lists(
                st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]),
                min_size=1,
                max_size=4,
            )
        )
        return T.weekly(days, draw(times_of_day), zone, **pol)
    if kind == "monthly":
        days = draw(
            st.lists(st.sampled_from([1, 15, 28, 29, 30, 31, "last"]), min_size=1, max_size=3)
        )
        missing = draw(st.sampled_from(["skip", "last"]))
        return T.monthly(days, draw(times_of_day), zone, missing_day=missing, **pol)  # type: ignore[arg-type]
    local = draw(st.datetimes(min_value=datetime(1995, 1, 1), max_value=datetime(2055, 1, 1)))
    return T.once(local.replace(microsecond=0), zone, **pol)


@st.composite
def absolute_triggers(draw: st.DrawFn) -> T.TriggerBase:
    """A random interval, time-point sequence or absolute one-shot trigger."""
    kind = draw(st.sampled_from(["interval", "timepoints", "offsets", "once"]))
    start = draw(st.none() | afters())
    if kind == "interval":
        every = draw(
            st.sampled_from([1, 59.5, 900, 3600, 86400, 7 * 86400]) | st.integers(1, 10**6)
        )
        return T.interval(every, anchor=start)
    if kind == "timepoints":
        pairs = draw(
            st.lists(st.tuples(st.integers(1, 20), st.integers(1, 7200)), min_size=1, max_size=4)
        )
        tp = T.timepoints.pairs(*pairs, start=start)
        if draw(st.booleans()):
            tp = tp.with_points(*draw(st.lists(st.integers(0, 100_000), min_size=1, max_size=3)))
        if draw(st.booleans()):
            tp = tp.with_block(
                draw(st.integers(1, 5)),
                draw(st.integers(1, 600)),
                after=draw(st.integers(0, 5000)),
                shift_subsequent=draw(st.booleans()),
            )
        return tp
    if kind == "offsets":
        offs = sorted(set(draw(st.lists(st.integers(0, 10**6), min_size=1, max_size=8))))
        return T.timepoints.offsets(offs, start=start)
    return T.once(draw(afters()))


@st.composite
def any_triggers(draw: st.DrawFn, depth: int = 1) -> T.TriggerBase:
    """Any trigger, possibly combined or wrapped."""
    base = draw(wallclock_triggers() | absolute_triggers())
    if depth <= 0:
        return base
    wrap = draw(
        st.sampled_from(["none", "none", "union", "intersection", "window", "limit", "jitter"])
    )
    if wrap == "union":
        return base | draw(any_triggers(depth=0))
    if wrap == "intersection":
        # A small search limit: random children often never coincide, and the default
        # (10,000 jumps per call) would only make that slower to discover.
        other = T.cron("*/30 * * * *", draw(st.sampled_from(ZONES)))
        return T.intersection(base, other, search_limit=200)
    if wrap == "window":
        a = draw(afters())
        b = a + timedelta(seconds=draw(st.integers(0, 400 * 86400)))
        return base.window(start=a if draw(st.booleans()) else None, end=b)
    if wrap == "limit":
        return base.limit(draw(st.integers(1, 12)), origin=draw(st.none() | afters()))
    return base.jitter(
        draw(st.sampled_from([0, 0.5, 30, 299])),
        seed=draw(st.integers(0, 2**40)),
        symmetric=draw(st.booleans()),
    )

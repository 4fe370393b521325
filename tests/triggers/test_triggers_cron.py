"""Cron triggers: syntax, strictness, month ends, and DST behaviour in three zones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from triggers_strategies import at, iso_utc

import timecontrol.triggers as T
from timecontrol._exceptions import NaiveDatetimeError, TimeControlError

BERLIN, NEW_YORK, LORD_HOWE = "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"


def local(values: list[datetime]) -> list[str]:
    """Fire times as local ISO strings with their offsets."""
    return [v.isoformat() for v in values]


def u(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


# ----------------------------------------------------------------------------- basics


def test_issue_example_next_preview_and_explain() -> None:
    t = T.cron("*/15 9-17 * * 1-5", tz=BERLIN)
    assert t.explain() == "every 15 minutes from 09:00 to 17:45, Monday to Friday, Europe/Berlin"
    # Monday 2025-01-06, 09:00 CET is 08:00 UTC: strictly after means 09:15 comes first.
    assert local(t.preview(3, u(2025, 1, 6, 8, 0))) == [
        "2025-01-06T09:15:00+01:00",
        "2025-01-06T09:30:00+01:00",
        "2025-01-06T09:45:00+01:00",
    ]
    # Friday 17:45 is the week's last; the next is Monday 09:00.
    assert local(t.preview(2, at(BERLIN, 2025, 1, 10, 17, 45))) == [
        "2025-01-13T09:00:00+01:00",
        "2025-01-13T09:15:00+01:00",
    ]


def test_next_is_strictly_after_even_with_microseconds() -> None:
    t = T.cron("* * * * *")
    assert t.next(u(2025, 1, 1, 0, 0)) == u(2025, 1, 1, 0, 1)
    assert t.next(u(2025, 1, 1, 0, 0, 0, 1)) == u(2025, 1, 1, 0, 1)
    assert t.next(u(2025, 1, 1, 0, 0, 59, 999_999)) == u(2025, 1, 1, 0, 1)


def test_fire_times_are_aware_with_the_zones_real_offset() -> None:
    t = T.cron("0 12 * * *", tz=NEW_YORK)
    for fire in t.preview(400, u(2025, 1, 1)):
        assert fire.utcoffset() == fire.astimezone(at(NEW_YORK, 2025, 1, 1).tzinfo).utcoffset()
        assert (fire.hour, fire.minute) == (12, 0)


@pytest.mark.parametrize(
    ("expr", "days"),
    [
        ("0 12 * * 0", ["2025-01-05", "2025-01-12"]),  # 0 = Sunday
        ("0 12 * * 7", ["2025-01-05", "2025-01-12"]),  # 7 = Sunday too
        ("0 12 * * SUN", ["2025-01-05", "2025-01-12"]),
        ("0 12 * * 7-7", ["2025-01-05", "2025-01-12"]),  # croniter alone reads this as "*"
        (
            "0 12 * * 1-5",
            ["2025-01-06", "2025-01-07", "2025-01-08", "2025-01-09", "2025-01-10", "2025-01-13"],
        ),
        (
            "0 12 * * mon-fri",
            ["2025-01-06", "2025-01-07", "2025-01-08", "2025-01-09", "2025-01-10", "2025-01-13"],
        ),
        ("0 12 * * MON-MON", ["2025-01-06", "2025-01-13"]),  # croniter alone: every day
        # 2025-01-04 is a Saturday.
        ("0 12 * * 5-7", ["2025-01-04", "2025-01-05", "2025-01-10", "2025-01-11"]),
        # Across the week's end: a list (a backwards range such as FRI-MON is refused).
        ("0 12 * * FRI-SAT,SUN-MON", ["2025-01-04", "2025-01-05", "2025-01-06", "2025-01-10"]),
        ("0 12 * * 1,3,5", ["2025-01-06", "2025-01-08", "2025-01-10", "2025-01-13"]),
        ("0 12 ? * MON", ["2025-01-06", "2025-01-13"]),
    ],
)
def test_weekday_numbering_is_crontabs(expr: str, days: list[str]) -> None:
    fires = T.cron(expr).preview(len(days), u(2025, 1, 4))
    assert [f.date().isoformat() for f in fires] == days


@pytest.mark.parametrize(
    ("expr", "after", "expected"),
    [
        ("5-5 * * * *", u(2025, 1, 1), ["00:05", "01:05", "02:05"]),  # not "every minute"
        ("0/20 * * * *", u(2025, 1, 1), ["00:20", "00:40", "01:00"]),
        ("10-30/10 * * * *", u(2025, 1, 1), ["00:10", "00:20", "00:30"]),
        ("0 */6 * * *", u(2025, 1, 1), ["06:00", "12:00", "18:00"]),
        ("0 22-23,0-2 * * *", u(2025, 1, 1), ["01:00", "02:00", "22:00"]),  # across midnight
        ("15,45 9 * * *", u(2025, 1, 1), ["09:15", "09:45", "09:15"]),
        ("@hourly", u(2025, 1, 1), ["01:00", "02:00", "03:00"]),
    ],
)
def test_minutes_and_hours(expr: str, after: datetime, expected: list[str]) -> None:
    fires = T.cron(expr).preview(3, after)
    assert [f.strftime("%H:%M") for f in fires] == expected


def test_six_fields_put_seconds_first() -> None:
    t = T.cron("*/20 * * * * *")
    assert [f.strftime("%M:%S") for f in t.preview(4, u(2025, 1, 1))] == [
        "00:20",
        "00:40",
        "01:00",
        "01:20",
    ]
    assert T.cron("30 0 9 * * *").next(u(2025, 1, 1)) == u(2025, 1, 1, 9, 0, 30)


@pytest.mark.parametrize(
    ("alias", "expected"),
    [
        ("@daily", ["2025-01-02T00:00", "2025-01-03T00:00"]),
        ("@midnight", ["2025-01-02T00:00", "2025-01-03T00:00"]),
        ("@weekly", ["2025-01-05T00:00", "2025-01-12T00:00"]),
        ("@monthly", ["2025-02-01T00:00", "2025-03-01T00:00"]),
        ("@yearly", ["2026-01-01T00:00", "2027-01-01T00:00"]),
        ("@annually", ["2026-01-01T00:00", "2027-01-01T00:00"]),
        ("@DAILY", ["2025-01-02T00:00", "2025-01-03T00:00"]),
    ],
)
def test_aliases(alias: str, expected: list[str]) -> None:
    fires = T.cron(alias).preview(2, u(2025, 1, 1, 12))
    assert [f.strftime("%Y-%m-%dT%H:%M") for f in fires] == expected


# ----------------------------------------------------------------------------- day rules


@pytest.mark.parametrize(
    ("expr", "after", "days"),
    [
        # L: the last day, whatever the month's length (2024 is a leap year).
        ("0 0 L * *", u(2024, 2, 1), ["2024-02-29", "2024-03-31", "2024-04-30"]),
        ("0 0 L 2 *", u(2025, 1, 1), ["2025-02-28", "2026-02-28", "2027-02-28", "2028-02-29"]),
        # The 31st only exists in seven months.
        (
            "0 0 31 * *",
            u(2025, 1, 31, 12),
            ["2025-03-31", "2025-05-31", "2025-07-31", "2025-08-31"],
        ),
        # February 29th: leap years only; 2100 is not one.
        ("0 0 29 2 *", u(2024, 3, 1), ["2028-02-29", "2032-02-29"]),
        ("0 0 29 2 *", u(2097, 1, 1), ["2104-02-29"]),
        # W: nearest weekday, never leaving the month.
        ("0 0 15W * *", u(2025, 3, 1), ["2025-03-14", "2025-04-15", "2025-05-15", "2025-06-16"]),
        ("0 0 1W * *", u(2025, 1, 31), ["2025-02-03", "2025-03-03"]),  # 1st is a Saturday
        ("0 0 31W * *", u(2025, 8, 1), ["2025-08-29", "2025-09-30"]),  # 31st is a Sunday; Sep
        # #: nth weekday of the month; L<d>: the last one.
        ("0 0 * * MON#2", u(2025, 1, 1), ["2025-01-13", "2025-02-10"]),
        ("0 0 * * 5#5", u(2025, 1, 1), ["2025-01-31", "2025-05-30", "2025-08-29", "2025-10-31"]),
        ("0 0 * * 0#1,0#3", u(2025, 1, 1), ["2025-01-05", "2025-01-19", "2025-02-02"]),
        ("0 0 * * L5", u(2025, 1, 1), ["2025-01-31", "2025-02-28"]),
        # Both day fields restricted: either matches (Vixie cron).
        (
            "0 0 13 * FRI",
            u(2025, 6, 1),
            [
                "2025-06-06",
                "2025-06-13",
                "2025-06-20",
                "2025-06-27",
                "2025-07-04",
                "2025-07-11",
                "2025-07-13",
            ],
        ),
        # A field starting with '*' makes it "both must match".
        ("0 0 */10 * FRI", u(2025, 1, 1), ["2025-01-31", "2025-02-21"]),
    ],
)
def test_day_rules(expr: str, after: datetime, days: list[str]) -> None:
    fires = T.cron(expr).preview(len(days), after)
    assert [f.date().isoformat() for f in fires] == days


def test_month_names_and_steps() -> None:
    fires = T.cron("0 0 1 JAN-MAR/2 *").preview(3, u(2025, 1, 1, 12))
    assert [f.date().isoformat() for f in fires] == ["2025-03-01", "2026-01-01", "2026-03-01"]


# ----------------------------------------------------------------------------- strictness


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("61 * * * *", "'61'"),
        ("* * * *", "4 fields"),
        ("* * * * * * *", "7 fields"),
        ("0 0 * * MON#9", "'MON#9'"),
        ("0 0 * * MON#0", "'MON#0'"),
        ("foo * * * *", "'foo'"),
        ("0 0 * * monday", "'monday'"),
        ("0 24 * * *", "'24'"),
        ("0 0 0 * *", "day-of-month"),
        ("0 0 * 13 *", "month field '13'"),
        ("0 0 * * 8", "'8'"),
        ("*/0 * * * *", "'*/0'"),
        ("1.5 * * * *", "'1.5'"),
        ("1,,2 * * * *", "'1,,2'"),
        ("R * * * *", "random"),  # croniter would silently pick a random minute
        ("H * * * *", "hashed"),
        ("0 0 LW * *", "'LW'"),
        ("0 0 * * 1#2,5", "'1#2,5'"),
        ("0 0 * * 7-2", "'7-2'"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("@reboot", "'@reboot'"),
        ("0\u00a00 * * *", "fields"),  # a no-break space is not a separator
        ("? * * * *", "minute"),
    ],
)
def test_bad_expressions_are_errors_naming_the_value(expr: str, needle: str) -> None:
    with pytest.raises(T.CronSyntaxError) as info:
        T.cron(expr)
    message = str(info.value)
    assert needle in message
    assert repr(expr) in message or "@reboot" in message
    assert isinstance(info.value, TimeControlError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("expr", "field", "term"),
    [
        ("30-10 * * * * *", "second", "'30-10'"),
        ("10-5 * * * *", "minute", "'10-5'"),
        ("10-5/2 * * * *", "minute", "'10-5/2'"),
        ("1-5,9-3 * * * *", "minute", "'9-3'"),
        ("0 20-4 * * *", "hour", "'20-4'"),
        ("0 0 20-5 * *", "day-of-month", "'20-5'"),
        ("0 0 1 11-2 *", "month", "'11-2'"),
        ("0 0 1 NOV-FEB *", "month", "'NOV-FEB'"),
        ("0 0 * * 6-2", "day-of-week", "'6-2'"),
        ("0 0 * * FRI-MON", "day-of-week", "'FRI-MON'"),
        ("0 0 * * SAT-SUN", "day-of-week", "'SAT-SUN'"),  # SUN is 0; write SAT-7 or 6,0
    ],
)
def test_ranges_that_run_backwards_are_refused(expr: str, field: str, term: str) -> None:
    from croniter import croniter

    # croniter alone accepts them, wrapping round (10-5 = 10-59,0-5): crontab(5) does not.
    croniter.expand(expr, second_at_beginning=len(expr.split()) == 6)
    with pytest.raises(T.CronSyntaxError) as info:
        T.cron(expr)
    message = str(info.value)
    assert f"{field} field" in message
    assert term in message
    assert "low-high" in message
    assert repr(expr) in message


@pytest.mark.parametrize(
    ("expr", "hint"),
    [
        ("10-5 * * * *", "'10-59,0-5'"),
        ("0 20-4 * * *", "'20-23,0-4'"),
        ("0 0 * * 6-2", "'6,0-2'"),
        ("0 0 * * FRI-SUN", "'5-7'"),
    ],
)
def test_backwards_ranges_suggest_the_list_that_wraps_round(expr: str, hint: str) -> None:
    with pytest.raises(T.CronSyntaxError, match=hint):
        T.cron(expr)


def test_the_suggested_lists_mean_what_the_backwards_ranges_were_meant_to() -> None:
    hours = T.cron("0 20-23,0-4 * * *").preview(9, u(2025, 1, 1, 12))
    assert [f.hour for f in hours] == [20, 21, 22, 23, 0, 1, 2, 3, 4]
    days = T.cron("0 0 * * 5-7").preview(3, u(2025, 1, 1))  # Friday to Sunday
    assert [f.strftime("%a") for f in days] == ["Fri", "Sat", "Sun"]


def test_non_string_expression() -> None:
    with pytest.raises(T.CronSyntaxError, match="not a string"):
        T.cron(15)  # type: ignore[arg-type]


def test_unknown_zone_and_bad_policies() -> None:
    with pytest.raises(T.UnknownTimeZoneError, match="Europe/Berln"):
        T.cron("* * * * *", tz="Europe/Berln")
    with pytest.raises(T.UnknownTimeZoneError, match="not a time zone"):
        T.cron("* * * * *", tz=3)
    with pytest.raises(T.UnknownTimeZoneError, match="UTC\\+25:00"):
        T.cron("* * * * *", tz="UTC+25:00")
    with pytest.raises(T.TriggerError, match="'later'"):
        T.cron("* * * * *", nonexistent="later")  # type: ignore[arg-type]
    with pytest.raises(T.TriggerError, match="'twice'"):
        T.cron("* * * * *", ambiguous="twice")  # type: ignore[arg-type]


def test_naive_after_is_refused() -> None:
    with pytest.raises(NaiveDatetimeError, match="naive"):
        T.cron("* * * * *").next(datetime(2025, 1, 1))
    with pytest.raises(NaiveDatetimeError):
        T.cron("* * * * *", tz=BERLIN).preview(3, datetime(2025, 1, 1))


def test_fixed_offset_zone_and_zoneinfo_objects() -> None:
    t = T.cron("30 9 * * *", tz="UTC+05:30")
    assert t.next(u(2025, 1, 1)).isoformat() == "2025-01-01T09:30:00+05:30"
    z = at(BERLIN, 2025, 1, 1).tzinfo
    assert T.cron("0 9 * * *", tz=z).tz == BERLIN


# ----------------------------------------------------------------------------- DST


class TestBerlin:
    """Europe/Berlin 2025: 02:00→03:00 on 30 March, 03:00→02:00 on 26 October (01:00 UTC)."""

    def test_spring_forward_every_15_minutes(self) -> None:
        fires = T.cron("*/15 * * * *", BERLIN).preview(4, u(2025, 3, 30, 0, 40))
        # 02:00-02:45 do not exist: they run once, at 03:00 CEST (the end of the gap).
        assert local(fires) == [
            "2025-03-30T01:45:00+01:00",
            "2025-03-30T03:00:00+02:00",
            "2025-03-30T03:15:00+02:00",
            "2025-03-30T03:30:00+02:00",
        ]

    @pytest.mark.parametrize(
        ("policy", "expected"),
        [
            ("gap_end", ["2025-03-30T03:00:00+02:00", "2025-03-31T02:30:00+02:00"]),
            ("shift", ["2025-03-30T03:30:00+02:00", "2025-03-31T02:30:00+02:00"]),
            ("skip", ["2025-03-31T02:30:00+02:00", "2025-04-01T02:30:00+02:00"]),
        ],
    )
    def test_spring_forward_daily_job_in_the_gap(self, policy: str, expected: list[str]) -> None:
        t = T.cron("30 2 * * *", BERLIN, nonexistent=policy)  # type: ignore[arg-type]
        assert local(t.preview(2, u(2025, 3, 29, 12))) == expected

    def test_shift_policy_from_inside_the_shifted_hour(self) -> None:
        # 03:10 CEST: the shifted 02:30 (= 03:30 CEST) still lies ahead.
        t = T.cron("30 2 * * *", BERLIN, nonexistent="shift")
        assert t.next(u(2025, 3, 30, 1, 10)).isoformat() == "2025-03-30T03:30:00+02:00"

    @pytest.mark.parametrize(
        ("policy", "expected_utc"),
        [
            ("first", ["2025-10-26T00:30:00", "2025-10-27T01:30:00"]),
            ("last", ["2025-10-26T01:30:00", "2025-10-27T01:30:00"]),
            ("both", ["2025-10-26T00:30:00", "2025-10-26T01:30:00", "2025-10-27T01:30:00"]),
        ],
    )
    def test_fall_back_daily_job_in_the_repeated_hour(
        self, policy: str, expected_utc: list[str]
    ) -> None:
        t = T.cron("30 2 * * *", BERLIN, ambiguous=policy)  # type: ignore[arg-type]
        assert iso_utc(t.preview(len(expected_utc), u(2025, 10, 25, 12))) == expected_utc

    def test_fall_back_every_15_minutes_first_occurrence_only(self) -> None:
        fires = T.cron("*/15 * * * *", BERLIN).preview(5, u(2025, 10, 26, 0, 10))
        assert local(fires) == [
            "2025-10-26T02:15:00+02:00",
            "2025-10-26T02:30:00+02:00",
            "2025-10-26T02:45:00+02:00",
            "2025-10-26T03:00:00+01:00",
            "2025-10-26T03:15:00+01:00",
        ]

    def test_fall_back_every_15_minutes_both_occurrences(self) -> None:
        t = T.cron("*/15 * * * *", BERLIN, ambiguous="both")
        fires = t.preview(10, u(2025, 10, 26, 0, 10))
        assert (
            iso_utc(fires)
            == [f"2025-10-26T{h:02d}:{m:02d}:00" for h in (0, 1, 2) for m in (0, 15, 30, 45)][1:11]
        )
        # Starting from inside the first occurrence still finds the whole second one.
        assert iso_utc([t.next(u(2025, 10, 26, 0, 50))]) == ["2025-10-26T01:00:00"]

    def test_fall_back_from_inside_the_second_occurrence(self) -> None:
        after = u(2025, 10, 26, 1, 20)  # 02:20 CET, the second 02:20 of the night
        assert T.cron("*/15 * * * *", BERLIN).next(after).isoformat() == (
            "2025-10-26T03:00:00+01:00"  # "first": the second 02:30 is skipped
        )
        assert T.cron("*/15 * * * *", BERLIN, ambiguous="last").next(after).isoformat() == (
            "2025-10-26T02:30:00+01:00"
        )


class TestNewYork:
    """America/New_York 2025: 02:00→03:00 on 9 March (07:00 UTC), 02:00→01:00 on 2 November."""

    def test_spring_forward(self) -> None:
        fires = T.cron("*/30 * * * *", NEW_YORK).preview(3, u(2025, 3, 9, 6, 40))
        assert local(fires) == [
            "2025-03-09T03:00:00-04:00",
            "2025-03-09T03:30:00-04:00",
            "2025-03-09T04:00:00-04:00",
        ]
        daily = T.cron("30 2 * * *", NEW_YORK).preview(2, u(2025, 3, 8, 12))
        assert local(daily) == ["2025-03-09T03:00:00-04:00", "2025-03-10T02:30:00-04:00"]

    @pytest.mark.parametrize(
        ("policy", "expected"),
        [
            ("first", ["2025-11-02T01:30:00-04:00", "2025-11-03T01:30:00-05:00"]),
            ("last", ["2025-11-02T01:30:00-05:00", "2025-11-03T01:30:00-05:00"]),
            ("both", ["2025-11-02T01:30:00-04:00", "2025-11-02T01:30:00-05:00"]),
        ],
    )
    def test_fall_back(self, policy: str, expected: list[str]) -> None:
        t = T.cron("30 1 * * *", NEW_YORK, ambiguous=policy)  # type: ignore[arg-type]
        assert local(t.preview(2, u(2025, 11, 1, 12))) == expected


class TestLordHowe:
    """Australia/Lord_Howe shifts by 30 minutes: +10:30 ↔ +11:00."""

    def test_spring_forward_half_hour_gap(self) -> None:
        # 2025-10-05: 02:00 → 02:30 local (15:30 UTC on the 4th).
        fires = T.cron("*/10 * * * *", LORD_HOWE).preview(3, u(2025, 10, 4, 15, 15))
        assert local(fires) == [
            "2025-10-05T01:50:00+10:30",
            "2025-10-05T02:30:00+11:00",  # 02:00, 02:10, 02:20 collapse into the gap's end
            "2025-10-05T02:40:00+11:00",
        ]
        shifted = T.cron("15 2 * * *", LORD_HOWE, nonexistent="shift")
        assert shifted.next(u(2025, 10, 4)).isoformat() == "2025-10-05T02:45:00+11:00"

    def test_fall_back_half_hour_fold(self) -> None:
        # 2025-04-06: 02:00 → 01:30 local (15:00 UTC on the 5th); 01:30-01:59 happen twice.
        first = T.cron("45 1 * * *", LORD_HOWE).preview(2, u(2025, 4, 5))
        assert local(first) == ["2025-04-06T01:45:00+11:00", "2025-04-07T01:45:00+10:30"]
        last = T.cron("45 1 * * *", LORD_HOWE, ambiguous="last").next(u(2025, 4, 5))
        assert last.isoformat() == "2025-04-06T01:45:00+10:30"


def test_json_round_trip() -> None:
    t = T.cron("*/15 9-17 * * 1-5", BERLIN, nonexistent="skip", ambiguous="both")
    d = t.to_json()
    assert d == {
        "type": "cron",
        "expr": "*/15 9-17 * * 1-5",
        "tz": BERLIN,
        "nonexistent": "skip",
        "ambiguous": "both",
    }
    back = T.trigger_from_json(d)
    assert back == t
    assert back != T.cron("*/15 9-17 * * 1-5", BERLIN)
    assert "every 15 minutes" in repr(t)


@pytest.mark.parametrize(
    ("expr", "text"),
    [
        ("0 9 * * *", "at 09:00, UTC"),
        ("30 2 * * *", "at 02:30, UTC"),
        ("*/5 * * * *", "every 5 minutes, UTC"),
        ("0 * * * *", "every hour, on the hour, UTC"),
        ("0 9-17 * * *", "every hour from 09:00 to 17:00, UTC"),
        ("0 0 L * *", "at 00:00, on the last day of the month, UTC"),
        ("0 0 15W * *", "at 00:00, on the weekday nearest day 15 of the month, UTC"),
        ("0 0 * * MON#2", "at 00:00, on the second Monday of the month, UTC"),
        ("0 0 * * L5", "at 00:00, on the last Friday of the month, UTC"),
        ("0 0 13 * FRI", "at 00:00, on day 13 of the month or on Fridays, UTC"),
        ("0 0 1 1 *", "at 00:00, on day 1 of the month, in January, UTC"),
        ("*/10 * * * * *", "every 10 seconds, UTC"),
        ("0 8 * 3-5 SAT,SUN", "at 08:00, on Saturday and Sunday, from March to May, UTC"),
    ],
)
def test_explain(expr: str, text: str) -> None:
    assert T.cron(expr).explain() == text


def test_explain_mentions_non_default_dst_policies() -> None:
    text = T.cron("30 2 * * *", BERLIN, nonexistent="skip", ambiguous="both").explain()
    assert text == (
        "at 02:30, Europe/Berlin (times skipped by a DST change do not run; repeated times "
        "run at both occurrences)"
    )


@pytest.mark.parametrize("ambiguous", ["first", "last", "both"])
@pytest.mark.parametrize("nonexistent", ["gap_end", "shift", "skip"])
def test_every_second_across_both_changes_is_right_and_bounded(
    nonexistent: str, ambiguous: str
) -> None:
    """A cron with seconds walks a whole DST night; each search stays a few steps long."""
    t = T.cron("* * * * * *", BERLIN, nonexistent=nonexistent, ambiguous=ambiguous)  # type: ignore[arg-type]
    calls = 0
    inner = t._next_local

    def counting(x: datetime) -> datetime | None:
        nonlocal calls
        calls += 1
        return inner(x)

    t._next_local = counting  # type: ignore[method-assign]
    for begin in (u(2025, 3, 30, 0, 30), u(2025, 10, 26, 0, 0)):
        fires, worst, f = [], 0, begin
        while f < begin + timedelta(hours=2):
            calls = 0
            f = t.next(f)  # type: ignore[assignment]
            worst = max(worst, calls)
            fires.append(f)
        assert worst <= 4
        assert all(a < b for a, b in pairwise(fires))
        # Which real seconds after `begin` fired (as offsets 1 ... 7199)?
        real = [int((x - begin).total_seconds()) for x in fires if x < begin + timedelta(hours=2)]
        assert len(real) == len(set(real))
        if begin.month == 3:
            # Every real second has a local time: all fire, whatever the policy ("shift" maps
            # 02:xx onto 03:xx and "gap_end" onto 03:00, seconds that fire anyway).
            assert real == list(range(1, 7200))
        elif ambiguous == "first":  # 02:xx CEST fires, 02:xx CET (01:00-02:00 UTC) is silent
            assert real == list(range(1, 3600))
        elif ambiguous == "last":
            assert real == list(range(3600, 7200))
        else:
            assert real == list(range(1, 7200))


_TOKENS = st.sampled_from(
    ["*", "*/5", "1-5", "5-1", "L", "15W", "W", "LW", "MON#2", "L5", "5L", "?", "jan-mar",
     "sun", "7", "0", "60", "1,2", "1-5/2", "/", "-", ",", "#", "@daily", "H", "R", "H(0-5)",
     "mon-sun", "7-0", "31", "1-L", "L-2", "x", "1/0", "0/7", "sat-mon", "2#5,3#1"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(expr=st.lists(_TOKENS, min_size=1, max_size=7).map(" ".join) | st.text(max_size=20))
def test_any_text_either_parses_and_fires_or_is_a_clean_syntax_error(expr: str) -> None:
    try:
        t = T.cron(expr)
    except T.CronSyntaxError as exc:
        message = str(exc)
    else:
        message = ""
        assert t.preview(3, u(2025, 1, 1)), expr  # "never fires" is caught at construction
    assert "Traceback" not in message
    assert not message or repr(expr) in message

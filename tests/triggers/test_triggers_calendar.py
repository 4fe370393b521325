"""Daily, weekly and monthly triggers: weekdays, month ends, missing days and DST."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
from triggers_strategies import at

import timecontrol.triggers as T

BERLIN, NEW_YORK, LORD_HOWE = "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"


def u(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(values: list[datetime]) -> list[str]:
    return [v.isoformat() for v in values]


def days(values: list[datetime]) -> list[str]:
    return [v.date().isoformat() for v in values]


def test_daily_several_times() -> None:
    t = T.daily(["17:30", "09:00"], tz=BERLIN)
    assert local(t.preview(3, u(2025, 1, 6))) == [
        "2025-01-06T09:00:00+01:00",
        "2025-01-06T17:30:00+01:00",
        "2025-01-07T09:00:00+01:00",
    ]
    assert t.explain() == "daily at 09:00 and 17:30, Europe/Berlin"


def test_daily_accepts_time_objects_and_seconds() -> None:
    t = T.daily([time(6, 0, 30), "18:00:15"])
    assert local(t.preview(2, u(2025, 1, 1))) == [
        "2025-01-01T06:00:30+00:00",
        "2025-01-01T18:00:15+00:00",
    ]


class TestDailyDst:
    def test_berlin_spring_forward_runs_at_gap_end(self) -> None:
        t = T.daily("02:30", BERLIN)
        assert local(t.preview(2, u(2025, 3, 29, 12))) == [
            "2025-03-30T03:00:00+02:00",
            "2025-03-31T02:30:00+02:00",
        ]

    def test_berlin_fall_back_runs_once_at_first_occurrence(self) -> None:
        t = T.daily("02:30", BERLIN)
        assert local(t.preview(2, u(2025, 10, 25, 12))) == [
            "2025-10-26T02:30:00+02:00",
            "2025-10-27T02:30:00+01:00",
        ]
        both = T.daily("02:30", BERLIN, ambiguous="both")
        assert local(both.preview(2, u(2025, 10, 25, 12))) == [
            "2025-10-26T02:30:00+02:00",
            "2025-10-26T02:30:00+01:00",
        ]

    def test_new_york_spring_and_fall(self) -> None:
        assert local(T.daily("02:30", NEW_YORK).preview(2, u(2025, 3, 8, 12))) == [
            "2025-03-09T03:00:00-04:00",
            "2025-03-10T02:30:00-04:00",
        ]
        assert local(T.daily("01:30", NEW_YORK).preview(2, u(2025, 11, 1, 12))) == [
            "2025-11-02T01:30:00-04:00",
            "2025-11-03T01:30:00-05:00",
        ]
        last = T.daily("01:30", NEW_YORK, ambiguous="last")
        assert last.next(u(2025, 11, 1, 12)).isoformat() == "2025-11-02T01:30:00-05:00"

    def test_lord_howe_half_hour(self) -> None:
        assert T.daily("02:15", LORD_HOWE).next(u(2025, 10, 4)).isoformat() == (
            "2025-10-05T02:30:00+11:00"
        )
        skip = T.daily("02:15", LORD_HOWE, nonexistent="skip")
        assert skip.next(u(2025, 10, 4)).isoformat() == "2025-10-06T02:15:00+11:00"
        both = T.daily("01:45", LORD_HOWE, ambiguous="both")
        assert local(both.preview(3, u(2025, 4, 5))) == [
            "2025-04-06T01:45:00+11:00",
            "2025-04-06T01:45:00+10:30",
            "2025-04-07T01:45:00+10:30",
        ]

    def test_ordinary_days_keep_local_time_across_the_change(self) -> None:
        fires = T.daily("09:00", BERLIN).preview(4, u(2025, 3, 28))
        assert [f.strftime("%H:%M%z") for f in fires] == [
            "09:00+0100",
            "09:00+0100",
            "09:00+0200",
            "09:00+0200",
        ]


def test_weekly_names_and_iso_numbers() -> None:
    t = T.weekly(["Thursday", "mon"], "09:00", tz=BERLIN)
    assert days(t.preview(3, u(2025, 1, 4))) == ["2025-01-06", "2025-01-09", "2025-01-13"]
    assert t.explain() == "on Monday and Thursday at 09:00, Europe/Berlin"
    iso = T.weekly([1, 7], "12:00")
    assert days(iso.preview(3, u(2025, 1, 4))) == ["2025-01-05", "2025-01-06", "2025-01-12"]
    workdays = T.weekly(["mon", "tue", "wed", "thu", "fri"], "08:00")
    assert workdays.explain() == "Monday to Friday at 08:00, UTC"
    assert T.weekly("sun", "08:00").explain() == "on Sundays at 08:00, UTC"


@pytest.mark.parametrize(
    ("kwargs", "after", "expected"),
    [
        ({"day": 31}, u(2025, 1, 1), ["2025-01-31", "2025-03-31", "2025-05-31"]),
        (
            {"day": 31, "missing_day": "last"},
            u(2025, 1, 1),
            ["2025-01-31", "2025-02-28", "2025-03-31", "2025-04-30"],
        ),
        ({"day": 29, "missing_day": "last"}, u(2024, 2, 1), ["2024-02-29", "2024-03-29"]),
        ({"day": 29, "missing_day": "last"}, u(2025, 2, 1), ["2025-02-28", "2025-03-29"]),
        ({"day": 29}, u(2025, 2, 1), ["2025-03-29", "2025-04-29"]),
        ({"day": 30}, u(2025, 1, 31), ["2025-03-30", "2025-04-30"]),
        ({"day": "last"}, u(2024, 1, 1), ["2024-01-31", "2024-02-29", "2024-03-31"]),
        ({"day": [1, 15]}, u(2025, 1, 1, 12), ["2025-01-15", "2025-02-01", "2025-02-15"]),
        # 30 and 31 both fall back to 28 February: one run, not two.
        (
            {"day": [30, 31], "missing_day": "last"},
            u(2025, 2, 1),
            ["2025-02-28", "2025-03-30", "2025-03-31", "2025-04-30", "2025-05-30"],
        ),
    ],
)
def test_monthly_month_ends(
    kwargs: dict[str, object], after: datetime, expected: list[str]
) -> None:
    day = kwargs.pop("day")
    t = T.monthly(day, "08:00", **kwargs)  # type: ignore[arg-type]
    assert days(t.preview(len(expected), after)) == expected


def test_monthly_explain() -> None:
    assert T.monthly(31, "08:00", missing_day="last").explain() == (
        "monthly on day 31 (the last day in shorter months) at 08:00, UTC"
    )
    assert T.monthly(31, "08:00").explain() == (
        "monthly on day 31 (skipped in months without it) at 08:00, UTC"
    )
    assert T.monthly([1, "last"], "08:00", BERLIN).explain() == (
        "monthly on day 1 and the last day at 08:00, Europe/Berlin"
    )


@pytest.mark.parametrize(
    ("build", "error", "needle"),
    [
        (lambda: T.daily("25:00"), T.CalendarError, "'25:00'"),
        (lambda: T.daily("9"), T.CalendarError, "'9'"),
        (lambda: T.daily([]), T.CalendarError, "empty"),
        (lambda: T.daily(time(9, tzinfo=UTC)), T.CalendarError, "tzinfo"),
        (lambda: T.daily(time(9, 0, 0, 5)), T.CalendarError, "microseconds"),
        (lambda: T.daily(930), T.CalendarError, "930"),
        (lambda: T.weekly([0], "09:00"), T.CalendarError, "ambiguous"),
        (lambda: T.weekly(["funday"], "09:00"), T.CalendarError, "'funday'"),
        (lambda: T.weekly([], "09:00"), T.CalendarError, "empty"),
        (lambda: T.monthly(32, "09:00"), T.CalendarError, "32"),
        (lambda: T.monthly(0, "09:00"), T.CalendarError, "day 0"),
        (lambda: T.monthly("first", "09:00"), T.CalendarError, "'first'"),
        (lambda: T.monthly(1, "09:00", missing_day="next"), T.CalendarError, "'next'"),
        (lambda: T.daily("09:00", tz="Mars/Olympus"), T.UnknownTimeZoneError, "Mars/Olympus"),
    ],
)
def test_bad_calendar_input(build: object, error: type[Exception], needle: str) -> None:
    with pytest.raises(error) as info:
        build()  # type: ignore[operator]
    assert needle in str(info.value)


@pytest.mark.parametrize(
    "trigger",
    [
        T.daily(["09:00", "17:30:15"], BERLIN, nonexistent="shift"),
        T.weekly(["mon", "fri"], "09:00", NEW_YORK, ambiguous="last"),
        T.monthly([31, "last"], "08:00", LORD_HOWE, missing_day="last"),
    ],
)
def test_calendar_json_round_trip(trigger: T.TriggerBase) -> None:
    back = T.trigger_from_json(trigger.to_json())
    assert back == trigger
    after = at(BERLIN, 2025, 1, 1)
    assert back.preview(20, after) == trigger.preview(20, after)

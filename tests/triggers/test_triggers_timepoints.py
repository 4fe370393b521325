"""Time-point sequences: blocks, lists, pairs, insertion into a running sequence, "now"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import timecontrol.triggers as T
from timecontrol._exceptions import NaiveDatetimeError

S = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)


def rel(values: list[datetime], start: datetime = S) -> list[float]:
    """Fire times as seconds after `start`."""
    return [(v - start).total_seconds() for v in values]


def test_pairs_block_first_point_is_one_spacing_after_block_start() -> None:
    tp = T.timepoints.pairs((6, 60), (10, 120), start=S)
    fires = tp.preview(100, S - timedelta(hours=1))
    # Block 1: +60 ... +360; block 2 starts where block 1 ended: +480 ... +1560.
    assert rel(fires) == [60.0 * i for i in range(1, 7)] + [360.0 + 120 * i for i in range(1, 11)]
    assert tp.explain() == (
        "6 points 1 minute apart, then 10 points 2 minutes apart (16 points over 26 minutes) "
        "from 2025-05-01 09:00:00+00:00"
    )


def test_pairs_accepts_one_sequence_of_pairs() -> None:
    a = T.timepoints.pairs(((6, 60), (10, 120)), start=S)
    b = T.timepoints.pairs([(6, 60), (10, 120)], start=S)
    c = T.timepoints.pairs((6, 60), (10, 120), start=S)
    assert a == b == c


def test_no_point_at_the_start_itself() -> None:
    tp = T.timepoints.block(3, 10, start=S)
    assert tp.next(S - timedelta(microseconds=1)) == S + timedelta(seconds=10)
    assert rel(tp.preview(5, S)) == [10.0, 20.0, 30.0]


def test_start_binds_on_first_next_and_preview_does_not_bind() -> None:
    tp = T.timepoints.pairs((2, 5))
    assert not tp.is_bound
    assert rel(tp.preview(5, S), S) == [5.0, 10.0]
    assert not tp.is_bound
    t0 = S + timedelta(minutes=3)
    assert tp.next(t0) == t0 + timedelta(seconds=5)
    assert tp.is_bound
    assert tp.start == t0
    assert tp.next(t0 + timedelta(seconds=5)) == t0 + timedelta(seconds=10)
    assert tp.next(t0 + timedelta(seconds=10)) is None


def test_offsets_and_spacings_lists() -> None:
    offs = T.timepoints.offsets([0, 30, timedelta(minutes=1, seconds=30)], start=S)
    assert rel(offs.preview(5, S - timedelta(seconds=1))) == [0.0, 30.0, 90.0]
    sp = T.timepoints.spacings([60, 60, 120.5], start=S)
    assert rel(sp.preview(5, S)) == [60.0, 120.0, 240.5]


def test_a_huge_block_is_computed_not_expanded() -> None:
    tp = T.timepoints.block(10**9, 1, start=S)
    assert tp.next(S + timedelta(days=3000, microseconds=1)) == S + timedelta(days=3000, seconds=1)


@pytest.mark.parametrize(
    ("build", "needle"),
    [
        (lambda: T.timepoints.pairs((6, -60)), "spacing=-60 is negative"),
        (lambda: T.timepoints.pairs((6, 60), (10, -120)), "pair #1"),
        (lambda: T.timepoints.pairs((6, 0)), "zero"),
        (lambda: T.timepoints.pairs((0, 60)), "count=0"),
        (lambda: T.timepoints.pairs((1.5, 60)), "count=1.5"),
        (lambda: T.timepoints.pairs((6,)), "not a (count, spacing) pair"),
        (T.timepoints.pairs, "at least one"),
        (lambda: T.timepoints.block(3, timedelta(seconds=-1)), "negative"),
        (lambda: T.timepoints.spacings([60, -10]), "spacings[1]: spacing=-10 is negative"),
        (lambda: T.timepoints.offsets([0, 60, 30]), "spacing of -30 s"),
        (lambda: T.timepoints.offsets([-5]), "offsets[0]=-5 is negative"),
        (lambda: T.timepoints.offsets([]), "at least one"),
        (lambda: T.timepoints.offsets(["soon"]), "'soon'"),  # type: ignore[list-item]
    ],
)
def test_bad_time_points(build: object, needle: str) -> None:
    with pytest.raises(T.TimePointError) as info:
        build()  # type: ignore[operator]
    assert needle in str(info.value)


def test_naive_start_is_refused() -> None:
    with pytest.raises(NaiveDatetimeError):
        T.timepoints.block(3, 10, start=datetime(2025, 1, 1))
    with pytest.raises(NaiveDatetimeError):
        T.timepoints.block(3, 10).with_now(datetime(2025, 1, 1))


class TestInsertingIntoARunningSequence:
    def test_with_points_returns_a_new_sequence(self) -> None:
        tp = T.timepoints.pairs((3, 60), start=S)
        assert tp.next(S + timedelta(seconds=60)) == S + timedelta(seconds=120)  # running
        tp2 = tp.with_points(90, timedelta(seconds=150))
        assert rel(tp2.preview(10, S + timedelta(seconds=60))) == [90.0, 120.0, 150.0, 180.0]
        assert rel(tp.preview(10, S + timedelta(seconds=60))) == [120.0, 180.0]  # unchanged

    def test_with_block_appends_by_default(self) -> None:
        tp = T.timepoints.pairs((2, 60), start=S).with_block(2, 30)
        assert rel(tp.preview(10, S)) == [60.0, 120.0, 150.0, 180.0]

    def test_with_block_inserted_without_and_with_shift(self) -> None:
        tp = T.timepoints.pairs((3, 60), start=S)
        plain = tp.with_block(2, 10, after=60)
        assert rel(plain.preview(10, S)) == [60.0, 70.0, 80.0, 120.0, 180.0]
        shifted = tp.with_block(2, 10, after=60, shift_subsequent=True)
        assert rel(shifted.preview(10, S)) == [60.0, 70.0, 80.0, 140.0, 200.0]

    def test_shift_moves_single_points_but_not_manual_ones(self) -> None:
        manual = S + timedelta(seconds=100)
        tp = T.timepoints.offsets([50, 100], start=S).with_now(manual)
        shifted = tp.with_block(1, 30, after=60, shift_subsequent=True)
        assert rel(shifted.preview(10, S)) == [50.0, 90.0, 100.0, 130.0]

    def test_manual_now_point(self) -> None:
        tp = T.timepoints.pairs((3, 600), start=S)
        now = S + timedelta(seconds=123.456)
        tp2 = tp.with_now(now)
        assert tp2.next(S + timedelta(seconds=100)) == now
        assert tp2.next(now) == S + timedelta(seconds=600)
        assert tp2.explain().startswith("3 points 10 minutes apart, 1 manual point (4 points")

    def test_manual_point_on_an_unbound_sequence(self) -> None:
        now = S + timedelta(seconds=5)
        tp = T.timepoints.pairs((2, 60)).with_now(now)
        assert tp.next(S) == now  # binds start = S as well
        assert tp.next(now) == S + timedelta(seconds=60)

    def test_persisted_sequence_resumes_exactly(self) -> None:
        tp = T.timepoints.pairs((6, 60), (10, 120))
        fires = [tp.next(S)]
        for _ in range(3):
            fires.append(tp.next(fires[-1]))  # type: ignore[arg-type]
        tp = tp.with_points(200.5).with_now(S + timedelta(seconds=250))
        saved = tp.to_json()
        revived = T.trigger_from_json(saved)
        assert revived == tp
        assert revived.preview(50, fires[-1]) == tp.preview(50, fires[-1])  # type: ignore[arg-type]
        # Resumes after +240 s: the inserted +200.5 s already lies in the past.
        assert rel(revived.preview(4, fires[-1])) == [  # type: ignore[arg-type]
            250.0,
            300.0,
            360.0,
            480.0,
        ]
        assert saved == {
            "type": "timepoints",
            "start": S.isoformat(),
            "tz": "UTC",
            "blocks": [[0, 6, 60], [360, 10, 120]],
            "points": [200.5],
            "manual": [(S + timedelta(seconds=250)).isoformat()],
        }


def test_fire_times_are_shown_in_the_start_zone() -> None:
    from zoneinfo import ZoneInfo

    start = datetime(2025, 3, 30, 1, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    tp = T.timepoints.block(2, 1800, start=start)
    assert [f.isoformat() for f in tp.preview(2, start)] == [
        "2025-03-30T03:00:00+02:00",  # 30 min of real time after 01:30 CET
        "2025-03-30T03:30:00+02:00",
    ]

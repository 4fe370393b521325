"""The Schedule: steady-state push/pop cost and memory per pending intent.

Keys (issue 2, "Benchmarks"):

* ``schedule.push_pop_us`` (≤ 5 µs): with 100,000 intents pending, add one and pop one, as
  the engine does (``Schedule.add`` builds the `Intent`; ``Schedule.pop`` takes the earliest).
  Due times are random over a 1000 s window, so new intents land anywhere in the heap.
  ``push_us`` in the same entry is ``Schedule.push`` of a ready-made intent + ``pop``.
* ``schedule.bytes_per_intent`` (≤ 300 B): tracemalloc's count of the memory 100,000
  ``Schedule.add`` calls keep alive (the intents, their due floats and seq ints, the heap
  list and the live-set entries), divided by 100,000. Action and subject strings are shared
  between intents, as they are when 1,000 jobs each have many intents.
* ``schedule.floor_push_pop_us``: the floor, ``heapq.heappush``/``heappop`` of plain
  ``(due, priority, seq)`` tuples at the same size.
"""

from __future__ import annotations

import gc
import heapq
import random
import sys
import tracemalloc
from collections.abc import Callable

from _common import Result, per_call_us, result, runs_note

from timecontrol._schedule import Intent, Schedule

PENDING = 100_000
BASE = 1_767_225_600.0  # 2026-01-01T00:00Z
WINDOW = 1000.0
SUBJECTS = [f"job-{i}" for i in range(1000)]


def _filled(rng: random.Random) -> Schedule:
    s = Schedule()
    for i in range(PENDING):
        s.add(BASE + rng.random() * WINDOW, "sample", subject=SUBJECTS[i % 1000])
    return s


def _add_pop(s: Schedule, dues: list[float]) -> Callable[[int], None]:
    def go(n: int) -> None:
        add, pop, subject = s.add, s.pop, SUBJECTS[7]
        for i in range(n):
            add(dues[i], "sample", subject=subject)
            pop()

    return go


def _push_pop(s: Schedule, intents: list[Intent]) -> Callable[[int], None]:
    offset = 0  # each run pushes intents not pushed before (seqs must be new)

    def go(n: int) -> None:
        nonlocal offset
        push, pop, base = s.push, s.pop, offset
        for i in range(base, base + n):
            push(intents[i])
            pop()
        offset += n

    return go


def _floor(dues: list[float], rng: random.Random) -> Callable[[int], None]:
    heap = [(BASE + rng.random() * WINDOW, 0, i) for i in range(PENDING)]
    heapq.heapify(heap)

    def go(n: int) -> None:
        push, pop = heapq.heappush, heapq.heappop
        for i in range(n):
            push(heap, (dues[i], 0, i))
            pop(heap)

    return go


def _bytes_per_intent(rng: random.Random, *, unique_subjects: bool) -> float:
    offsets = [rng.random() * WINDOW for _ in range(PENDING)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        s = Schedule()
        for i in range(PENDING):
            # A fresh due float per intent (as a trigger computes it), and with
            # `unique_subjects` a fresh subject string too, so both are counted.
            subject = f"job-{i}" if unique_subjects else SUBJECTS[i % 1000]
            s.add(BASE + offsets[i], "sample", subject=subject)
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(s) == PENDING
    return (after - before) / PENDING


def run(quick: bool) -> dict[str, Result]:
    """Schedule figures at 100,000 pending intents."""
    rng = random.Random(20260101)
    n = 200_000 if quick else 1_000_000
    repeat = 5 if quick else 9
    dues = [BASE + rng.random() * WINDOW for _ in range(n)]

    s = _filled(rng)
    _add_pop(s, dues)(20_000)  # warm-up
    add_pop, add_runs = per_call_us(_add_pop(s, dues), n, repeat)
    assert len(s) == PENDING

    s2 = _filled(rng)
    intents = [Intent(d, 0, 10_000_000 + i, "sample", SUBJECTS[7]) for i, d in enumerate(dues)]
    push_pop, _ = per_call_us(_push_pop(s2, intents), n // 2, 2)
    floor, _ = per_call_us(_floor(dues, rng), n, repeat)
    del s, s2, intents

    shared = _bytes_per_intent(rng, unique_subjects=False)
    unique = _bytes_per_intent(rng, unique_subjects=True)
    return {
        "schedule.push_pop_us": result(
            add_pop,
            "µs",
            target="<= 5",
            note=(
                f"Schedule.add + Schedule.pop at {PENDING:,} pending, random dues; {n:,} pairs "
                f"per run, {runs_note(add_runs)}; push(ready Intent) + pop: {push_pop:.2f} µs; "
                f"{add_pop / floor:.1f}× the heapq floor"
            ),
            push_us=round(push_pop, 3),
        ),
        "schedule.floor_push_pop_us": result(
            floor,
            "µs",
            note=f"floor: heapq push + pop of (due, priority, seq) tuples at {PENDING:,}",
            informational=True,
        ),
        "schedule.bytes_per_intent": result(
            shared,
            "B",
            target="<= 300",
            note=(
                f"tracemalloc over {PENDING:,} Schedule.add (intent, due float, seq int, heap "
                f"slot, live-set entry; action/subject strings shared by 1,000 jobs); with a "
                f"unique subject string per intent: {unique:.0f} B"
            ),
            unique_subject_bytes=round(unique, 1),
        ),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run("--quick" in sys.argv), indent=1, ensure_ascii=False))

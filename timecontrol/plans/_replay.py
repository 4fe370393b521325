"""The plan stack and the replay cache: what the run engine drives and what it can replay.

A plan runs as a stack of generators (`Frame`): the plan itself at the bottom, with replays
and suspensions pushed on top of it. While rewinding is on, every cacheable message processed
since the last checkpoint is kept in the *replay cache*; a hard pause or a suspension rewinds
to that checkpoint by pushing a frame that yields those messages again, and the value of the
last one answers the message whose processing was interrupted (`Frame.result_to`).

``cache is None`` means there is no safe place to resume from (after ``clear_checkpoint``):
a pause or suspension then aborts the plan instead.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable
from typing import Any, Final

from ._documents import OpenRun

__all__ = ["UNCACHEABLE", "Frame", "ReplayStack", "from_iterable"]

#: Messages never replayed: the pause itself, and those that act as checkpoints.
UNCACHEABLE: Final = frozenset(
    {
        "pause",
        "checkpoint",
        "clear_checkpoint",
        "stage",
        "unstage",
        "subscribe",
        "unsubscribe",
        "open_run",
        "close_run",
        "monitor",
        "unmonitor",
        "install_suspender",
        "remove_suspender",
        "_start_suspender",
        "_resume_from_suspender",
    }
)


class Frame:
    """One generator on the plan stack and what to send into it next."""

    __slots__ = ("gen", "replay", "result_to", "send", "throw")

    def __init__(
        self,
        gen: Generator[Any, Any, Any],
        *,
        replay: bool = False,
        result_to: Frame | None = None,
    ) -> None:
        self.gen = gen
        self.send: Any = None
        self.throw: BaseException | None = None
        #: messages of this frame are replays (flagged so in ``plan.msgs``)
        self.replay = replay
        #: frame that receives this frame's return value (a replay answers the message whose
        #: processing was interrupted)
        self.result_to = result_to


def _replay(msgs: list[Any]) -> Generator[Any, Any, Any]:
    # Answers the interrupted message with the value its replay produced.
    value = None
    for msg in msgs:
        value = yield msg
    return value


def from_iterable(plan: Iterable[Any]) -> Generator[Any, Any, None]:
    """A generator over a plain iterable of messages (it drops the values sent back)."""
    # Not `yield from`: that would pass the engine's values on to a list iterator's send().
    for msg in plan:  # noqa: UP028
        yield msg


class ReplayStack:
    """The generators of one plan execution and the messages since its last checkpoint.

    Attributes:
        frames: the plan stack, innermost generator last.
        cache: cacheable messages since the last checkpoint; None when there is no safe place
            to resume from.
        rewindable: whether messages are cached (and so replayed) at all.
        in_flight: the frame whose async message is being awaited now, if any.
        in_flight_cached: whether that message went into the cache (only then may its replay
            answer it).
        resume_into: the frame a resume's replay answers (set when a pause lands).
    """

    __slots__ = ("cache", "frames", "in_flight", "in_flight_cached", "resume_into", "rewindable")

    def __init__(self, rewindable: bool) -> None:
        self.frames: list[Frame] = []
        self.cache: list[Any] | None = []  # the beginning of a plan is a checkpoint
        self.rewindable = rewindable
        self.in_flight: Frame | None = None
        self.in_flight_cached = False
        self.resume_into: Frame | None = None

    @property
    def resumable(self) -> bool:
        """False after ``clear_checkpoint`` until the next checkpoint."""
        return self.cache is not None

    def push(self, gen: Generator[Any, Any, Any]) -> None:
        """Push a generator to drive next (the plan, or a suspension)."""
        self.frames.append(Frame(gen))

    def checkpoint(self, runs: Iterable[OpenRun]) -> None:
        """A new window starts here: forget the cached messages, remember the runs' counters."""
        if self.cache is not None:
            self.cache.clear()
        else:
            self.cache = []
        for run in runs:
            run.checkpoint()

    def clear_checkpoint(self) -> None:
        """No safe place to resume from until the next checkpoint."""
        self.cache = None

    def set_rewindable(self, value: bool, runs: Iterable[OpenRun]) -> None:
        """Turn caching on or off; a change starts a new window."""
        if value != self.rewindable:
            self.rewindable = value
            self.checkpoint(runs)

    def interrupted(self) -> Frame | None:
        """The frame a replay must answer: the one whose cached message was interrupted."""
        frame = self.in_flight if self.in_flight_cached else None
        self.in_flight = None
        return frame

    def take(self, runs: Iterable[OpenRun]) -> list[Any]:
        """The cached messages, handed over for a later replay; the runs rewind meanwhile."""
        msgs = list(self.cache or ())
        self.cache = [] if self.cache is not None else None
        if self.rewindable:
            # Without rewinding nothing is replayed: an open bundle and the counters stand.
            for run in runs:
                run.rewind()
        return msgs

    def replay(self, msgs: list[Any], result_to: Frame | None) -> None:
        """Push a frame that yields `msgs` again (nothing if there are none)."""
        if msgs:
            self.frames.append(Frame(_replay(msgs), replay=True, result_to=result_to))

    def rewind(self, runs: Iterable[OpenRun]) -> int:
        """Replay from the last checkpoint, answering `resume_into`; return how many."""
        msgs = self.take(runs)
        self.replay(msgs, self.resume_into)
        self.resume_into = None
        return len(msgs)

    def close(self) -> list[tuple[Any, BaseException]]:
        """Close every generator, innermost first; return (generator, error) for each that
        raised (e.g. a ``RuntimeError``: it tried to yield while being closed)."""
        errors: list[tuple[Any, BaseException]] = []
        while self.frames:
            frame = self.frames.pop()
            try:
                frame.gen.close()
            except Exception as exc:
                errors.append((frame.gen, exc))
        return errors

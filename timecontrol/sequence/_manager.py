"""`Sequences`: an engine's sampling sequences, by name, and the one action that runs them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from ._args import check_flag, check_name
from ._core import ACTION_NAME, CANCELLED_STATE, FINISHED
from ._errors import SequenceArgumentError, SequenceMismatchError, SequenceStateError
from ._replay import fold
from ._restore import Restore, history
from ._sequence import Sequence

if TYPE_CHECKING:
    from .._schedule import Intent
    from ._host import SequenceHost

__all__ = ["SequenceOptions", "Sequences"]


class SequenceOptions(TypedDict, total=False):
    """The keyword options of `Sequences.create` (and ``engine.sequence``), for typing a
    caller's ``**options``; `Sequences.create` documents each and holds the defaults."""

    name: str | None
    kwargs: Mapping[str, Mapping[str, Any]] | None
    on_error: str
    on_pause: str
    on_interrupt: str
    on_downtime: str
    downtime_grace: float
    replace: bool
    reset: bool


def _check_flags(replace: object, reset: object) -> None:
    if check_flag(replace, "replace") and check_flag(reset, "reset"):
        raise SequenceArgumentError(
            "replace=True and reset=True together; replace keeps the stored progress, "
            "reset starts afresh: choose one"
        )
    check_flag(reset, "reset")


class Sequences:
    """The sampling sequences of one host (``engine.sequences``), by name.

    It registers the internal action that every sequence's intents run (routed by their
    subject, the sequence's name). Make sequences with `create` (``engine.sequence``).
    """

    def __init__(self, host: SequenceHost) -> None:
        self._host = host
        self._by_name: dict[str, Sequence] = {}
        host.intent_action(self._fire, ACTION_NAME)

    async def _fire(self, intent: Intent) -> None:
        sequence = self._by_name.get(intent.subject)
        if sequence is not None:
            await sequence._fire(intent)

    def create(
        self,
        actions: object,
        timepoints: object = None,
        *,
        name: str | None = None,
        kwargs: Mapping[str, Mapping[str, Any]] | None = None,
        on_error: str = "skip_rest",
        on_pause: str = "catch_up",
        on_interrupt: str = "skip",
        on_downtime: str = "skip",
        downtime_grace: float = 60.0,
        replace: bool = False,
        reset: bool = False,
    ) -> Sequence:
        """Make a sequence (see `Sequence` for the arguments); start it with ``start()``.

        `name` defaults to ``sequence-<n>`` (never one the Log has a history of); names are
        unique among this engine's sequences (a finished or cancelled one may be `remove`d
        to free its name).

        If the Log (a SQLite store, or this process's Log) holds a history of `name`, the
        sequence resumes from it (`Sequence.resumed`): same start, points and pause state,
        the interrupted point and the points that fell due meanwhile settled by
        `on_interrupt` and `on_downtime`. A declaration that differs from the stored one
        (chain, time points, kwargs, policies) raises `SequenceMismatchError` naming the
        differences, unless ``replace=True`` (the new declaration applies from now on,
        progress is kept) or ``reset=True`` (a new history; the old records stay in the Log).
        """
        _check_flags(replace, reset)
        if name is None:
            name = self._fresh_name()
        check_name(name)
        if name in self._by_name:
            raise SequenceArgumentError(
                f"a sequence named {name!r} exists already ({self._by_name[name]!r}); choose "
                "another name, or remove() that one once it is over"
            )
        sequence = Sequence(
            self._host,
            actions,
            timepoints,
            name=name,
            kwargs=kwargs,
            on_error=on_error,
            on_pause=on_pause,
            on_interrupt=on_interrupt,
            on_downtime=on_downtime,
            downtime_grace=downtime_grace,
        )
        events = history(self._host.log, name)
        if not events or reset:
            sequence._declare(events[0].seq if events else None)
        else:
            self._resume(sequence, events, replace)
        self._by_name[name] = sequence
        return sequence

    def _resume(self, sequence: Sequence, events: list[Any], replace: bool) -> None:
        """Rebuild `sequence` from its history: checked first (a mismatch or an action
        that does not resolve leaves no trace), then recorded."""
        snap = fold(sequence.name, events)
        declared = sequence._definition()
        changes = snap.definition.changes(declared)
        if changes and not replace:
            raise SequenceMismatchError(
                f"sequence {sequence.name!r} differs from the one the Log holds: "
                f"{snap.definition.explain(declared)}. Pass replace=True to apply this "
                "declaration and keep its progress, or reset=True to start it afresh"
            )
        Restore(sequence, snap, changes).apply(declared)

    def _fresh_name(self) -> str:
        log = self._host.log
        n = len(self._by_name) + 1
        while f"sequence-{n}" in self._by_name or history(log, f"sequence-{n}"):
            n += 1
        return f"sequence-{n}"

    def remove(self, name: str) -> Sequence:
        """Forget a finished, cancelled or never-started sequence (its records stay in the
        Log); returns it."""
        sequence = self[name]
        if sequence.state not in ("created", FINISHED, CANCELLED_STATE):
            raise SequenceStateError(
                f"sequence {name!r} is {sequence.state}; cancel it (or let it finish) first"
            )
        sequence._disarm()
        del self._by_name[name]
        return sequence

    def __getitem__(self, name: str) -> Sequence:
        try:
            return self._by_name[name]
        except KeyError:
            raise SequenceArgumentError(
                f"no sequence named {name!r}; sequences: {sorted(self._by_name)}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Sequence]:
        return iter(list(self._by_name.values()))

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return f"<Sequences {[f'{s.name}:{s.state}' for s in self]}>"

"""`Sequences`: an engine's sampling sequences, by name, and the one action that runs them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ._args import check_name
from ._core import ACTION_NAME, CANCELLED_STATE, FINISHED
from ._errors import SequenceArgumentError, SequenceStateError
from ._sequence import Sequence

if TYPE_CHECKING:
    from .._schedule import Intent
    from ._host import SequenceHost

__all__ = ["Sequences"]


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
    ) -> Sequence:
        """Make a sequence (see `Sequence` for the arguments); start it with ``start()``.

        `name` defaults to ``sequence-<n>``; names are unique among this engine's sequences
        (a finished or cancelled one may be `remove`d to free its name).
        """
        if name is None:
            n = len(self._by_name) + 1
            while f"sequence-{n}" in self._by_name:
                n += 1
            name = f"sequence-{n}"
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
        )
        self._by_name[name] = sequence
        return sequence

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

"""What sequences need from whoever runs them: the `SequenceHost` protocol.

Sequences never construct or reach into the `timecontrol.Engine`. The owner (the engine's
dispatcher satisfies this protocol) gives them its Clock, its Log, its Schedule, its registered
actions and a way to submit intents: each sequence keeps one intent in the Schedule, for its
next point, so the dispatch gate (engine pause, panic) holds sequences exactly as it holds
scheduled jobs.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from .._hosts import IntentHost

__all__ = ["SequenceHost"]


@runtime_checkable
class SequenceHost(IntentHost, Protocol):
    """The narrow host sequences run on (satisfied by the engine's dispatcher): exactly the
    core's `IntentHost`; sequences need nothing more."""

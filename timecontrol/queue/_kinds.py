"""The queue's Log vocabulary: every edit and every step of execution is one of these events.

They are timecontrol's own (reserved) kinds: users read them, only the queue writes them, so
that no user event can pose as a queue record that recovery reads back. The queue's state is
a fold over the *state* kinds (`STATE_KINDS`), in Log order: memory is built by the very
function a restart uses (`QueueModel.apply`), so the two cannot disagree.
"""

from __future__ import annotations

from typing import Final

from .._events import reserve_kind

__all__ = ["ACTIVITY_KINDS", "ALL_KINDS", "STATE_KINDS"]

#: Events that change what the queue holds or its modes: a restart replays these.
_STATE: Final = (
    ("queue.queue_added", "a queue was added; payload: loop, ignore_failures, index"),
    ("queue.queue_removed", "a queue (and its items) was removed"),
    ("queue.mode", "a queue's modes changed; payload: loop, ignore_failures"),
    ("queue.item_added", "an item was added; payload: item (plan, kwargs, ...), queue, index"),
    ("queue.item_moved", "an item was moved; payload: queue, index"),
    ("queue.item_edited", "an item was edited; payload: changes"),
    ("queue.item_removed", "an item was removed"),
    ("queue.item_skipped", "an item is to be passed over"),
    ("queue.item_unskipped", "a skipped item is to run again"),
    ("queue.cleared", "items were removed at once; payload: queue, uids"),
    ("queue.item_started", "an item started; payload: plan, kwargs, attempt, queue"),
    (
        "queue.item_finished",
        "an item ended; payload: status, exit_status, reason, plan_uid, run_uids, duration",
    ),
    ("queue.item_requeued", "an interrupted item is pending again (to re-run); payload: why"),
    ("queue.looped", "a looping queue finished a round and starts over; payload: round"),
    ("queue.started", "the queue began executing; payload: reason"),
    ("queue.stopped", "the queue stopped executing; payload: reason"),
    ("queue.settings", "queue-wide settings changed; payload: the settings changed"),
    ("queue.schedule", "a scheduled start or stop was set; payload: start_at, stop_at, ..."),
    (
        "queue.conditional",
        "a conditional was added or replaced (payload: its definition) or removed (removed)",
    ),
)

#: Events that say what the queue is doing; read by `state()`, ETA and statistics.
_ACTIVITY: Final = (
    ("queue.paused", "the queue holds; payload: reason"),
    ("queue.resumed", "the queue goes on; payload: reason"),
    ("queue.delay_started", "a delay began; payload: seconds, reason"),
    ("queue.delay_changed", "a running delay's remaining time changed; payload: remaining"),
    ("queue.delay_ended", "a delay ended; payload: how (elapsed, skipped, stopped)"),
    ("queue.check_failed", "a pre-check failed; payload: level, check, reason, action"),
    ("queue.check_passed", "every pre-check of a level passed; payload: level, checks"),
    ("queue.prompt_opened", "a question awaits an answer; payload: question, choices, ..."),
    ("queue.prompt_answered", "a question was answered; payload: choice, source"),
    ("queue.intervention", "an operator intervened; payload: action, reason, item"),
    ("queue.restored", "the queue was read back from its store; payload: what it found"),
    ("queue.conditional_fired", "a conditional's condition held; payload: action, value"),
    ("queue.signal", "an item gave a named signal (overlapping runs); payload: name, source"),
    (
        "queue.overlap",
        "an overlap did not start; payload: next (the item), started, resources (held)",
    ),
)

for _name, _doc in _STATE + _ACTIVITY:
    reserve_kind(_name, _doc)

STATE_KINDS: Final = frozenset(name for name, _ in _STATE)
ACTIVITY_KINDS: Final = frozenset(name for name, _ in _ACTIVITY)
ALL_KINDS: Final = STATE_KINDS | ACTIVITY_KINDS

"""The experiment queue: an editable, durable queue of plan items with pre-checks, prompts,
delays, overlapping runs, scheduled start and stop, ETA and statistics, run on the engine's
run engine.

    queue = engine.queue
    queue.plan(lambda num=1: count([det], num=num), name="count")
    queue.add("count", {"num": 5})
    queue.start()
    await queue.wait()

Its state and every edit are events in the engine's Log, so a restart (even after
``kill -9``) finds the queue where it was, and the ETA and statistics are read from the Log.
See ``docs/queue.md``.
"""

from __future__ import annotations

from ._checks import Check, CheckContext, CheckFailedError, CheckLevel, OnFail
from ._conditions import Conditional, Expression
from ._errors import (
    ItemNotFoundError,
    PlanNotFoundError,
    PromptError,
    QueueArgumentError,
    QueueError,
    QueueStateError,
)
from ._eta import PlanStats
from ._host import QueueHost
from ._items import FINAL_STATUSES, ItemOutcome, ItemStatus, OnInterrupt, QueueInfo, QueueItem
from ._kinds import ACTIVITY_KINDS, ALL_KINDS, STATE_KINDS
from ._model import DEFAULT_QUEUE
from ._overlap import SIDE_ENGINE, signal
from ._prompts import Prompt
from ._queue import Queue, StateFeed
from ._status import DryRun, DryRunItem, Eta, Progress, QueueState, QueueStatus

__all__ = [
    "ACTIVITY_KINDS",
    "ALL_KINDS",
    "DEFAULT_QUEUE",
    "FINAL_STATUSES",
    "SIDE_ENGINE",
    "STATE_KINDS",
    "Check",
    "CheckContext",
    "CheckFailedError",
    "CheckLevel",
    "Conditional",
    "DryRun",
    "DryRunItem",
    "Eta",
    "Expression",
    "ItemNotFoundError",
    "ItemOutcome",
    "ItemStatus",
    "OnFail",
    "OnInterrupt",
    "PlanNotFoundError",
    "PlanStats",
    "Progress",
    "Prompt",
    "PromptError",
    "Queue",
    "QueueArgumentError",
    "QueueError",
    "QueueHost",
    "QueueInfo",
    "QueueItem",
    "QueueState",
    "QueueStateError",
    "QueueStatus",
    "StateFeed",
    "signal",
]

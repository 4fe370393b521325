"""The queue's shared core: its host, its model, recording, and the executor's live state.

Everything that changes the queue goes through `QueueCore._record`: the event is written to
the Log first and the *same* event is then applied to the model, so that memory is exactly
the fold of the Log that a restart rebuilds (`QueueModel.apply`). The layers above add the
edits (`._edits`), the executor (`._executor`), the verbs and lifecycle (`._control`) and the
public reads (`._queue`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio

from .._events import Event
from ._checks import Checks
from ._conditions import Conditional, Conditionals, ItemWatch
from ._delays import Delay
from ._errors import ItemNotFoundError, QueueArgumentError, QueueStateError
from ._eta import Durations
from ._items import ItemRecord, ItemStatus
from ._model import QueueModel
from ._prompts import Prompts
from ._registry import PlanRegistry

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .._clock import Clock
    from .._log import Log
    from ..plans import RunEngine
    from ._host import QueueHost

__all__ = ["QueueCore"]


class QueueCore:
    """State shared by the queue's layers (see the module docstring)."""

    def __init__(self, host: QueueHost, run_engine: RunEngine) -> None:
        self._host = host
        self._run_engine = run_engine
        self._model = QueueModel()
        self._plans = PlanRegistry()
        self._checks = Checks()
        self._conditionals = Conditionals()
        self._durations = Durations()
        self._prompts = Prompts(lambda: self._host.clock, self._record)
        self._log: Log | None = None  # the Log attached to (None before the first)
        self._restored = False  # the model holds what the store held
        self._restore_pending = False  # restore through `log.query` once started
        self._settled = True  # what a restore found has been recorded (`_control._settle`)
        # -- the executor's live state (not durable: the Log keeps what matters) --
        self._exec_scope: anyio.CancelScope | None = None
        self._exec_done: anyio.Event | None = None
        self._monitor_scope: anyio.CancelScope | None = None
        self._activity: str | None = None
        self._stop_request: str | None = None  # why the executor is to stop (None: go on)
        self._last_stop: str | None = None  # why it last stopped
        self._held = False  # the queue's own hold (a pause while no plan runs)
        self._wake: anyio.Event | None = None
        self._delay: Delay | None = None
        self._current: ItemRecord | None = None  # the item whose plan is in flight
        self._current_t0 = 0.0  # its start, on the monotonic clock
        self._plan_uid = ""  # its plan execution, once known
        self._paused_plan: str | None = None  # a paused plan of ours that the executor awaits
        self._foreign_end: dict[str, Any] | None = None  # its plan.finished, if it ended
        self._resume_wanted: list[Any] = []  # pending resume requests (see `_control`)
        # What each running item's documents told so far (progress, conditionals' trips):
        # the item in front (on the engine's run engine) and the overlapping one.
        self._front_watch: ItemWatch | None = None
        self._side_watch: ItemWatch | None = None
        # -- overlapping runs (see `._overlap`) --
        self._side_re: RunEngine | None = None  # the second run engine, built when first used
        self._side: ItemRecord | None = None  # the item overlapping the current one, if any
        self._side_t0 = 0.0
        self._side_paused = False  # its plan paused and its task waits for `resume`
        self._side_resume = False  # `resume` asked its task to resume it
        self._side_ended: tuple[ItemRecord, ItemStatus] | None = None  # its end, not yet seen
        self._side_tg: TaskGroup | None = None  # the executor's own group (overlap tasks)
        self._overlap_scope: anyio.CancelScope | None = None  # a wait for a signal
        self._signalled: dict[str, anyio.Event] = {}  # per watched item: its overlap signal
        self._signals_seen: set[tuple[str, int, str]] = set()  # (uid, attempt, name)
        run_engine.subscribe(self._document_handler(side=False))
        run_engine.register_command("queue_signal", self._signal_command(run_engine))

    # -- host access ---------------------------------------------------------------------------

    @property
    def _clock(self) -> Clock:
        return self._host.clock

    @property
    def executing(self) -> bool:
        """True while the queue executes (from `start` until it stops or finishes)."""
        return self._exec_done is not None

    def _record(self, kind: str, subject: str, payload: dict[str, Any]) -> Event:
        """Write a queue event to the Log and apply the same event to the model."""
        event = self._host.log._emit(kind, subject, payload)
        self._model.apply(event)
        self._durations.feed(event)
        if kind == "queue.conditional":
            self._conditionals.sync(self._model.conditionals)
        return event

    def _ensure_ready(self) -> None:
        """Make sure the model holds what the store held before it is read or changed."""
        if not self._restored and not self._restore_pending:
            self._host.log  # noqa: B018 -- the owner attaches its parts when it opens a Log
            if not self._restored and not self._restore_pending:
                self._attach()  # (a host that does not call the hook itself)
        if self._restore_pending:
            raise QueueStateError(
                "the queue is being read back from its store (a custom LogSink is read once "
                "the engine has started); try again in a moment"
            )

    def _attach(self) -> None:
        """Lifecycle hook, defined by the lifecycle layer (`._control`)."""
        raise NotImplementedError

    def _rebuild(self, events: Iterable[Event]) -> None:
        """Replace the model by the fold of `events` (a restore)."""
        model = QueueModel()
        durations = Durations()
        for event in events:
            model.apply(event)
            durations.feed(event)
        self._model, self._durations = model, durations
        self._conditionals.sync(model.conditionals)
        self._restored = True

    # -- waking the executor -------------------------------------------------------------------

    def _poke(self) -> None:
        """Wake the executor: something it waits for may have changed."""
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.set()

    async def _nap(self) -> None:
        """Wait until poked. Callers check their condition first; no await in between, so
        no poke can be lost. Several tasks may nap at once (an overlap's): one poke wakes
        them all."""
        wake = self._wake
        if wake is None:
            wake = self._wake = anyio.Event()
        await wake.wait()

    def _signal_command(self, run_engine: RunEngine) -> Callable[[Any], None]:
        """The handler of the ``queue_signal`` plan message on `run_engine`."""

        def handler(msg: Any) -> None:
            name = msg.args[0] if msg.args else msg.obj
            item = self._side if run_engine is self._side_re else self._current
            self._signal(str(name), item, run_engine.name)

        return handler

    def _signal(self, name: str, item: ItemRecord | None, source: str) -> None:
        """Defined by the overlap layer (`._overlap`)."""
        raise NotImplementedError

    # -- lookups -------------------------------------------------------------------------------

    def _item(self, uid: object) -> ItemRecord:
        item = self._model.items.get(uid) if isinstance(uid, str) else None
        if item is None:
            raise ItemNotFoundError(
                f"no queue item with uid {uid!r}; items: {list(self._model.items)[:20]}"
            )
        return item

    def _queue_name(self, name: object) -> str:
        if not isinstance(name, str) or name not in self._model.queues:
            raise ItemNotFoundError(
                f"no queue named {name!r}; queues: {self._model.order} "
                "(add one with queue.add_queue(name))"
            )
        return name

    def _not_running(self, item: ItemRecord, what: str) -> None:
        if item.status is ItemStatus.RUNNING:
            raise QueueStateError(
                f"cannot {what} item {item.uid!r}: it is running; truncate() or abort() it "
                "first, or change it once it has ended"
            )

    @staticmethod
    def _check_flag(value: object, what: str) -> bool:
        if not isinstance(value, bool):
            raise QueueArgumentError(f"{what} must be True or False, got {value!r}")
        return value

    # -- progress and conditionals from run documents -----------------------------------------

    def _document_handler(self, *, side: bool) -> Callable[[str, dict[str, Any]], None]:
        """The run-document subscriber of one run engine: the engine's own (the item in
        front) or the second one (`side`: the overlapping item). Documents are routed by the
        run engine that produced them, so each item's are counted and watched on their own."""

        def handler(name: str, doc: dict[str, Any]) -> None:
            watch = self._side_watch if side else self._front_watch
            if watch is not None:
                self._on_document(watch, side, name, doc)

        return handler

    def _on_document(self, watch: ItemWatch, side: bool, name: str, doc: dict[str, Any]) -> None:
        """Count a running item's events and evaluate the conditionals (never raises)."""
        if name == "start" and doc.get("queue_item") == watch.item.uid:
            points = doc.get("num_points")
            if isinstance(points, int) and not isinstance(points, bool):
                watch.expected = (watch.expected or 0) + points
        elif name == "event":
            key = str(doc.get("descriptor", ""))
            seq = doc.get("seq_num")
            if not isinstance(seq, int) or seq <= watch.progress.get(key, 0):
                return  # a replayed event (after a pause) was seen already
            watch.progress[key] = seq
            if self._conditionals.all():
                self._check_conditionals(watch, side, seq, doc)

    def _check_conditionals(
        self, watch: ItemWatch, side: bool, seq: int, doc: dict[str, Any]
    ) -> None:
        data = doc.get("data")
        data = dict(data) if isinstance(data, dict) else {}
        names = {
            **data,
            "data": data,
            "seq_num": seq,
            "events": watch.events,
            "elapsed": self._clock.monotonic() - watch.t0,
        }
        for cond in self._conditionals.check(watch, seq, names):
            self._fire(cond, watch.item, seq, side)

    def _fire(self, cond: Conditional, item: ItemRecord, seq: int, side: bool) -> None:
        """Take a conditional's action on `item`, whose documents tripped it (on the second
        run engine if `side`); defined by the verbs' layer, `._control`."""
        raise NotImplementedError

"""`Queue`: an editable, durable queue of plan items run on the engine's run engine.

This module is the public face: plans and checks registered by name, prompts, the state in
one call (and one subscription), the ETA, statistics and the dry run. The machinery is in the
layers below it: `._core` (model and recording), `._edits`, `._executor`, `._control`
(verbs and lifecycle). See ``docs/queue.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar, overload

from .._log import Subscription
from ..plans import RunEngine, RunState
from ._checks import Check, CheckContext
from ._conditions import Conditional, ItemWatch
from ._control import Control
from ._errors import QueueArgumentError
from ._eta import PlanStats, plan_stats
from ._forecast import item_slot, running_lanes
from ._host import QueueHost
from ._kinds import ALL_KINDS
from ._prompts import Prompt
from ._registry import PlanFunction, check_json
from ._simulate import dry_run
from ._status import DryRun, Eta, Progress, QueueState, QueueStatus
from ._timeline import place

__all__ = ["Queue", "StateFeed"]

P = TypeVar("P", bound=PlanFunction)
C = TypeVar("C", bound=Callable[[CheckContext], Any])

#: Besides its own events, what changes `Queue.state`: the run engine's state, documents.
_STATE_KINDS = (*sorted(ALL_KINDS), "run_engine.state", "run.start", "run.event")


class Queue(Control):
    """An experiment queue: plan items run one after another on a run engine.

    Args:
        host: what the queue runs on (a `QueueHost`: the engine's dispatcher): its Clock,
            its Log (where the queue's state and every edit are recorded, and read back
            after a restart) and its task group (where the executor runs).
        run_engine: the run engine the items' plans run on (the engine's own, so that
            ``engine.panic()`` and ``engine.request_pause()`` reach them).

    The engine builds one (``engine.queue``) and drives its lifecycle; see docs/queue.md.
    """

    def __init__(self, host: QueueHost, run_engine: RunEngine) -> None:
        # Checked by name, not isinstance: a runtime Protocol check reads `host.log`, which
        # would open the engine's store while the engine is being built.
        if not all(hasattr(type(host), name) for name in ("clock", "log", "running")):
            raise QueueArgumentError(
                f"host must provide clock, log, running and service_group (a QueueHost, e.g. "
                f"the engine's dispatcher), got {host!r}"
            )
        if not isinstance(run_engine, RunEngine):
            raise QueueArgumentError(f"run_engine must be a RunEngine, got {run_engine!r}")
        super().__init__(host, run_engine)

    # -- plans and checks ----------------------------------------------------------------------

    @overload
    def plan(self, fn: P, /, *, name: str | None = None) -> P: ...
    @overload
    def plan(self, fn: None = None, /, *, name: str | None = None) -> Callable[[P], P]: ...

    def plan(self, fn: P | None = None, /, *, name: str | None = None) -> P | Callable[[P], P]:
        """Register a plan function by its name (or `name`); returns it unchanged.

        A plan function takes the item's JSON kwargs and returns a plan (a generator of
        `Msg`): ``queue.plan(lambda num: count([det], num=num), name="count")``, or as a
        decorator (``@queue.plan``). Items name it; a store written by one process runs in the
        next, which registers the same names.
        """

        def register(f: P) -> P:
            self._plans.register(f, name)
            return f

        return register if fn is None else register(fn)

    @property
    def plans(self) -> list[str]:
        """The registered plan names."""
        return self._plans.names()

    @overload
    def add_check(
        self, fn: C, /, *, level: str, name: str | None = None, on_fail: str | None = None
    ) -> C: ...
    @overload
    def add_check(
        self, fn: None = None, /, *, level: str, name: str | None = None,
        on_fail: str | None = None,
    ) -> Callable[[C], C]: ...  # fmt: skip

    def add_check(
        self,
        fn: C | None = None,
        /,
        *,
        level: str,
        name: str | None = None,
        on_fail: str | None = None,
    ) -> C | Callable[[C], C]:
        """Register a pre-check at `level` (``execution``, ``queue``, ``item``, ``step``).

        ``fn(context)`` (sync, or async except at step level) passes with True/None and
        fails with False, a reason (str) or an exception. `on_fail`: ``stop`` (default;
        ``pause`` for step checks), ``pause`` or, for item checks, ``skip``. See
        `timecontrol.queue.CheckContext` and docs/queue.md.
        """

        def register(f: C) -> C:
            self._checks.add(f, level, name, on_fail)
            return f

        return register if fn is None else register(fn)

    def remove_check(self, name: str) -> None:
        """Unregister a check by name."""
        self._checks.remove(name)

    def checks(self) -> list[Check]:
        """The registered checks, in the order they run within each level."""
        levels = ("execution", "queue", "item", "step")
        return [check for level in levels for check in self._checks.of(level)]

    # -- conditionals ----------------------------------------------------------------------------

    def add_conditional(
        self,
        condition: str,
        action: str,
        *,
        name: str | None = None,
        start: int = 1,
        frequency: int = 1,
        ntrips: int = 1,
        plans: str | Sequence[str] | None = None,
        item_types: str | Sequence[str] | None = None,
        queues: str | Sequence[str] | None = None,
        plan: str | None = None,
        kwargs: dict[str, Any] | None = None,
        replace: bool = False,
    ) -> Conditional:
        """Act on a running item when `condition` holds on its event documents.

        `condition` is a safe expression over the event's data keys (and ``seq_num``,
        ``events``, ``elapsed``), e.g. ``"det > 5000 and seq_num >= 3"``; it is parsed now,
        never ``eval``-ed. From the `start`-th event on, every `frequency`-th, once it has
        held `ntrips` times in one item, `action` is taken once: ``truncate`` (end the item
        as a success, go on), ``abort`` (abort it, stop the queue), ``cancel`` (stop after
        it), ``pause`` (pause it), ``skip_next`` (skip the next item), ``repeat`` (run a
        copy of the item right after it), ``insert`` (run a new item of plan `plan` with
        JSON `kwargs` right after it; both checked now, like `add`'s). `plans`,
        `item_types`, `queues`: only items of these. See `timecontrol.queue.Conditional`.

        Every running item is watched on its own documents (an overlapping one too), and
        the action applies to the item whose documents tripped it. The definition is
        recorded (``queue.conditional``) and comes back after a restart: adding the same
        definition again under its name changes nothing (a script may add its conditionals
        at every start); another definition under a taken name needs `replace`.
        """
        self._ensure_ready()
        self._check_flag(replace, "replace")
        insert = self._insert_spec(action, plan, kwargs)
        options = {"name": name, "start": start, "frequency": frequency, "ntrips": ntrips,
                   "plans": plans, "item_types": item_types, "queues": queues,
                   **insert}  # fmt: skip
        cond = self._conditionals.build(condition, action, options)
        stored = self._model.conditionals.get(cond.name)
        if stored is not None and stored == cond.spec():
            existing = self._conditionals.get(cond.name)
            if existing is not None:
                return existing  # the same definition (restored, or added before)
        if stored is not None and not replace:
            raise QueueArgumentError(
                f"a conditional named {cond.name!r} exists already with another definition "
                f"({stored['condition']!r}, {stored['action']!r}); pass replace=True or "
                f"remove_conditional({cond.name!r}) first"
            )
        self._record("queue.conditional", cond.name, cond.spec())
        added = self._conditionals.get(cond.name)
        assert added is not None  # (compiled from the event just recorded)
        return added

    def _insert_spec(self, action: object, plan: object, kwargs: object) -> dict[str, Any]:
        """The checked plan and kwargs of an ``insert`` conditional (nothing for others)."""
        if action != "insert":
            if plan is not None or kwargs is not None:
                raise QueueArgumentError(
                    f"plan= and kwargs= go with action='insert' only, got action {action!r} "
                    f"with plan={plan!r}, kwargs={kwargs!r:.100}"
                )
            return {}
        if not isinstance(plan, str):
            raise QueueArgumentError(
                f"action='insert' needs plan= (a registered plan's name), got {plan!r}; "
                f"registered plans: {self._plans.names()}"
            )
        args = check_json(kwargs, "kwargs")
        self._plans.check_kwargs(plan, args)
        return {"plan": plan, "kwargs": args}

    def remove_conditional(self, name: str) -> None:
        """Remove a conditional by name (recorded: it stays removed after a restart)."""
        self._ensure_ready()
        if not isinstance(name, str) or name not in self._model.conditionals:
            raise QueueArgumentError(
                f"no conditional named {name!r}; have {list(self._model.conditionals)}"
            )
        self._record("queue.conditional", name, {"removed": True})

    def conditionals(self) -> list[Conditional]:
        """The conditionals (added here or restored from the store), in the order added."""
        self._ensure_ready()
        return self._conditionals.all()

    # -- prompts -------------------------------------------------------------------------------

    async def ask(
        self,
        question: str,
        choices: Sequence[str],
        timeout: float | None = None,  # noqa: ASYNC109 -- the prompt's deadline (then: default)
        default: str | None = None,
    ) -> str:
        """Ask the operator and wait for `answer` (or, after `timeout` seconds, take
        `default`); returns the choice. Usable from checks, plans (``call``) and scripts."""
        item = "" if self._current is None else self._current.uid
        previous = self._activity
        self._activity = "prompt" if self.executing else previous
        try:
            return await self._prompts.ask(question, choices, timeout, default, item)
        finally:
            if self._activity == "prompt":
                self._activity = previous

    def answer(self, prompt_id: str, choice: str) -> None:
        """Answer an open prompt (`PromptError` for an unknown id or choice). Call it from
        the engine's loop (e.g. a handler of a web request, or ``python -m asyncio``)."""
        self._prompts.answer(prompt_id, choice)

    def prompts(self) -> tuple[Prompt, ...]:
        """The open prompts, oldest first."""
        return self._prompts.pending()

    # -- state ---------------------------------------------------------------------------------

    def state(self) -> QueueState:
        """Everything about the queue now, in one value (see `QueueState`)."""
        self._ensure_ready()
        current = self._current
        runnable = self._model.runnable()
        eta = self.eta()
        status = self._status()
        activity = self._activity if self.executing else None
        if status == "paused" and activity == "item":
            activity = "paused"  # the plan paused; the executor has not looked yet
        return QueueState(
            status=status,
            activity=activity,
            running=None if current is None else current.snapshot(),
            progress=self._progress_of(self._front_watch),
            queue=None if current is None else current.queue,
            items_left=len(runnable),
            pending=tuple(i.snapshot() for i in runnable),
            prompts=self._prompts.pending(),
            delay_remaining=None if self._delay is None else self._delay.remaining,
            run_engine=self._run_engine.state.value,
            last_stop=self._last_stop,
            eta_s=eta.seconds,
            overlapping=None if self._side is None else self._side.snapshot(),
            overlapping_progress=self._progress_of(self._side_watch),
        )

    def _status(self) -> QueueStatus:
        if not self.executing:
            return "idle"
        if self._activity == "waiting":
            return "waiting"
        if self._stop_request is not None:
            return "stopping"
        plan_paused = self._run_engine.state in (RunState.PAUSED, RunState.PAUSING)
        if self._held or (self._current is not None and plan_paused) or self._side_paused:
            return "paused"
        return "running"

    def _progress_of(self, watch: ItemWatch | None) -> Progress | None:
        if watch is None:
            return None
        item = watch.item
        elapsed = self._clock.monotonic() - watch.t0
        estimate = self._durations.estimate(item.plan, item.kwargs, item.item_type)
        events = watch.events
        expected = watch.expected
        fraction: float | None = None
        if expected:
            fraction = min(1.0, events / expected)
        elif estimate:
            fraction = min(1.0, elapsed / estimate)
        return Progress(events, expected, elapsed, estimate, fraction)

    def subscribe(self) -> StateFeed:
        """A feed of `QueueState`: the state now, then a new one after every change
        (changes in a burst give one state). ``async with queue.subscribe() as feed:
        async for state in feed: ...``; it ends when the engine stops."""
        self._ensure_ready()
        return StateFeed(self, self._host.log.subscribe(kinds=_STATE_KINDS))

    # -- ETA, statistics, dry run --------------------------------------------------------------

    def eta(self) -> Eta:
        """When the queue is expected to run out of items, from what the Log has learned:
        durations, and for overlapping items when their signal comes (the next item then
        starts beside them, see docs/queue.md); serial where nothing is known."""
        front, side, ready = running_lanes(self, 0.0)
        slots = [item_slot(self, item) for item in self._model.runnable()]
        running = [lane.slot for lane in (front, side) if lane is not None]
        _placed, end = place(slots, ready=ready, front=front, side=side)
        unknown = sum(1 for slot in (*running, *slots) if slot.duration is None)
        ends_at = None if unknown else self._clock.time() + end
        return Eta(end, unknown, len(running) + len(slots), ends_at)

    async def stats(self) -> dict[str, PlanStats]:
        """Per plan: runs, outcomes and durations of every item the Log has kept."""
        events = await self._host.log.query(kinds="queue.item_finished")
        return plan_stats(events)

    async def dry_run(self, *, simulate: bool = False) -> DryRun:
        """Run the queue on virtual time, without running anything for real, and report.

        Every pending item is checked (its plan registered, its kwargs still fitting) and
        placed on a timeline from now (or the scheduled start), with the delays, the
        durations learned from the Log and the scheduled stop. With `simulate`, items whose
        duration the Log cannot tell are run in a separate in-memory engine on a virtual
        clock (in a worker thread): use it only with simulated devices. Nothing is recorded.
        """
        self._ensure_ready()
        return await dry_run(self, simulate=simulate)

    def __repr__(self) -> str:
        return (
            f"<Queue {self._status()} items={len(self._model.items)} "
            f"left={len(self._model.runnable())} queues={self._model.order}>"
        )


class StateFeed:
    """Queue states as they change (see `Queue.subscribe`)."""

    def __init__(self, queue: Queue, sub: Subscription) -> None:
        self._queue = queue
        self._sub = sub
        self._first = True

    def close(self) -> None:
        """Stop the feed."""
        self._sub.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> QueueState:
        if self._first:
            self._first = False
            return self._queue.state()
        await self._sub.get()  # StopAsyncIteration once closed (the engine stopped)
        while self._sub.get_nowait() is not None:
            pass  # a burst of changes: one state
        return self._queue.state()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

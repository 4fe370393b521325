"""The built-in command handlers: what each message (``set``, ``read``, ``save``, ...) does.

Each handler takes the message and returns the value sent back into the plan; an exception
it raises is thrown into the plan at that message's ``yield``. Sync handlers run directly in
the message loop; async ones are awaited inside the drive's cancel scope, so that a hard
pause, a suspension or an ending interrupts them.

``read`` takes one object (bluesky <= 1.15: ``Msg("read", det)``) or several (bluesky 1.16:
``Msg("read", det, motor)``, the objects in ``obj`` and ``args``). Several are read
together, their readings merged into the value sent back and, inside ``create``/``save``,
each added to the event being bundled, so that the descriptor describes them all. Outside a
bundle a read only reads, as bluesky's own run engine does.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import Any

import anyio

from ._compat import versions
from ._core import PAUSE, REPLAYED_CALL, SUSPEND, RunCore
from ._devices import await_status, maybe_await
from ._documents import OpenRun, new_uid
from ._errors import IllegalMessageSequence, PlanArgumentError, StatusFailed
from ._records import CommandHandler, obj_name
from ._state import RunState
from ._status_watch import watch_failure
from ._suspenders import Suspender

__all__ = ["SUSPENSION_WAIT", "CommandHandlers", "configuration_of", "read_together"]

#: What a suspension's ``wait_for`` message waits for: the suspenders to clear (bluesky's
#: suspension waits with a ``wait_for`` message too).
SUSPENSION_WAIT: Any = object()

_S = RunState


class _TaskStatus:
    """A coroutine returned by a device's ``set``/``trigger``, run as a task of the drive."""

    def __init__(self) -> None:
        self._done = anyio.Event()
        self._exc: BaseException | None = None
        self._callbacks: list[Callable[[_TaskStatus], Any]] = []
        self.value: Any = None

    async def run(self, coro: Awaitable[Any]) -> None:
        try:
            self.value = await coro
        except anyio.get_cancelled_exc_class():
            self._exc = StatusFailed("cancelled: the run paused, suspended or ended")
            raise
        except Exception as exc:
            self._exc = exc
        finally:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
            for callback in callbacks:
                callback(self)

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def success(self) -> bool:
        """True once finished without an error (bluesky's Status interface)."""
        return self._done.is_set() and self._exc is None

    def exception(self, timeout: float | None = 0.0) -> BaseException | None:
        """Why it failed (None if it succeeded or is still running)."""
        return self._exc

    def add_callback(self, callback: Callable[[_TaskStatus], Any]) -> None:
        """Call ``callback(self)`` when it finishes (at once if it has)."""
        if self._done.is_set():
            callback(self)
        else:
            self._callbacks.append(callback)

    async def wait(self) -> Any:
        await self._done.wait()
        if self._exc is not None:
            raise self._exc
        return self.value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.wait().__await__()


def _objects_to_read(msg: Any) -> list[Any]:
    """The objects of a ``read`` message: ``obj`` then ``args`` (none if ``obj`` is None)."""
    objs = [] if msg.obj is None else [msg.obj, *msg.args]
    for obj in objs:
        if not callable(getattr(obj, "read", None)):
            raise PlanArgumentError(
                f"'read' needs readable objects (with a read() method), got {obj!r} in {msg!r}"
            )
    return objs


async def read_together(objs: list[Any]) -> list[dict[str, Any]]:
    """``obj.read()`` of every object, the awaitable ones awaited concurrently, in order.

    The first error (in the objects' order) is raised once every read has finished.
    """
    results: list[Any] = []
    try:
        for obj in objs:
            results.append(obj.read())
    except BaseException:
        for started in results:  # do not leave coroutines that nobody will await
            if inspect.iscoroutine(started):
                started.close()
        raise
    pending = [i for i, result in enumerate(results) if inspect.isawaitable(result)]
    if len(pending) == 1:
        results[pending[0]] = await results[pending[0]]
    elif pending:
        errors: list[BaseException] = []

        async def finish(i: int) -> None:
            try:
                results[i] = await results[i]
            except Exception as exc:  # reported after the others finish, not as a group
                errors.append(exc)

        async with anyio.create_task_group() as tg:
            for i in pending:
                tg.start_soon(finish, i)
        if errors:
            raise errors[0]
    for obj, reading in zip(objs, results, strict=True):
        if not isinstance(reading, dict):
            raise PlanArgumentError(
                f"{obj_name(obj)}.read() returned {reading!r}; read() must return a dict of "
                "readings, {data key: {'value': ..., 'timestamp': ...}}"
            )
    return results


class CommandHandlers(RunCore):
    """The built-in commands of the run engine (mixed into `RunEngine`)."""

    def _builtin_handlers(self) -> dict[str, CommandHandler]:
        return {
            "null": self._cmd_null,
            "set": self._cmd_set,
            "trigger": self._cmd_trigger,
            "read": self._cmd_read,
            "sleep": self._cmd_sleep,
            "checkpoint": self._cmd_checkpoint,
            "clear_checkpoint": self._cmd_clear_checkpoint,
            "pause": self._cmd_pause,
            "open_run": self._cmd_open_run,
            "close_run": self._cmd_close_run,
            "create": self._cmd_create,
            "save": self._cmd_save,
            "drop": self._cmd_drop,
            "stage": self._cmd_stage,
            "unstage": self._cmd_unstage,
            "call": self._cmd_call,
            "rewindable": self._cmd_rewindable,
            "install_suspender": self._cmd_install_suspender,
            "remove_suspender": self._cmd_remove_suspender,
            "subscribe": self._cmd_subscribe,
            "unsubscribe": self._cmd_unsubscribe,
            "_start_suspender": self._cmd_null,
            "_resume_from_suspender": self._cmd_resume_from_suspender,
        }

    def _join_group(self, group: Any, status: Any) -> None:
        """Add `status` to `group` (for ``wait``) and watch it for a failure (bluesky throws
        it into the plan even if the plan never waits)."""
        self._groups.setdefault(group, []).append(status)
        if status is not None:
            replay = self._replay
            watch_failure(
                status, self._handle, lambda st, exc: self._status_failed(replay, st, exc)
            )

    def _status_failed(self, replay: Any, status: Any, error: BaseException) -> None:
        """A grouped status failed: thrown into the plan at its next message, if the plan
        that started it is still running (not pausing, suspended, ending or over) and no
        ``wait`` has raised it already."""
        if replay is not self._replay or not replay.frames or self._state is not _S.RUNNING:
            return
        if id(status) not in self._failures_raised:
            self._status_failures.setdefault(id(status), error)

    def _failure_raised(self, status: Any) -> None:
        """A ``wait`` raised (or covered) the failure of `status`: not thrown again."""
        self._failures_raised[id(status)] = status
        self._status_failures.pop(id(status), None)

    def _adopt(self, status: Any) -> Any:
        """A coroutine returned by a device starts now, as a task of this drive."""
        if inspect.iscoroutine(status):
            task_status = _TaskStatus()
            assert self._tg is not None
            self._tg.start_soon(task_status.run, status)
            return task_status
        return status

    # -- devices -----------------------------------------------------------------------------

    def _cmd_null(self, msg: Any) -> None:
        return None

    def _cmd_set(self, msg: Any) -> Any:
        obj = msg.obj
        kwargs = dict(msg.kwargs)
        group = kwargs.pop("group", None)
        status = self._adopt(obj.set(*msg.args, **kwargs))
        self._movables[id(obj)] = obj
        self._seen[id(obj)] = obj
        self._join_group(group, status)
        return status

    def _cmd_trigger(self, msg: Any) -> Any:
        obj = msg.obj
        group = msg.kwargs.get("group")
        status = self._adopt(obj.trigger())
        self._seen[id(obj)] = obj
        self._join_group(group, status)
        return status

    async def _cmd_read(self, msg: Any) -> Any:
        objs = _objects_to_read(msg)
        for obj in objs:
            self._seen[id(obj)] = obj
        readings = await read_together(objs)
        run = self._runs.get(msg.run)
        if run is not None and run.bundling:
            for obj, reading in zip(objs, readings, strict=True):
                if run.cached_description(obj) is None:
                    run.cache_description(obj, dict(await maybe_await(obj.describe())))
                run.add_reading(obj, reading)
        if len(readings) == 1:
            return readings[0]  # one object: its own reading, as it always was
        merged: dict[str, Any] = {}
        for reading in readings:
            merged.update(reading)
        return merged

    async def _cmd_sleep(self, msg: Any) -> None:
        seconds = msg.args[0] if msg.args else msg.kwargs.get("time", 0)
        if not (isinstance(seconds, int | float) and seconds >= 0):
            raise PlanArgumentError(f"sleep needs a number of seconds >= 0, got {seconds!r}")
        clock = self.host.clock
        await clock.sleep_until(clock.monotonic() + seconds)

    async def _cmd_stage(self, msg: Any) -> Any:
        # Only a Stageable (stage() *and* unstage(), bluesky's protocol) is staged: an object
        # with one of the two could not be put back as it was.
        obj = msg.obj
        self._seen[id(obj)] = obj
        result = None
        if _stageable(obj):
            result = await self._stage_step(msg, obj.stage)
            self._staged[id(obj)] = obj  # clean-up unstages it on every exit path
        self._reset_checkpoint()
        return result

    async def _cmd_unstage(self, msg: Any) -> Any:
        obj = msg.obj
        self._staged.pop(id(obj), None)
        result = None
        if _stageable(obj):
            result = await self._stage_step(msg, obj.unstage)
        self._reset_checkpoint()
        return result

    async def _stage_step(self, msg: Any, method: Any) -> Any:
        """``stage()``/``unstage()``: with a ``group`` (bluesky 1.16) the status joins the
        group and 'wait' waits for it; without, it is waited for here."""
        result = self._adopt(method())
        if "group" in msg.kwargs:
            self._join_group(msg.kwargs["group"], result)
            return result
        return await await_status(result)

    async def _cmd_call(self, msg: Any) -> Any:
        fn = msg.obj
        if not callable(fn):
            raise PlanArgumentError(f"'call' needs a callable as obj, got {fn!r}")
        frames = self._replay.frames
        if not (frames and frames[-1].replay):
            return await maybe_await(fn(*msg.args, **msg.kwargs))
        token = REPLAYED_CALL.set(True)
        try:
            return await maybe_await(fn(*msg.args, **msg.kwargs))
        finally:
            REPLAYED_CALL.reset(token)

    # -- checkpoints and pauses --------------------------------------------------------------

    def _cmd_checkpoint(self, msg: Any) -> None:
        for run in self._runs.values():
            if run.bundling:
                raise IllegalMessageSequence(
                    f"'checkpoint' between 'create' and 'save' (stream {run.bundle_name!r}): "
                    "a replay could not rebuild a half-read event"
                )
        self._reset_checkpoint()
        if self._deferred:
            # The deferred pause lands here, at once: nothing since this checkpoint to replay.
            self._deferred = False
            self._raise(PAUSE, cancel=False)

    def _cmd_clear_checkpoint(self, msg: Any) -> None:
        self._replay.clear_checkpoint()

    def _cmd_pause(self, msg: Any) -> None:
        defer = bool(msg.kwargs.get("defer", msg.args[0] if msg.args else False))
        self._request_pause(defer, None, None, "plan")

    def _cmd_rewindable(self, msg: Any) -> bool:
        value = msg.args[0] if msg.args else msg.kwargs.get("rewindable")
        if value is not None:
            self._set_rewindable(bool(value))
        return self._replay.rewindable

    # -- runs and documents ------------------------------------------------------------------

    async def _cmd_open_run(self, msg: Any) -> str:
        if msg.run in self._runs:
            raise IllegalMessageSequence(
                f"a run{'' if msg.run is None else ' ' + repr(msg.run)} is already open; "
                "close it first or give the new one another run key"
            )
        self._scan_id = await self._next_scan_id(self.md)
        self.md["scan_id"] = self._scan_id  # persistent, as in bluesky's RE.md
        # bluesky's precedence: the call's metadata, then the open_run message's, then the
        # plan's type and name, then the persistent metadata (run_engine.md).
        md = {**self.md, **self._plan_md, **msg.kwargs, **self._metadata}
        md.setdefault("versions", versions())
        md = self._final_metadata(md)
        start = {
            **md,
            "uid": new_uid(),
            "time": self.host.clock.time(),
            "plan_uid": self._plan_uid,
        }
        run = OpenRun(msg.run, start)
        self._runs[msg.run] = run
        self._run_uids.append(run.uid)
        self._emit("start", start, run.uid)
        if self.record_interruptions:
            self._emit("descriptor", run.interruptions_descriptor(start["time"]), run.uid)
        self._reset_checkpoint()
        return run.uid

    def _cmd_close_run(self, msg: Any) -> str:
        run = self._run_for(msg)
        if run.bundling:
            raise IllegalMessageSequence(
                f"'close_run' while the event of stream {run.bundle_name!r} is open"
            )
        exit_status = msg.kwargs.get("exit_status") or "success"
        reason = msg.kwargs.get("reason") or ""
        del self._runs[msg.run]
        self._emit("stop", run.stop(exit_status, reason, self.host.clock.time()), run.uid)
        self._reset_checkpoint()
        return run.uid

    def _cmd_create(self, msg: Any) -> None:
        name = msg.kwargs.get("name") or (msg.args[0] if msg.args else "primary")
        self._run_for(msg).create(str(name))

    async def _cmd_save(self, msg: Any) -> None:
        run = self._run_for(msg)
        name, read = run.bundle()
        if not read:
            return  # nothing read: no empty events
        now = self.host.clock.time()
        objs = [o for o, _ in read]
        if name not in run.descriptors:
            configuration = {obj_name(o) or repr(o): await configuration_of(o) for o in objs}
            descriptor = run.descriptor(name, objs, configuration, now)
            if descriptor is not None:
                self._emit("descriptor", descriptor, run.uid)
        else:
            run.descriptor(name, objs, {}, now)  # checks the same devices
        await self._save_assets(run, name, objs)
        self._emit("event", run.event(name, read, now), run.uid)

    async def _save_assets(self, run: OpenRun, stream: str, objs: list[Any]) -> None:
        """Hook: the external assets of an event's devices (`._collect` implements it)."""

    def _cmd_drop(self, msg: Any) -> None:
        run = self._run_for(msg)
        if not run.bundling:
            raise IllegalMessageSequence("'drop' without 'create': no event is being bundled")
        run.drop()

    def _cmd_subscribe(self, msg: Any) -> int:
        args = list(msg.args)
        if msg.obj is not None:
            args.insert(0, msg.obj)
        callback = next((a for a in args if callable(a)), None)
        name = next((a for a in args if isinstance(a, str)), msg.kwargs.get("name", "all"))
        if callback is None:
            raise PlanArgumentError(f"subscribe needs a callback, got {msg!r}")
        token = self._add_subscriber(callback, name)
        self._temp_subscriptions.append(token)
        self._reset_checkpoint()
        view = self._token_view
        return token if view is None else view.outward(token)

    def _cmd_unsubscribe(self, msg: Any) -> None:
        # bluesky's stub: Msg("unsubscribe", None, token=t); older plans: the token in args
        token = msg.kwargs.get("token", msg.args[0] if msg.args else msg.obj)
        view = self._token_view
        if view is not None:
            token = view.inward(token)
        if token is not None:
            self._subscribers.pop(token, None)
        self._reset_checkpoint()

    # -- suspenders --------------------------------------------------------------------------

    def _cmd_install_suspender(self, msg: Any) -> None:
        suspender = msg.obj if msg.obj is not None else msg.args[0]
        if not isinstance(suspender, Suspender):
            raise PlanArgumentError(f"install_suspender needs a Suspender, got {suspender!r}")
        if suspender not in self._plan_suspenders:
            self._plan_suspenders.append(suspender)
            if self._tg is not None and suspender.poll is not None:
                self._tg.start_soon(self._watch, suspender)
        self._reset_checkpoint()
        suspender.install(self)

    def _cmd_remove_suspender(self, msg: Any) -> None:
        suspender = msg.obj if msg.obj is not None else msg.args[0]
        if suspender in self._plan_suspenders:
            self._plan_suspenders.remove(suspender)
            if suspender not in self._suspenders:
                suspender.remove(self)
        self._reset_checkpoint()

    async def _cmd_wait_for_suspenders(self, msg: Any) -> bool:
        clock = self.host.clock
        while True:
            tripped = [s for s in self._all_suspenders() if s.check()]
            if tripped and self._state is _S.RUNNING:
                self._set_state(_S.SUSPENDING)
            pause = 0.0
            while tripped:
                pause = max([pause, *(s.sleep for s in tripped)])
                event = anyio.Event()
                self._suspenders_changed = event
                await event.wait()
                tripped = [s for s in self._all_suspenders() if s.tripped]
            if pause > 0:
                await clock.sleep_until(clock.monotonic() + pause)
            if not any(s.check() for s in self._all_suspenders()):
                return True

    async def _cmd_resume_from_suspender(self, msg: Any) -> None:
        # The suspension is over: the post-plan, then the replay (already on the stack) run.
        (replayed,) = msg.args
        if self._state is _S.SUSPENDING:
            self._set_state(_S.RUNNING)
        await self._resume_seen_devices()
        self._record("plan.rewound", self._plan_uid, {"messages": replayed})
        if any(s.tripped for s in self._all_suspenders()):
            self._raise(SUSPEND, cancel=False)  # another one tripped meanwhile


def _stageable(obj: Any) -> bool:
    return callable(getattr(obj, "stage", None)) and callable(getattr(obj, "unstage", None))


async def configuration_of(obj: Any) -> dict[str, Any]:
    """The configuration block of a descriptor for `obj` (empty if it has none)."""
    config: dict[str, Any] = {"data": {}, "timestamps": {}, "data_keys": {}}
    if callable(getattr(obj, "read_configuration", None)):
        values = await maybe_await(obj.read_configuration())
        config["data"] = {k: v["value"] for k, v in values.items()}
        config["timestamps"] = {k: v["timestamp"] for k, v in values.items()}
    if callable(getattr(obj, "describe_configuration", None)):
        config["data_keys"] = dict(await maybe_await(obj.describe_configuration()))
    return config

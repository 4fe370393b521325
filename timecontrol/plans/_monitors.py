"""bluesky's ``monitor``, ``unmonitor`` and ``input`` commands.

``Msg("monitor", obj, name=stream, **kwargs)`` inside a run emits the descriptor of stream
`stream` (default ``"<obj name>_monitor"``) at once, then an event in it every time `obj`
reports a new value, until ``Msg("unmonitor", obj)`` or the end of the run. `obj` is either
ophyd-async style (``subscribe_reading(callback)`` gives the readings) or ophyd style
(``subscribe(callback, **kwargs)``; the callback only says that something changed, and the
object is read). Callbacks may come from any thread: events are composed on the loop, in the
order the values came. Monitoring an object twice is an `IllegalMessageSequence`.

``Msg("input", None, prompt="> ")`` writes the prompt and sends back the line read from
standard input, without its newline; the read happens in a worker thread, so the loop (and the
engine's scheduled jobs) keep running meanwhile.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio.to_thread

from ._collect import Collecting
from ._commands import configuration_of
from ._devices import maybe_await
from ._errors import IllegalMessageSequence, PlanArgumentError
from ._loop import LoopHandle
from ._records import CommandHandler, obj_name

__all__ = ["Monitors"]


@dataclass(slots=True)
class _Monitor:
    """One monitored object: its run, stream and the callback that was subscribed."""

    obj: Any
    run_key: Any
    stream: str
    callback: Callable[..., None]
    active: bool = True


class Monitors(Collecting):
    """``monitor``, ``unmonitor`` and ``input`` (mixed into `RunEngine`)."""

    def _monitor_handlers(self) -> dict[str, CommandHandler]:
        return {
            "monitor": self._cmd_monitor,
            "unmonitor": self._cmd_unmonitor,
            "input": self._cmd_input,
        }

    async def _cmd_monitor(self, msg: Any) -> None:
        obj = msg.obj
        if msg.args:
            raise PlanArgumentError(f"'monitor' takes no positional arguments, got {msg!r}")
        run = self._run_for(msg)
        if id(obj) in self._monitors:
            raise IllegalMessageSequence(
                f"'monitor' of {obj_name(obj) or obj!r}, which is already monitored"
            )
        kwargs = dict(msg.kwargs)
        stream = str(kwargs.pop("name", None) or f"{obj_name(obj)}_monitor")
        by_reading = callable(getattr(obj, "subscribe_reading", None))
        if not by_reading and not callable(getattr(obj, "subscribe", None)):
            raise PlanArgumentError(
                f"'monitor' needs an object with subscribe_reading() or subscribe(), got {obj!r}"
            )
        if run.cached_description(obj) is None:
            run.cache_description(obj, dict(await maybe_await(obj.describe())))
        configuration = {obj_name(obj) or repr(obj): await configuration_of(obj)}
        doc = run.descriptor(stream, [obj], configuration, self.host.clock.time())
        if doc is not None:
            self._emit("descriptor", doc, run.uid)
        monitor = _Monitor(obj, msg.run, stream, lambda *a, **k: None)
        monitor.callback = self._monitor_callback(monitor, by_reading)
        self._monitors[id(obj)] = monitor
        if by_reading:
            obj.subscribe_reading(monitor.callback)
        else:
            obj.subscribe(monitor.callback, **kwargs)
        self._reset_checkpoint()

    def _monitor_callback(self, monitor: _Monitor, by_reading: bool) -> Callable[..., None]:
        handle = self._handle or LoopHandle()

        def on_value(*args: Any, **kwargs: Any) -> None:
            reading = args[0] if by_reading and args else None
            if handle.in_loop_thread():
                self._monitor_event(monitor, reading)
            else:
                handle.call_soon(self._monitor_event, monitor, reading)

        return on_value

    def _monitor_event(self, monitor: _Monitor, reading: Any) -> None:
        """One event of a monitored object (on the loop); dropped once it is unmonitored."""
        run = self._runs.get(monitor.run_key)
        if not monitor.active or run is None:
            return
        try:
            if reading is None:
                reading = monitor.obj.read()
            if not isinstance(reading, dict):
                raise PlanArgumentError(
                    f"{obj_name(monitor.obj)}.read() returned {reading!r} in a monitor; a "
                    "monitored object needs a synchronous read() (or subscribe_reading)"
                )
            doc = run.event(monitor.stream, [(monitor.obj, reading)], self.host.clock.time())
            self._emit("event", doc, run.uid)
        except Exception as exc:  # a callback thread has nobody to raise to: record it
            self._cleanup_failed(obj_name(monitor.obj), "monitor event", repr(exc))

    async def _cmd_unmonitor(self, msg: Any) -> None:
        monitor = self._monitors.get(id(msg.obj))
        if monitor is None:
            raise IllegalMessageSequence(
                f"'unmonitor' of {obj_name(msg.obj) or msg.obj!r}, which is not monitored"
            )
        self._end_monitor(monitor)
        self._reset_checkpoint()

    def _end_monitor(self, monitor: _Monitor) -> None:
        monitor.active = False
        self._monitors.pop(id(monitor.obj), None)
        clear_sub = getattr(monitor.obj, "clear_sub", None)
        if callable(clear_sub):
            try:
                clear_sub(monitor.callback)
            except Exception as exc:
                self._cleanup_failed(obj_name(monitor.obj), "unmonitor", repr(exc))

    def _clear_monitors(self, run_key: Any = ...) -> None:
        """Unsubscribe the monitors of run `run_key` (every run's if not given)."""
        for monitor in list(self._monitors.values()):
            if run_key is ... or monitor.run_key == run_key:
                self._end_monitor(monitor)

    def _cmd_close_run(self, msg: Any) -> str:
        self._run_for(msg)  # no open run: the error names the message, as before
        self._clear_monitors(msg.run)
        return super()._cmd_close_run(msg)

    async def _cmd_input(self, msg: Any) -> str:
        prompt = str(msg.kwargs.get("prompt", msg.args[0] if msg.args else ""))
        sys.stdout.write(prompt)
        sys.stdout.flush()
        line: str = await anyio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        return line.rstrip("\n")

"""More of bluesky's commands, so that its plans run unchanged: ``declare_stream``,
``execute``, ``prepare``, ``kickoff``, ``complete``, ``stop``, ``configure``, ``locate``,
``check_value``, ``wait_for`` and ``RE_class``.

Statuses returned by devices join the message's ``group`` like those of ``set`` and
``trigger``, so ``Msg("wait", group=...)`` waits for them (and a failure raises
`StatusFailed`).
"""

from __future__ import annotations

import warnings
from typing import Any

from ._commands import CommandHandlers, configuration_of
from ._devices import maybe_await
from ._errors import IllegalMessageSequence, PlanArgumentError
from ._gather import gather
from ._records import CommandHandler, obj_name

__all__ = ["MoreCommands"]


def _method(obj: Any, name: str, command: str) -> Any:
    method = getattr(obj, name, None)
    if not callable(method):
        raise PlanArgumentError(f"{command!r} needs an object with a {name}() method, got {obj!r}")
    return method


class MoreCommands(CommandHandlers):
    """bluesky's less common commands (mixed into `RunEngine`)."""

    def _more_handlers(self) -> dict[str, CommandHandler]:
        return {
            "declare_stream": self._cmd_declare_stream,
            "execute": self._cmd_execute,
            "prepare": self._cmd_prepare,
            "kickoff": self._cmd_kickoff,
            "complete": self._cmd_complete,
            "stop": self._cmd_stop,
            "configure": self._cmd_configure,
            "locate": self._cmd_locate,
            "check_value": self._cmd_check_value,
            "RE_class": self._cmd_re_class,
        }

    def _grouped(self, msg: Any, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call ``msg.obj.<method>(*args, **kwargs)``; its status joins the message's group."""
        obj = msg.obj
        status = self._adopt(_method(obj, method, msg.command)(*args, **kwargs))
        self._seen[id(obj)] = obj
        self._join_group(msg.kwargs.get("group"), status)
        return status

    def _cmd_execute(self, msg: Any) -> Any:
        args = msg.kwargs.get("execute_args", ())
        kwargs = dict(msg.kwargs.get("execute_kwargs", {}))
        return self._grouped(msg, "execute", *args, **kwargs)

    def _cmd_prepare(self, msg: Any) -> Any:
        kwargs = {k: v for k, v in msg.kwargs.items() if k != "group"}
        return self._grouped(msg, "prepare", *msg.args, **kwargs)

    def _cmd_kickoff(self, msg: Any) -> Any:
        kwargs = {k: v for k, v in msg.kwargs.items() if k != "group"}
        return self._grouped(msg, "kickoff", *msg.args, **kwargs)

    def _cmd_complete(self, msg: Any) -> Any:
        kwargs = {k: v for k, v in msg.kwargs.items() if k != "group"}
        return self._grouped(msg, "complete", *msg.args, **kwargs)

    async def _cmd_stop(self, msg: Any) -> Any:
        return await maybe_await(_method(msg.obj, "stop", "stop")())

    async def _cmd_configure(self, msg: Any) -> Any:
        run = self._runs.get(msg.run)
        if run is not None and run.bundling:
            raise IllegalMessageSequence(
                f"'configure' of {obj_name(msg.obj)} between 'create' and 'save': the event "
                "being bundled would mix two configurations"
            )
        configure = _method(msg.obj, "configure", "configure")
        result = await maybe_await(configure(*msg.args, **msg.kwargs))
        if run is not None:
            # The next event of this device needs a new descriptor with its new configuration.
            run.forget_device(msg.obj)
        return result

    async def _cmd_locate(self, msg: Any) -> Any:
        if "squeeze" in msg.kwargs:
            warnings.warn(
                "The locate message ignores squeeze: one object returns a single location and "
                "several objects return a list (as in bluesky)",
                UserWarning,
                stacklevel=1,
            )
        objs = [msg.obj, *msg.args]
        methods = [_method(o, "locate", "locate") for o in objs]
        locations = await gather([method() for method in methods])  # at the same moment
        return locations[0] if len(locations) == 1 else locations

    async def _cmd_check_value(self, msg: Any) -> None:
        await maybe_await(_method(msg.obj, "check_value", "check_value")(*msg.args, **msg.kwargs))

    def _cmd_re_class(self, msg: Any) -> type:
        return type(self)

    async def _cmd_declare_stream(self, msg: Any) -> Any:
        run = self._run_for(msg)
        name = str(msg.kwargs.get("name") or "primary")
        objs = [o for o in (msg.obj, *msg.args) if o is not None]
        for obj in objs:
            self._seen[id(obj)] = obj
            if run.cached_description(obj) is None:
                describe = _method(obj, "describe", "declare_stream")
                run.cache_description(obj, dict(await maybe_await(describe())))
        configuration = {obj_name(o) or repr(o): await configuration_of(o) for o in objs}
        doc = run.descriptor(name, objs, configuration, self.host.clock.time())
        if doc is not None:
            self._emit("descriptor", doc, run.uid)
        return doc

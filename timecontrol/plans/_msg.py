"""Messages: what a plan asks the run engine to do.

A plan is a generator that yields `Msg` objects; the engine processes each one and sends its
value back into the generator (``reading = yield Msg("read", det)``). The fields are those of
bluesky's ``Msg`` (command, obj, args, kwargs, run) and so is the constructor, so plans written
for one read naturally for the other, and the engine accepts any object with those attributes.
"""

from __future__ import annotations

from collections.abc import Generator, Hashable
from typing import Any, NamedTuple, TypeAlias

__all__ = ["Msg", "Plan"]


class _MsgFields(NamedTuple):
    command: str
    obj: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    run: Hashable | None


class Msg(_MsgFields):
    """One instruction to the run engine.

    ``Msg(command, obj=None, *args, run=None, **kwargs)``: for example
    ``Msg("set", motor, 5.0, group="move")`` or ``Msg("sleep", None, 2.0)``.

    Attributes:
        command: what to do (``"set"``, ``"read"``, ``"checkpoint"``, ... or a registered
            custom command).
        obj: the device (or callable, for ``"call"``) the command acts on, or None.
        args: positional arguments of the command.
        kwargs: keyword arguments of the command.
        run: which open run the message belongs to, when a plan has several (None: the default).
    """

    __slots__ = ()

    def __new__(
        cls,
        command: str,
        obj: Any = None,
        *args: Any,
        run: Hashable | None = None,
        **kwargs: Any,
    ) -> Msg:
        # A NamedTuple underneath keeps the bluesky shape: positional unpacking into five
        # fields, `_replace`, `_asdict` and equality by value all work as plans expect.
        return _MsgFields.__new__(cls, command, obj, args, kwargs, run)

    def __repr__(self) -> str:
        return (
            f"Msg({self.command!r}, obj={self.obj!r}, args={self.args!r}, "
            f"kwargs={self.kwargs!r}, run={self.run!r})"
        )


#: What a plan is: a generator of messages that receives each message's value and may return
#: a result (which `RunEngine.run` hands back as ``RunResult.plan_result``).
Plan: TypeAlias = Generator[Any, Any, Any]

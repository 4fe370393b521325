"""Decorators: limited coroutines that keep their signature, for functions and methods.

Every decorator returns a real ``async def`` function made with `functools.wraps`, not a
callable object: `inspect.iscoroutinefunction`, `inspect.signature`, ``engine.action`` and
type checkers (through ParamSpec) all see the original function, and as a plain function it
binds to instances like any method, at no extra cost.

Which limiter a call goes through:

* ``@limiter`` (a `Command`) and ``@watchdog`` (a `Control`): that object, for every call.
* ``@command(...)``: one new `Command` per instance for methods (per function otherwise).
  Instances are found by identity in a table of weak references, so nothing is stored on them
  (copies and pickles of an instrument never share or carry a limiter).
* ``@limited_by("attr")`` / ``@guarded_by("attr")``: the `Command` / `Control` found on the
  instance under that attribute (a dotted path is allowed), e.g. one per instrument made in
  ``__init__``, or one per bus shared by the instruments on it.
"""

from __future__ import annotations

import functools
import inspect
import operator
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypedDict, TypeVar, Unpack

from .._clock import Clock
from .._log import Log
from ._command import Command, Mode, Since
from ._control import Control
from ._errors import LimiterConfigError, NotAsyncError

__all__ = [
    "CommandDecorator",
    "check_async",
    "command",
    "guarded_by",
    "limited_by",
    "limiter_of",
    "watchdog_of",
    "wrap_command",
    "wrap_control",
]

P = ParamSpec("P")
R = TypeVar("R")

_ATTR = "__timecontrol_limiter__"


class CommandDecorator(Protocol):
    """What `command`, `limited_by` and `guarded_by` return: a signature-keeping decorator."""

    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Callable[P, Coroutine[Any, Any, R]]:
        """Wrap `fn`; the result has its name, docstring, signature and types."""
        ...


def check_async(fn: object, what: str) -> None:
    """Raise `NotAsyncError` unless `fn` is an ``async def`` function (or async callable)."""
    if inspect.iscoroutinefunction(fn) or (
        callable(fn)
        and not inspect.isroutine(fn)
        and inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004
    ):
        return
    kind = "a class" if inspect.isclass(fn) else f"a {type(fn).__name__}"
    raise NotAsyncError(
        f"{what} must be an async function (async def), got {fn!r} ({kind}); "
        "a limiter awaits the call, so it cannot limit a plain function"
    )


def _label(instance: object) -> str:
    name = getattr(instance, "name", None)
    return name if isinstance(name, str) and name else f"0x{id(instance):x}"


def _set_lookup(wrapper: Callable[..., Any], lookup: Callable[[object | None], object]) -> None:
    setattr(wrapper, _ATTR, lookup)


def wrap_command(
    fn: Callable[P, Awaitable[R]],
    *,
    shared: Command | None = None,
    get: Callable[[tuple[Any, ...]], Command] | None = None,
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Build the wrapper: `shared` for one fixed limiter (the fast path), else `get(args)`."""
    check_async(fn, "the decorated function")
    if shared is not None:
        # Bound methods fetched once: the call then costs two Python calls and a comparison.
        try_start, acquire, begin = shared._try_start, shared._acquire, shared._begin
        release = shared._release
        if shared.since == "end":

            @functools.wraps(fn)
            async def call_end(*args: P.args, **kwargs: P.kwargs) -> R:
                if not try_start():
                    await acquire()  # counted from ends: the start needs no `_begin`
                try:
                    return await fn(*args, **kwargs)
                finally:
                    release()

            wrapper = call_end
        else:

            @functools.wraps(fn)
            async def call(*args: P.args, **kwargs: P.kwargs) -> R:
                if not try_start() and await acquire():
                    begin()
                return await fn(*args, **kwargs)

            wrapper = call
        _set_lookup(wrapper, lambda _instance: shared)
        return wrapper

    assert get is not None
    find = get

    @functools.wraps(fn)
    async def call_each(*args: P.args, **kwargs: P.kwargs) -> R:
        limiter = find(args)
        if not limiter._try_start() and await limiter._acquire():
            limiter._begin()
        if not limiter._since_end:
            return await fn(*args, **kwargs)
        try:
            return await fn(*args, **kwargs)
        finally:
            limiter._release()

    return call_each


def wrap_control(
    fn: Callable[P, Awaitable[R]],
    *,
    shared: Control | None = None,
    get: Callable[[tuple[Any, ...]], Control] | None = None,
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Build a guarded wrapper: `shared` for one fixed watchdog, else `get(args)`."""
    check_async(fn, "the decorated function")
    if shared is not None:
        enter = shared._guard_enter

        @functools.wraps(fn)
        async def call(*args: P.args, **kwargs: P.kwargs) -> R:
            enter()
            return await fn(*args, **kwargs)

        _set_lookup(call, lambda _instance: shared)
        return call

    assert get is not None
    find = get

    @functools.wraps(fn)
    async def call_each(*args: P.args, **kwargs: P.kwargs) -> R:
        find(args)._guard_enter()
        return await fn(*args, **kwargs)

    return call_each


def _first_param_is_self(fn: Callable[..., Any]) -> bool:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    return bool(params) and params[0].name == "self"


class _PerInstance:
    """One `Command` per instance, created on first use, dropped with the instance."""

    __slots__ = ("_fn", "_prefix", "_table", "_template")

    def __init__(self, template: Command, fn: Callable[..., Any], prefix: str) -> None:
        self._template = template
        self._fn = fn
        self._prefix = prefix
        # id(instance) -> (weak reference to it, its limiter). Keyed by identity, so that
        # unhashable instances (dataclasses with eq=True) work and equal ones stay apart.
        self._table: dict[int, tuple[weakref.ref[Any], Command]] = {}

    def get(self, args: tuple[Any, ...]) -> Command:
        """The limiter for ``args[0]``: the lookup inlined, as it runs on every call."""
        try:
            instance = args[0]
        except IndexError:
            raise TypeError(
                f"{self._fn.__qualname__}() is a method limited per instance; call it on "
                "an instance (or decorate it with command(..., shared=True))"
            ) from None
        entry = self._table.get(id(instance))
        if entry is not None and entry[0]() is instance:
            return entry[1]
        return self.of(instance)

    def of(self, instance: object) -> Command:
        """The limiter for `instance`, created if it has none yet."""
        key = id(instance)
        entry = self._table.get(key)
        if entry is not None and entry[0]() is instance:
            return entry[1]
        limiter = self._template.copy(name=f"{self._prefix}[{_label(instance)}]")
        table = self._table
        try:
            ref = weakref.ref(instance, lambda _ref: table.pop(key, None))
        except TypeError:
            raise LimiterConfigError(
                f"{self._fn.__qualname__}: a limiter per instance needs instances that can be "
                f"weakly referenced, and {type(instance).__name__} cannot (it has __slots__ "
                "without '__weakref__'); add '__weakref__' to its __slots__, or use "
                "command(..., shared=True)"
            ) from None
        table[key] = (ref, limiter)
        return limiter


class CommandSettings(TypedDict, total=False):
    """The keyword settings of `Command`, for `command` to pass on (typed, not repeated)."""

    rate: float | None
    per: float
    burst: bool
    mode: Mode
    since: Since
    name: str | None
    clock: Clock | None
    log: Log | None
    report_every: float | None
    spin: float


def command(
    interval: float | None = None,
    *,
    shared: bool = False,
    **settings: Unpack[CommandSettings],
) -> CommandDecorator:
    """Decorate an async function or method with a new `Command` made from these settings.

    The arguments are those of `Command` (checked here, at decoration time). On a method
    (first parameter ``self``) each instance gets its own limiter, named
    ``"<qualname>[<instance.name or id>]"``, unless ``shared=True``; on a function there is
    one limiter, named after it. `limiter_of` finds the limiter behind a decorated function.

    Example::

        class Balance:
            @command(rate=5)                  # at most 5 readings a second, per balance
            async def weight(self) -> float: ...
    """
    if not isinstance(shared, bool):
        raise LimiterConfigError(f"shared must be True or False, got {shared!r}")
    name = settings.get("name")
    options: CommandSettings = {**settings, "name": "command" if name is None else name}
    template = Command(interval, **options)

    def decorate(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Coroutine[Any, Any, R]]:
        check_async(fn, "the decorated function")
        qualname = getattr(fn, "__qualname__", None) or repr(fn)
        if shared or not _first_param_is_self(fn):
            limiter = template.copy(name=qualname if name is None else name)
            return wrap_command(fn, shared=limiter)
        per_instance = _PerInstance(template, fn, qualname if name is None else name)
        wrapper = wrap_command(fn, get=per_instance.get)

        def lookup(instance: object | None) -> Command:
            if instance is None:
                raise LimiterConfigError(
                    f"{qualname} has one limiter per instance; pass the instance: "
                    "limiter_of(obj.method) or limiter_of(Class.method, obj)"
                )
            return per_instance.of(instance)

        _set_lookup(wrapper, lookup)
        return wrapper

    return decorate


def _attr_getter(attr: object, what: str) -> Callable[[tuple[Any, ...]], object]:
    """``args -> args[0].<attr>``, with errors that say which decorator wanted what."""
    if not (
        isinstance(attr, str) and attr and all(part.isidentifier() for part in attr.split("."))
    ):
        raise LimiterConfigError(
            f"{what} takes the name of an attribute of the instance (e.g. 'limiter' or "
            f"'bus.limiter'), got {attr!r}"
        )
    getter = operator.attrgetter(attr)

    def get(args: tuple[Any, ...]) -> object:
        if not args or args[0] is None:
            raise LimiterConfigError(
                f"{what}({attr!r}) decorates methods; call it on an instance (or pass one "
                "to limiter_of)"
            )
        try:
            return getter(args[0])
        except AttributeError:
            raise LimiterConfigError(
                f"{what}({attr!r}): {type(args[0]).__name__} instance has no attribute "
                f"{attr!r}; set it (e.g. in __init__) before calling"
            ) from None

    return get


def limited_by(attr: str) -> CommandDecorator:
    """Decorate a method so that its calls go through the `Command` at ``self.<attr>``.

    For a limiter made per instance in ``__init__`` and shared by several of its methods, or
    one per bus handed to every instrument on that bus. A dotted path is allowed.
    """
    getter = _attr_getter(attr, "limited_by")

    def get(args: tuple[Any, ...]) -> Command:
        limiter = getter(args)
        if not isinstance(limiter, Command):
            raise LimiterConfigError(
                f"limited_by({attr!r}): expected a Command at instance.{attr}, got {limiter!r}"
            )
        return limiter

    def decorate(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Coroutine[Any, Any, R]]:
        wrapper = wrap_command(fn, get=get)
        _set_lookup(wrapper, lambda instance: get((instance,)))
        return wrapper

    return decorate


def guarded_by(attr: str) -> CommandDecorator:
    """Decorate a method so that its calls feed the `Control` at ``self.<attr>``.

    For a watchdog made per instance in ``__init__`` (so that its safety action can be a
    method of the instance). A dotted path is allowed.
    """
    getter = _attr_getter(attr, "guarded_by")

    def get(args: tuple[Any, ...]) -> Control:
        control = getter(args)
        if not isinstance(control, Control):
            raise LimiterConfigError(
                f"guarded_by({attr!r}): expected a Control at instance.{attr}, got {control!r}"
            )
        return control

    def decorate(fn: Callable[P, Awaitable[R]], /) -> Callable[P, Coroutine[Any, Any, R]]:
        wrapper = wrap_control(fn, get=get)
        _set_lookup(wrapper, lambda instance: get((instance,)))
        return wrapper

    return decorate


def _lookup(fn: Callable[..., Any], instance: object | None) -> object:
    if instance is None and inspect.ismethod(fn):
        instance = fn.__self__
    lookup = getattr(fn, _ATTR, None)
    if lookup is None:
        raise LimiterConfigError(
            f"{fn!r} was not decorated by a timecontrol limiter (Command, Control, command, "
            "limited_by or guarded_by)"
        )
    return lookup(instance)


def limiter_of(fn: Callable[..., Any], instance: object | None = None) -> Command:
    """The `Command` behind a function decorated with a Command, `command` or `limited_by`.

    For a limiter per instance pass the bound method (``limiter_of(balance.weigh)``) or the
    instance (``limiter_of(Balance.weigh, balance)``).
    """
    limiter = _lookup(fn, instance)
    if not isinstance(limiter, Command):
        raise LimiterConfigError(f"{fn!r} is guarded by a watchdog; use watchdog_of")
    return limiter


def watchdog_of(fn: Callable[..., Any], instance: object | None = None) -> Control:
    """The `Control` behind a function decorated with a Control or `guarded_by`."""
    control = _lookup(fn, instance)
    if not isinstance(control, Control):
        raise LimiterConfigError(f"{fn!r} is limited by a Command; use limiter_of")
    return control

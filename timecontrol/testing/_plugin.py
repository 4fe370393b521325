"""The pytest plugin: run async tests under virtual time, on asyncio and trio.

Registered through the ``pytest11`` entry point, so it is active wherever timecontrol is
installed. Mark an ``async def`` test with ``@pytest.mark.timecontrol`` and it runs once per
backend under a fresh `VirtualClock`; ask for the ``virtual_clock`` fixture to control it::

    @pytest.mark.timecontrol(start="2026-03-29T00:30+01:00", backends=["asyncio"])
    async def test_hourly(virtual_clock):
        await anyio.sleep(3600)
        assert virtual_clock.now() == datetime(2026, 3, 29, 0, 30, tzinfo=UTC)

Marker arguments: ``start`` (aware datetime or ISO string), ``backends`` (default both),
``autojump_threshold`` (real seconds of idleness before a jump; default 0). Fixtures the test
asks for are set up before the loop starts, so they must be synchronous.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from ._virtual import VirtualClock

_MARKER = "timecontrol"
_BACKEND_ARG = "timecontrol_backend"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker so that ``--strict-markers`` accepts it."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(start=None, backends=('asyncio', 'trio'), autojump_threshold=0.0): "
        "run this async test under timecontrol's virtual clock, once per backend",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize marked tests over their backends."""
    marker = metafunc.definition.get_closest_marker(_MARKER)
    if marker is None:
        return
    backends = list(marker.kwargs.get("backends", ("asyncio", "trio")))
    for backend in backends:
        if backend not in ("asyncio", "trio"):
            raise pytest.UsageError(
                f"timecontrol marker: unknown backend {backend!r}; expected 'asyncio' or 'trio'"
            )
    if _BACKEND_ARG not in metafunc.fixturenames:
        metafunc.fixturenames.append(_BACKEND_ARG)
    metafunc.parametrize(_BACKEND_ARG, backends, ids=backends)


def _clock_for(item: pytest.Item) -> VirtualClock:
    marker = item.get_closest_marker(_MARKER)
    kwargs: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    return VirtualClock(
        kwargs.get("start"), autojump_threshold=kwargs.get("autojump_threshold", 0.0)
    )


@pytest.fixture
def virtual_clock(request: pytest.FixtureRequest) -> VirtualClock:
    """The `VirtualClock` that a ``@pytest.mark.timecontrol`` test runs under."""
    return _clock_for(request.node)


def _coroutine_function(obj: Any) -> Any:
    """The test's coroutine function, or None.

    pytest-asyncio in ``asyncio_mode = auto`` claims every ``async def`` test and swaps in a
    synchronous wrapper (``functools.wraps``) before this hook runs: look through it.
    """
    seen = 0
    while obj is not None and seen < 10:
        if inspect.iscoroutinefunction(obj):
            return obj
        obj = getattr(obj, "__wrapped__", None)
        seen += 1
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run a marked coroutine test inside its virtual clock."""
    if pyfuncitem.get_closest_marker(_MARKER) is None:
        return None
    func = _coroutine_function(pyfuncitem.obj)
    if func is None:
        raise pytest.UsageError(
            f"{pyfuncitem.nodeid}: @pytest.mark.timecontrol needs an 'async def' test"
        )
    funcargs = pyfuncitem.funcargs
    # The backend is a direct parametrization: pytest keeps it in the item's callspec (it only
    # reaches `funcargs` on some pytest versions).
    callspec = getattr(pyfuncitem, "callspec", None)
    params: dict[str, Any] = dict(callspec.params) if callspec is not None else {}
    backend = params.get(_BACKEND_ARG, funcargs.get(_BACKEND_ARG, "asyncio"))
    clock = funcargs.get("virtual_clock")
    if not isinstance(clock, VirtualClock):
        clock = _clock_for(pyfuncitem)
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: funcargs[name] for name in names if name in funcargs}
    if _BACKEND_ARG in names:
        kwargs[_BACKEND_ARG] = backend

    async def call() -> None:
        await func(**kwargs)

    clock.run(call, backend="trio" if backend == "trio" else "asyncio")
    return True

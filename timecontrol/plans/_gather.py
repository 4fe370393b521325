"""`gather`: await several values at once, as ``asyncio.gather`` does, on asyncio and trio."""

from __future__ import annotations

import inspect
from typing import Any

import anyio

__all__ = ["gather"]


async def gather(values: list[Any]) -> list[Any]:
    """`values` with the awaitable ones awaited concurrently, in order.

    The first error (in the values' order) is raised once every awaitable has finished.
    """
    results = list(values)
    pending = [i for i, value in enumerate(results) if inspect.isawaitable(value)]
    if len(pending) == 1:
        results[pending[0]] = await results[pending[0]]
        return results
    errors: dict[int, BaseException] = {}

    async def finish(i: int) -> None:
        try:
            results[i] = await results[i]
        except Exception as exc:  # reported after the others finish, not as a group
            errors[i] = exc

    if pending:
        async with anyio.create_task_group() as tg:
            for i in pending:
                tg.start_soon(finish, i)
    if errors:
        raise errors[min(errors)]
    return results

"""Prompts: questions for the operator, answered from Python, with a default on timeout.

``await queue.ask("Valves locked. Continue?", ["yes", "no"], timeout=300, default="no")``
records ``queue.prompt_opened``, shows the question in `Queue.state` and waits for
``queue.answer(prompt_id, "yes")``. When `timeout` seconds pass first, the default is taken
and the answer is recorded with source ``"timeout"``; the question is never left open.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from .._clock import Clock
from ._errors import PromptError, QueueArgumentError

__all__ = ["Prompt", "Prompts"]

Recorder = Callable[[str, str, dict[str, Any]], Any]


@dataclass(frozen=True, slots=True)
class Prompt:
    """An open question.

    Attributes:
        id: what `Queue.answer` takes.
        question: the text shown to the operator.
        choices: the answers accepted.
        default: taken when the timeout passes (None: no timeout).
        timeout: seconds to wait for an answer (None: forever).
        opened: wall time it was asked (POSIX seconds).
        item: uid of the item running when it was asked ("" if none).
    """

    id: str
    question: str
    choices: tuple[str, ...]
    default: str | None
    timeout: float | None
    opened: float
    item: str


class _Open:
    __slots__ = ("answer", "done", "prompt")

    def __init__(self, prompt: Prompt) -> None:
        self.prompt = prompt
        self.done = anyio.Event()
        self.answer: str | None = None


def _check(
    question: object, choices: object, timeout: object, default: object
) -> tuple[str, tuple[str, ...], float | None, str | None]:
    if not isinstance(question, str) or not question:
        raise QueueArgumentError(f"question must be a non-empty str, got {question!r}")
    if isinstance(choices, str) or not isinstance(choices, Sequence) or not choices:
        raise QueueArgumentError(
            f"choices must be a non-empty list of str, e.g. ['yes', 'no'], got {choices!r}"
        )
    options = tuple(choices)
    if not all(isinstance(c, str) and c for c in options) or len(set(options)) != len(options):
        raise QueueArgumentError(f"choices must be distinct non-empty str, got {choices!r}")
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not (math.isfinite(timeout) and timeout > 0)
    ):
        raise QueueArgumentError(f"timeout must be None or seconds > 0, got {timeout!r}")
    if default is not None and default not in options:
        raise QueueArgumentError(f"default {default!r} is not one of the choices {list(options)}")
    if timeout is not None and default is None:
        raise QueueArgumentError(
            f"a prompt with a timeout ({timeout!r} s) needs a default among {list(options)}: "
            "it is the answer when nobody replies in time"
        )
    return (
        question,
        options,
        None if timeout is None else float(timeout),
        str(default) if default is not None else None,
    )


class Prompts:
    """The open prompts of one queue."""

    def __init__(self, clock: Callable[[], Clock], record: Recorder) -> None:
        self._clock = clock
        self._record = record
        self._open: dict[str, _Open] = {}

    def pending(self) -> tuple[Prompt, ...]:
        """The open prompts, oldest first."""
        return tuple(entry.prompt for entry in self._open.values())

    async def ask(
        self,
        question: str,
        choices: Sequence[str],
        timeout: float | None,  # noqa: ASYNC109 -- the prompt's own deadline, with a default
        default: str | None,
        item: str,
    ) -> str:
        """Ask and wait for the answer (see `Queue.ask`)."""
        question, options, seconds, fallback = _check(question, choices, timeout, default)
        clock = self._clock()
        prompt = Prompt(uuid.uuid4().hex[:12], question, options, fallback, seconds,
                        clock.time(), item)  # fmt: skip
        entry = _Open(prompt)
        self._record(
            "queue.prompt_opened",
            prompt.id,
            {"question": question, "choices": list(options), "default": fallback,
             "timeout": seconds, "item": item},
        )  # fmt: skip
        self._open[prompt.id] = entry
        try:
            if seconds is None:
                await entry.done.wait()
            else:
                with anyio.move_on_after(seconds):
                    await entry.done.wait()
        except BaseException:
            if self._open.pop(prompt.id, None) is not None:
                self._record("queue.prompt_answered", prompt.id,
                             {"choice": None, "source": "cancelled"})  # fmt: skip
            raise
        if entry.answer is None:  # the timeout passed first
            self._open.pop(prompt.id, None)
            assert fallback is not None
            self._record("queue.prompt_answered", prompt.id,
                         {"choice": fallback, "source": "timeout"})  # fmt: skip
            return fallback
        return entry.answer

    def answer(self, prompt_id: str, choice: str, source: str = "user") -> None:
        """Answer an open prompt (see `Queue.answer`)."""
        entry = self._open.get(prompt_id) if isinstance(prompt_id, str) else None
        if entry is None:
            raise PromptError(
                f"no open prompt with id {prompt_id!r}; open prompts: {sorted(self._open)}"
            )
        if choice not in entry.prompt.choices:
            raise PromptError(
                f"{choice!r} is not an answer to prompt {prompt_id!r}; accepted: "
                f"{list(entry.prompt.choices)}"
            )
        del self._open[prompt_id]
        entry.answer = choice
        self._record("queue.prompt_answered", prompt_id, {"choice": choice, "source": source})
        entry.done.set()

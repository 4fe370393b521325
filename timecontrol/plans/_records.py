"""What the run engine records and hands back: its Log event kinds, results, logged messages.

The run engine writes every state change, request and document to its host's Log under the
kinds reserved here, and hands `RunResult` objects back from ``run``/``resume``/``stop``.
`logged_messages` reads the batched ``plan.msgs`` events back one message at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import msgspec

from .._events import Event, reserve_kind

__all__ = [
    "CommandHandler",
    "DocumentCallback",
    "ExitStatus",
    "LoggedMsg",
    "RunResult",
    "TokenNumbering",
    "jsonable",
    "logged_messages",
    "obj_name",
]

ExitStatus = Literal["success", "abort", "fail"]
#: A document subscriber: ``callback(name, doc)`` with name one of start/descriptor/event/stop.
DocumentCallback = Callable[[str, dict[str, Any]], Any]
#: A custom command handler: ``handler(msg)``, sync or async; its value goes to the plan.
CommandHandler = Callable[[Any], Any]

for _name, _doc in (
    ("run_engine.state", "the run engine changed state; payload: from, to, plan"),
    (
        "run_engine.pause_requested",
        "a pause was requested; payload: defer, name, source, and ignored (why) when it was "
        "not acted on (a replayed call asking again)",
    ),
    ("run_engine.resume_refused", "resume() was refused; payload: holding (names)"),
    ("run_engine.panicked", "panic(); payload: previous state, cancelled jobs"),
    ("run_engine.all_is_well", "all_is_well() lifted a panic; payload: state"),
    ("run_engine.sigint", "Ctrl+C while a plan ran; payload: count, action"),
    ("plan.started", "a plan started; payload: metadata"),
    ("plan.finished", "a plan ended; payload: exit_status, reason, run_uids, interrupted"),
    (
        "plan.paused",
        "a plan paused; payload: replay (messages to replay on resume), no_replay (devices "
        "whose pause() raised NoReplayAllowed)",
    ),
    (
        "plan.msgs",
        "messages the run engine processed, in order, since the previous such event (flushed "
        "before anything is awaited); payload: command (list), obj (list of names or null), "
        "replay (whether these messages are replays)",
    ),
    ("plan.rewound", "a plan rewound to its last checkpoint; payload: messages replayed"),
    ("plan.suspended", "a suspender suspended the plan; payload: suspender, justification"),
    ("plan.cleanup_failed", "a clean-up step failed; payload: device, step, error"),
):
    reserve_kind(_name, _doc)

# Readings may hold arrays or other values JSON does not know: the Log keeps a JSON copy
# (arrays as lists, anything else as its repr); subscribers get the document as composed.
_json_fallback = msgspec.json.Encoder(
    enc_hook=lambda o: o.tolist() if hasattr(o, "tolist") else repr(o)
)
_json_decode = msgspec.json.Decoder(dict[str, Any])


def jsonable(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` itself if it is JSON, else a JSON copy (arrays as lists, the rest as repr)."""
    try:
        msgspec.json.encode(doc)
    except (TypeError, msgspec.EncodeError, OverflowError):
        return _json_decode.decode(_json_fallback.encode(doc))
    return doc


def obj_name(obj: Any) -> str | None:
    """How the Log names the object of a message: its ``name``, else its qualified name."""
    if obj is None:
        return None
    if isinstance(obj, str):
        return obj
    name = getattr(obj, "name", None)
    if isinstance(name, str):
        return name
    return getattr(obj, "__qualname__", None) or type(obj).__name__


class LoggedMsg(NamedTuple):
    """One processed message as the Log records it (see `logged_messages`)."""

    command: str
    obj: str | None
    replay: bool
    plan_uid: str
    seq: int  # the Log sequence number of the ``plan.msgs`` event that holds it


def logged_messages(events: Iterable[Event], plan_uid: str | None = None) -> list[LoggedMsg]:
    """The messages recorded in ``plan.msgs`` events, one by one and in order.

    `events` is any sequence of Log events (e.g. ``engine.log.recent(kinds="plan.msgs")``);
    other kinds are skipped. With `plan_uid`, only that plan's messages.
    """
    out: list[LoggedMsg] = []
    for event in events:
        if event.kind != "plan.msgs" or (plan_uid is not None and event.subject != plan_uid):
            continue
        payload = event.payload
        replay = payload["replay"]
        for command, obj in zip(payload["command"], payload["obj"], strict=True):
            out.append(LoggedMsg(command, obj, replay, event.subject, event.seq))
    return out


@dataclass(frozen=True, slots=True)
class RunResult:
    """What `RunEngine.run` (and `resume`, `stop`, `abort`, `halt`) hand back.

    Attributes:
        plan_uid: the id of this plan execution (the subject of its ``plan.*`` Log events).
        exit_status: ``"success"``, ``"abort"`` or ``"fail"``; None while the plan is paused.
        reason: why it ended early (the abort reason, the error, ``"halt"``, ``"panic"``).
        run_uids: uids of the runs the plan opened (subjects of their ``run.*`` documents).
        plan_result: the plan's return value (None unless it ran to its end).
        interrupted: True unless the plan ran to its end undisturbed (paused, stopped,
            aborted, halted, panicked).
        paused: True when the plan is paused and waits for `RunEngine.resume`.
        exception: the plan's exception when it failed (the driver also re-raises it).
    """

    plan_uid: str
    exit_status: ExitStatus | None
    reason: str
    run_uids: tuple[str, ...]
    plan_result: Any
    interrupted: bool
    paused: bool
    exception: BaseException | None = None


class TokenNumbering:
    """Subscription tokens as one caller numbers them (0, 1, 2, ... as bluesky's
    dispatcher does) over the run engine's own tokens, which it shares with internal
    subscribers such as the engine's queue.

    `SyncRunEngine` installs one: ``RE.subscribe``, ``RE.unsubscribe`` and the plan messages
    ``subscribe``/``unsubscribe`` then speak its numbering, and a token it never handed out
    can remove nothing (not the queue's subscription, in particular).
    """

    __slots__ = ("_inner", "_next")

    def __init__(self) -> None:
        self._next = 0
        self._inner: dict[int, int] = {}

    def outward(self, inner: int) -> int:
        """A new token of this numbering for the run engine's token `inner`."""
        token = self._next
        self._next += 1
        self._inner[token] = inner
        return token

    def inward(self, token: Any) -> int | None:
        """The run engine's token behind `token` (forgotten now), or None if unknown."""
        try:
            return self._inner.pop(token, None)
        except TypeError:  # unhashable: never handed out
            return None

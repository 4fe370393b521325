"""What instruments write to the Log: connections, faults and recoveries, never routine commands.

A command that simply succeeds is the hot path and writes nothing (its count is in
`Instrument.stats`); appending an event costs several times a bare round trip to a fast
instrument. What is written is what an operator wants to find afterwards: when an instrument
was connected, which command timed out or got a garbled reply, when the connection was lost
and restored, what was retried and which errors reached the experiment.

Every event's subject is the instrument's `name`; every payload carries its ``address``.
"""

from __future__ import annotations

import contextlib
from typing import Any

from timecontrol._dispatch import current_log
from timecontrol._events import reserve_kind
from timecontrol._exceptions import LogError
from timecontrol._log import Log

__all__ = ["KINDS", "record"]

#: The event kinds instruments write, registered when `timecontrol.drivers` is imported.
KINDS: dict[str, str] = {
    "instrument.connected": "an instrument was connected: payload address, driver, transport",
    "instrument.disconnected": (
        "an instrument was closed: payload address, broken (the connection had failed), "
        "stats (its counters: commands, retries, timeouts, ...)"
    ),
    "instrument.timeout": (
        "no (complete) reply within the call's timeout: payload address, command, timeout, "
        "detail; the instrument resynchronises before its next command"
    ),
    "instrument.bad_reply": (
        "a reply that did not parse (e.g. garbled on the wire): payload address, command, "
        "reply (as repr), expected"
    ),
    "instrument.connection_lost": (
        "the connection failed during a command: payload address, command, message; the "
        "instrument reconnects before its next command"
    ),
    "instrument.resync": (
        "stale input was drained and the sync probe answered (ok true), or not (ok false: "
        "the instrument reconnects): payload address, ok, stale (replies discarded), probe"
    ),
    "instrument.reconnect": (
        "the instrument reopened its connection (ok true) or gave up (ok false): payload "
        "address, ok, attempts, error"
    ),
    "instrument.retry": (
        "an idempotent command is sent again after a fault: payload address, command, "
        "attempt (1 for the first retry), error (type), message"
    ),
    "instrument.error": (
        "a typed error reached the caller: payload address, command, error (type), message "
        "(and errors: [[code, message], ...] for an instrument's error queue)"
    ),
}

for _name, _doc in KINDS.items():
    reserve_kind(_name, _doc)


def record(log: Log | None, kind: str, subject: str, payload: dict[str, Any]) -> None:
    """Append an event to `log`, else to the running engine's Log, else nowhere.

    The Log is looked up at every event, not when the instrument is made: instruments are
    often created before any engine runs, and outlive one. A closed Log is not an instrument
    fault, so it never turns a command's outcome into a `LogError`.
    """
    if log is None:
        log = current_log()
        if log is None:
            return
    with contextlib.suppress(LogError):
        log._emit(kind, subject, payload)

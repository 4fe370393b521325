"""The drivers' exceptions: every one derives from `TimeControlError` via `DriverError`.

Each error carries the facts a user needs as attributes (the command, the reply, the value and
the accepted range) so that code can react to them, and a message that says the same in words.
"""

from __future__ import annotations

from collections.abc import Collection

from timecontrol._exceptions import TimeControlError

__all__ = [
    "AddressError",
    "BackendError",
    "CommandError",
    "DriverError",
    "InstrumentError",
    "InstrumentTimeout",
    "NotConnectedError",
    "OutOfRangeError",
    "ReplyParseError",
    "TransportError",
]


class DriverError(TimeControlError):
    """Base class of every error raised by `timecontrol.drivers`."""


class AddressError(DriverError, ValueError):
    """A malformed or unknown instrument address; raised before anything is sent.

    Attributes:
        address: the address as given.
        reason: what is wrong with it.
    """

    def __init__(self, address: object, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"bad instrument address {address!r}: {reason}")


class BackendError(DriverError, RuntimeError):
    """A transport used on an async backend (or platform) that it does not support."""


class CommandError(DriverError, ValueError):
    """A command string that cannot be sent as one message (empty, or containing a terminator).

    Sending it would split into several messages and break the one-reply-per-query rule.
    """

    def __init__(self, command: str, reason: str) -> None:
        self.command = command
        self.reason = reason
        super().__init__(f"cannot send command {command!r}: {reason}")


class OutOfRangeError(DriverError, ValueError):
    """A value outside what an instrument setting accepts; raised before anything is sent.

    Attributes:
        name: the setting's name.
        value: the rejected value.
        accepted: a human-readable description of what would have been accepted.
    """

    def __init__(self, name: str, value: object, accepted: str) -> None:
        self.name = name
        self.value = value
        self.accepted = accepted
        super().__init__(f"{name}: {value!r} is out of range; accepted: {accepted}")

    @classmethod
    def for_limits(cls, name: str, value: object, low: object, high: object) -> OutOfRangeError:
        """Build the error for a value outside the closed interval [low, high]."""
        return cls(name, value, f"{low!r} <= value <= {high!r}")

    @classmethod
    def for_choices(cls, name: str, value: object, choices: Collection[object]) -> OutOfRangeError:
        """Build the error for a value that is not one of a set of choices."""
        listed = ", ".join(repr(c) for c in choices)
        return cls(name, value, f"one of {listed}")


class NotConnectedError(DriverError, RuntimeError):
    """An instrument used before `connect()` (or `async with`) or after `close()`."""


class TransportError(DriverError, ConnectionError):
    """The connection to the instrument failed, was refused, or was lost.

    The instrument reconnects (with backoff) before its next command; the command during which
    the connection broke is retried only if it was declared idempotent.
    """


class InstrumentTimeout(DriverError, TimeoutError):
    """No (complete) reply within the call's timeout.

    The instrument resynchronises before its next command, so that a reply arriving late is
    never read as the answer to a later command.

    Attributes:
        command: the command that timed out (``None`` when raised by a bare transport read).
        timeout: the timeout in seconds.
    """

    def __init__(self, command: str | None, timeout: float, detail: str = "") -> None:
        self.command = command
        self.timeout = timeout
        self.detail = detail
        what = f"reply to {command!r}" if command is not None else "reply"
        extra = f" ({detail})" if detail else ""
        super().__init__(f"no {what} within {timeout:g} s{extra}")


class ReplyParseError(DriverError, ValueError):
    """A reply that does not parse as the expected type (e.g. garbled on the wire).

    Attributes:
        command: the command whose reply it was.
        reply: the reply as received (undecodable bytes are shown as escapes).
        expected: what the reply should have looked like.
    """

    def __init__(self, command: str, reply: str, expected: str) -> None:
        self.command = command
        self.reply = reply
        self.expected = expected
        super().__init__(f"reply {reply!r} to {command!r} is not {expected}")


class InstrumentError(DriverError):
    """The instrument reported errors in its error queue (SCPI ``SYST:ERR?``).

    Attributes:
        errors: the ``(code, message)`` pairs read from the queue, oldest first.
    """

    def __init__(self, instrument: str, errors: list[tuple[int, str]]) -> None:
        self.instrument = instrument
        self.errors = errors
        listed = "; ".join(f"{code}: {message}" for code, message in errors)
        super().__init__(f"{instrument} reported {len(errors)} error(s): {listed}")

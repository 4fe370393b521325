"""The Log's vocabulary: immutable, typed events that round-trip through JSON exactly.

An event is a `msgspec.Struct` (frozen, slotted, compared by value). Its `kind` is a dotted
name (``"action.succeeded"``) that must be registered *to be written*, so that a typo is an
error at the point of writing. Reading is lenient: an event whose kind this process has not
registered (written by a newer timecontrol, or by a part such as ``timecontrol.drivers`` that
this process did not import) comes back as the same `Event` class with its kind string as
stored, because a log must stay readable by any process. Payloads are plain JSON objects;
nothing is ever pickled.
"""

from __future__ import annotations

import re
import reprlib
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from ._exceptions import EventKindError, EventPayloadError

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "Event",
    "EventKind",
    "check_kind",
    "check_kind_name",
    "decode_event",
    "encode_event",
    "encode_payload",
    "event_from_row",
    "known_kinds",
    "normalize_payload",
    "register_kind",
]

#: Version of the event shape. Stores write it; readers refuse a newer one.
EVENT_SCHEMA_VERSION: Final = 1


class Event(msgspec.Struct, frozen=True, gc=False):
    """One thing that happened, as recorded in the Log.

    Attributes:
        seq: position in the Log (strictly increasing, never reused, continues across restarts).
        mono: the event loop's monotonic time when it was recorded, in seconds.
        wall: wall time when it was recorded, POSIX seconds (UTC); see `at`.
        kind: registered dotted name, e.g. ``"action.failed"``.
        subject: what it is about: a job, plan, run or command id ("" when global).
        payload: JSON object with the kind's details. Treat it as read-only.
    """

    seq: int
    mono: float
    wall: float
    kind: str
    subject: str = ""
    payload: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def at(self) -> datetime:
        """The wall time as an aware UTC datetime."""
        return datetime.fromtimestamp(self.wall, UTC)

    def to_json(self) -> bytes:
        """This event as JSON (UTF-8 bytes)."""
        return _encoder.encode(self)

    @classmethod
    def from_json(cls, data: bytes | str) -> Event:
        """Decode an event from JSON, checking its shape (its kind need not be registered)."""
        return decode_event(data)


class EventKind(msgspec.Struct, frozen=True):
    """A registered event kind and what it means."""

    name: str
    description: str


_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_kinds: dict[str, EventKind] = {}
_kind_names: set[str] = set()  # a plain set: the hot path checks membership only
_reserved: set[str] = set()  # the library's own kinds: users may read them, not write them

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Event)
_payload_decoder = msgspec.json.Decoder(dict[str, Any])


def register_kind(name: str, description: str) -> EventKind:
    """Register an event kind (idempotent for the same name).

    Names are lowercase dotted words such as ``"job.missed"``; the first word is the area that
    owns the kind. Libraries built on timecontrol register their own kinds at import time.
    """
    if not isinstance(name, str) or not _KIND_RE.match(name):
        raise EventKindError(
            f"event kind {name!r} is not a lowercase dotted name; expected e.g. 'job.missed' "
            "(letters, digits and '_' in each part, at least two parts)"
        )
    kind = _kinds.get(name)
    if kind is None:
        kind = EventKind(name, description)
        _kinds[name] = kind
        _kind_names.add(name)
    return kind


def reserve_kind(name: str, description: str) -> EventKind:
    """Register one of timecontrol's own kinds: only the library writes it (`Log.append`,
    the public door, refuses it), so that no user event can pose as a record the library
    reads back (a fake ``job.started`` would make a store's recovery lie)."""
    kind = register_kind(name, description)
    _reserved.add(name)
    return kind


def is_reserved(kind: str) -> bool:
    """True if `kind` is one of timecontrol's own record kinds (see `reserve_kind`)."""
    return kind in _reserved


def known_kinds() -> dict[str, EventKind]:
    """Every registered kind, by name."""
    return dict(_kinds)


def check_kind(kind: str) -> None:
    """Raise `EventKindError` unless `kind` is registered."""
    if kind not in _kind_names:
        raise EventKindError(
            f"unknown event kind {kind!r}; known kinds are {sorted(_kind_names)} "
            "(register new ones with timecontrol.register_kind)"
        )


def check_kind_name(kind: object) -> str:
    """`kind` if it is a well-formed kind name (registered or not); `EventKindError` if not.

    For reading: a stored kind this process does not know is fine, a malformed one is not.
    """
    if type(kind) is str and (kind in _kind_names or _KIND_RE.match(kind)):
        return kind
    raise EventKindError(
        f"event kind {kind!r} is not a lowercase dotted name; expected e.g. 'job.missed' "
        "(letters, digits and '_' in each part, at least two parts)"
    )


def encode_event(event: Event) -> bytes:
    """JSON for an event; `EventPayloadError` if its payload holds a non-JSON value."""
    encode_payload(event.kind, event.payload)
    return _encoder.encode(event)


_EMPTY = b"{}"

# Error messages name the bad payload, but a bounded view of it: a payload can be huge, or
# nested too deeply for the built-in repr (which then raises RecursionError itself).
_repr = reprlib.Repr()
_repr.maxlevel = 8
_repr.maxdict = _repr.maxlist = _repr.maxtuple = _repr.maxset = _repr.maxfrozenset = 20
_repr.maxstring = _repr.maxother = _repr.maxlong = 200


def _describe(value: object) -> str:
    return _repr.repr(value)


def encode_payload(kind: str, payload: dict[str, Any]) -> bytes:
    """JSON for a payload; `EventPayloadError` (naming the value) if it is not a JSON object."""
    if not payload:
        if isinstance(payload, dict):
            return _EMPTY
    elif isinstance(payload, dict):
        try:
            return _encoder.encode(payload)
        # ValueError: a str holding a lone surrogate has no UTF-8 (UnicodeEncodeError).
        except (TypeError, ValueError, msgspec.EncodeError, OverflowError, RecursionError) as exc:
            raise EventPayloadError(
                f"event payload {_describe(payload)} for kind {kind!r} is not JSON: {exc}; payload "
                "values must be str, int, float, bool, None, or lists and str-keyed dicts of those"
            ) from None
    raise EventPayloadError(
        f"event payload for kind {kind!r} must be a dict (a JSON object), got {_describe(payload)}"
    )


def normalize_payload(kind: str, payload: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The payload as JSON reads it back, and its JSON; `EventPayloadError` if not JSON.

    Plain JSON values (str, int, finite float, bool, None, lists and str-keyed dicts of those)
    come back equal. Anything else that JSON can still write comes back as JSON reads it (a
    tuple or set becomes a list, a datetime its ISO string, NaN and infinities None, an int key
    a str), so that the event kept in memory equals the one in a durable store and the one
    decoded from `Event.to_json`, and later changes to the caller's dict do not reach it.
    """
    encoded = encode_payload(kind, payload)
    # Decoding costs about as much as checking every value's type in Python, and is exact by
    # construction.
    return _payload_decoder.decode(encoded), encoded


def event_from_row(
    seq: int, mono: float, wall: float, kind: str, subject: str, payload: str | bytes
) -> Event:
    """Rebuild an event from a stored row (payload as JSON text).

    The kind need not be registered in this process (see the module's docstring), but it must
    be a well-formed name. A row whose values have the wrong types (SQLite stores whatever it
    is given) raises `EventPayloadError`, a malformed kind `EventKindError`: both name the row.
    """
    if not (
        type(seq) is int
        and type(mono) is float
        and type(wall) is float
        and type(subject) is str
        and (kind in _kind_names or _valid_name(kind))
    ):
        _bad_row(seq, mono, wall, kind, subject)
    try:
        data = _payload_decoder.decode(payload)
    except (msgspec.DecodeError, TypeError) as exc:
        raise EventPayloadError(
            f"stored payload of event {seq} is not a JSON object: {exc}; got {payload!r:.200}"
        ) from None
    return Event(seq, mono, wall, kind, subject, data)


def _valid_name(kind: object) -> bool:
    return type(kind) is str and _KIND_RE.match(kind) is not None


def _bad_row(seq: object, mono: object, wall: object, kind: object, subject: object) -> None:
    if not _valid_name(kind):
        raise EventKindError(
            f"stored event {seq!r} has kind {kind!r}, which is not a lowercase dotted name "
            "(e.g. 'job.missed')"
        )
    raise EventPayloadError(
        f"stored event {seq!r} has values of the wrong types: seq {seq!r} (int expected), "
        f"mono {mono!r} and wall {wall!r} (float expected), subject {subject!r} (str expected)"
    )


def decode_event(data: bytes | str) -> Event:
    """An event from its JSON, validated.

    A well-formed kind that this process has not registered is accepted (the event is read,
    not written); a malformed kind raises `EventKindError`.
    """
    try:
        event = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise EventPayloadError(f"not a valid event: {exc}; got {data!r:.200}") from None
    except msgspec.DecodeError as exc:
        raise EventPayloadError(f"event is not valid JSON: {exc}; got {data!r:.200}") from None
    check_kind_name(event.kind)
    return event


# The kinds the foundation itself writes. Later parts register theirs next to their code.
for _name, _doc in (
    ("engine.started", "the engine's loop started"),
    ("engine.stopped", "the engine's loop stopped"),
    ("intent.scheduled", "an intent was added to the Schedule"),
    ("intent.cancelled", "an intent was cancelled before it was due"),
    ("action.started", "a due intent's coroutine started"),
    ("action.succeeded", "a coroutine returned; payload: result, duration"),
    ("action.failed", "a coroutine raised; payload: error type, message, traceback"),
    ("action.cancelled", "a running coroutine was cancelled (engine stop or panic)"),
):
    reserve_kind(_name, _doc)
register_kind("log.note", "a free-form note written by the user")

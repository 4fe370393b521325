"""Events: frozen, slotted, typed, and exact through JSON; kinds are registered."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from timecontrol import Event, Log, TimeControlError, register_kind
from timecontrol._events import (
    EVENT_SCHEMA_VERSION,
    EventKind,
    check_kind,
    decode_event,
    encode_event,
    encode_payload,
    event_from_row,
    known_kinds,
    normalize_payload,
)
from timecontrol.errors import EventKindError, EventPayloadError
from timecontrol.testing import run

FOUNDATION_KINDS = [
    "engine.started",
    "engine.stopped",
    "intent.scheduled",
    "intent.cancelled",
    "action.started",
    "action.succeeded",
    "action.failed",
    "action.cancelled",
    "log.note",
]

# JSON values as Python has them: what a payload may hold.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)
payloads = st.dictionaries(st.text(), json_values, max_size=6)
finite = st.floats(allow_nan=False, allow_infinity=False)
events = st.builds(
    Event,
    seq=st.integers(min_value=1, max_value=2**62),
    mono=finite,
    wall=finite,
    kind=st.sampled_from(FOUNDATION_KINDS),
    subject=st.text(),
    payload=payloads,
)


def assert_same(a: Any, b: Any) -> None:
    """Equal *and* of the same types all the way down (1.0 is not 1, -0.0 is not 0.0)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, float):
        assert a == b
        assert math.copysign(1.0, a) == math.copysign(1.0, b), (a, b)
    else:
        assert a == b


# -- shape ----------------------------------------------------------------------------------


def test_event_is_frozen_slotted_and_compared_by_value() -> None:
    event = Event(1, 2.5, 1774740600.0, "log.note", "job-1", {"text": "hello"})
    with pytest.raises(AttributeError):
        event.seq = 2  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.kind = "engine.started"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        event.extra = 1  # type: ignore[attr-defined]
    assert not hasattr(event, "__dict__")
    assert event == Event(1, 2.5, 1774740600.0, "log.note", "job-1", {"text": "hello"})
    assert event != Event(2, 2.5, 1774740600.0, "log.note", "job-1", {"text": "hello"})
    assert event.at == datetime(2026, 3, 28, 23, 30, tzinfo=UTC)
    assert Event(1, 0.0, 0.0, "log.note").payload == {}
    assert Event(1, 0.0, 0.0, "log.note").subject == ""
    assert EVENT_SCHEMA_VERSION == 1


def test_event_json_is_plain_and_readable() -> None:
    event = Event(7, 1.5, 1774740600.25, "action.succeeded", "sample", {"result": [1, 2.5]})
    assert event.to_json() == (
        b'{"seq":7,"mono":1.5,"wall":1774740600.25,"kind":"action.succeeded",'
        b'"subject":"sample","payload":{"result":[1,2.5]}}'
    )
    assert encode_event(event) == event.to_json()
    assert Event.from_json(event.to_json().decode()) == event


@settings(max_examples=150, deadline=None)
@given(events)
def test_event_json_round_trip_is_exact(event: Event) -> None:
    back = Event.from_json(event.to_json())
    assert back == event
    assert_same(back.payload, event.payload)
    assert_same(back.mono, event.mono)
    assert_same(back.wall, event.wall)
    assert decode_event(encode_event(event)) == event


@settings(max_examples=100, deadline=None)
@given(payloads)
def test_plain_payloads_are_kept_as_they_are(payload: dict[str, Any]) -> None:
    normalized, encoded = normalize_payload("log.note", payload)
    assert_same(normalized, payload)
    assert encoded == msgspec.json.encode(payload)


# -- payloads that are not JSON -------------------------------------------------------------


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque instrument handle>"


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"handle": Opaque()}, "<Opaque instrument handle>"),
        ({"text": "lone \ud800 surrogate"}, "surrogate"),
        ({"nested": {"deep": [1, Opaque()]}}, "<Opaque instrument handle>"),
        ({(1, 2): "tuple key"}, "(1, 2)"),
    ],
)
def test_non_json_payload_is_rejected_naming_it(payload: dict[Any, Any], named: str) -> None:
    with pytest.raises(EventPayloadError) as info:
        encode_payload("log.note", payload)
    assert named in str(info.value)
    assert "'log.note'" in str(info.value)
    assert isinstance(info.value, TimeControlError)
    assert isinstance(info.value, TypeError)


def test_cyclic_and_too_deep_payloads_are_payload_errors() -> None:
    """Regression: naming a too-deep payload in the message hit RecursionError in repr, which
    escaped instead of EventPayloadError."""
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    deep: list[Any] = []
    tip = deep
    for _ in range(100_000):
        tip.append([])
        tip = tip[0]
    for payload in (cyclic, {"x": deep}):
        with pytest.raises(EventPayloadError, match="recursion") as info:
            encode_payload("log.note", payload)
        assert len(str(info.value)) < 1000  # a bounded view of the payload


def test_a_huge_bad_payload_is_named_briefly() -> None:
    payload = {f"k{i}": "v" * 10_000 for i in range(1000)} | {"bad": Opaque()}
    with pytest.raises(EventPayloadError, match="'k0': 'vvvv") as info:
        encode_payload("log.note", payload)
    assert len(str(info.value)) < 10_000


@pytest.mark.parametrize("payload", [["a", "list"], "text", 42, None])
def test_payload_must_be_a_dict(payload: Any) -> None:
    with pytest.raises(EventPayloadError, match=r"must be a dict \(a JSON object\), got"):
        encode_payload("log.note", payload)


def test_non_json_payload_records_nothing() -> None:
    async def main() -> None:
        log = Log()
        sub = log.subscribe()
        first = log.append("log.note", "a", {"n": 1})
        for bad in ({"handle": Opaque()}, {"text": "\udfff"}, ["not", "a", "dict"]):
            with pytest.raises(EventPayloadError):
                log.append("log.note", "a", bad)  # type: ignore[arg-type]
            assert log.last_seq == 1
            assert len(log) == 1
            assert sub.pending() == 1
        second = log.append("log.note", "a", {"n": 2})
        assert second.seq == 2  # no number was used up by the rejected events
        assert log.recent() == [first, second]

    run(main)


def test_json_writable_payloads_are_recorded_as_json_reads_them() -> None:
    """Regression: NaN, tuples, datetimes and int keys were kept as given in memory while the
    durable store (and `to_json`) held their JSON form, so the two disagreed."""
    stamp = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    ident = uuid.UUID(int=5)

    async def main() -> list[Event]:
        log = Log()
        event = log.append(
            "log.note",
            "",
            {
                "nan": float("nan"),
                "inf": -float("inf"),
                "pair": (1, 2.5),
                "at": stamp,
                "id": ident,
                "by_channel": {1: "a", 2: "b"},
                "set": frozenset({3}),
            },
        )
        return [event, *log.recent()]

    event, in_ring = run(main)
    expected = {
        "nan": None,
        "inf": None,
        "pair": [1, 2.5],
        "at": "2026-03-29T01:00:00Z",
        "id": str(ident),
        "by_channel": {"1": "a", "2": "b"},
        "set": [3],
    }
    assert_same(event.payload, expected)
    assert in_ring is event
    assert Event.from_json(event.to_json()) == event


def test_recorded_payload_is_a_copy_of_the_callers_dict() -> None:
    async def main() -> Event:
        log = Log()
        payload: dict[str, Any] = {"values": [1, 2]}
        event = log.append("log.note", "", payload)
        payload["values"].append(3)
        payload["later"] = True
        return log.recent()[0] if log.recent()[0] is event else event

    assert run(main).payload == {"values": [1, 2]}


# -- kinds ----------------------------------------------------------------------------------


def test_foundation_kinds_are_registered() -> None:
    kinds = known_kinds()
    for name in FOUNDATION_KINDS:
        assert isinstance(kinds[name], EventKind)
        assert kinds[name].name == name
        check_kind(name)
    kinds.clear()  # a copy: the registry is not touched
    assert "log.note" in known_kinds()


def test_unknown_kind_is_rejected_naming_it() -> None:
    with pytest.raises(EventKindError) as info:
        check_kind("action.exploded")
    message = str(info.value)
    assert "'action.exploded'" in message
    assert "'action.failed'" in message  # and what would be accepted
    assert "register_kind" in message
    assert isinstance(info.value, ValueError)

    async def main() -> None:
        log = Log()
        with pytest.raises(EventKindError, match=r"'action\.exploded'"):
            log.append("action.exploded")
        assert log.last_seq == 0
        assert len(log) == 0

    run(main)


def test_decoding_an_unknown_kind_reads_it_and_a_bad_shape_is_an_error() -> None:
    # Reading is lenient about kinds this process has not registered (a newer version's, a
    # part it did not import): the event comes back as it was written.
    data = b'{"seq":1,"mono":0.0,"wall":0.0,"kind":"future.kind","subject":"","payload":{}}'
    assert decode_event(data) == Event(1, 0.0, 0.0, "future.kind")
    assert event_from_row(1, 0.0, 0.0, "future.kind", "", "{}") == Event(1, 0.0, 0.0, "future.kind")
    bad_kind = b'{"seq":1,"mono":0.0,"wall":0.0,"kind":"Future Kind","subject":"","payload":{}}'
    with pytest.raises(EventKindError, match="'Future Kind'"):
        decode_event(bad_kind)
    with pytest.raises(EventKindError, match="'Future Kind'"):
        event_from_row(1, 0.0, 0.0, "Future Kind", "", "{}")
    with pytest.raises(EventPayloadError, match="wrong types"):
        event_from_row(1, "zero", 0.0, "log.note", "", "{}")  # type: ignore[arg-type]
    with pytest.raises(EventPayloadError, match="not a valid event"):
        decode_event(b'{"seq":"one","mono":0.0,"wall":0.0,"kind":"log.note"}')
    with pytest.raises(EventPayloadError, match="not valid JSON"):
        decode_event(b'{"seq":1,')
    with pytest.raises(EventPayloadError, match="stored payload of event 3 is not a JSON object"):
        event_from_row(3, 0.0, 0.0, "log.note", "", "[1, 2]")


def test_event_from_row_rebuilds_the_event() -> None:
    event = event_from_row(4, 1.5, 2.5, "log.note", "s", '{"a": [1, 2.0, null]}')
    assert event == Event(4, 1.5, 2.5, "log.note", "s", {"a": [1, 2.0, None]})


def test_register_kind_is_idempotent_and_validates_names() -> None:
    kind = register_kind("foundationtest.pinged", "a ping, registered by the test suite")
    assert kind == EventKind("foundationtest.pinged", "a ping, registered by the test suite")
    again = register_kind("foundationtest.pinged", "another description")
    assert again is kind  # the first registration stands
    assert known_kinds()["foundationtest.pinged"] is kind
    check_kind("foundationtest.pinged")
    assert register_kind("foundationtest.sub_area.v2_done", "three parts").name == (
        "foundationtest.sub_area.v2_done"
    )


@pytest.mark.parametrize(
    "name", ["nodots", "Upper.case", "job.", ".job", "job..missed", "2job.x", "job.miss-ed", ""]
)
def test_register_kind_rejects_bad_names(name: str) -> None:
    with pytest.raises(EventKindError) as info:
        register_kind(name, "bad")
    assert repr(name) in str(info.value)
    assert "lowercase dotted name" in str(info.value)
    assert name not in known_kinds()


def test_register_kind_rejects_a_non_string() -> None:
    with pytest.raises(EventKindError, match="42"):
        register_kind(42, "bad")  # type: ignore[arg-type]

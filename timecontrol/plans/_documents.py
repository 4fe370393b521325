"""Run documents: start, descriptor, event and stop records in bluesky's shapes.

One `OpenRun` per open run composes its documents. Each document is a plain dict that the
engine writes to the Log (kind ``run.<name>``, subject = the run's uid) and hands to
subscribers. Sequence numbers count per stream from 1; they are copied at every checkpoint and
restored on rewind, so a replayed event carries the number it had the first time.
"""

from __future__ import annotations

import uuid
from typing import Any

from .._events import reserve_kind
from ._errors import IllegalMessageSequence

__all__ = ["DOCUMENT_NAMES", "INTERRUPTIONS", "OpenRun", "new_uid"]

#: The document names, in the order a run emits them (the last five from ``collect`` and
#: from devices that write external assets).
DOCUMENT_NAMES = (
    "start",
    "descriptor",
    "event",
    "stop",
    "event_page",
    "resource",
    "datum",
    "stream_resource",
    "stream_datum",
)
#: The stream that records pauses, resumes and suspensions (``record_interruptions``).
INTERRUPTIONS = "interruptions"

for _name, _doc in (
    ("run.start", "a run started; payload: the run start document (uid, time, scan_id, ...)"),
    ("run.descriptor", "a data stream was described; payload: the event descriptor document"),
    ("run.event", "a reading was saved; payload: the event document (seq_num, data, ...)"),
    ("run.stop", "a run ended; payload: the run stop document (exit_status, reason, ...)"),
    ("run.event_page", "readings collected from a flyer; payload: the event page document"),
    ("run.resource", "an external asset was announced; payload: the resource document"),
    ("run.datum", "a part of an external asset; payload: the datum document"),
    (
        "run.stream_resource",
        "an external stream of data was announced; payload: the stream resource document",
    ),
    (
        "run.stream_datum",
        "rows of an external stream were written; payload: the stream datum document "
        "(seq_nums: the events they belong to)",
    ),
):
    reserve_kind(_name, _doc)


def new_uid() -> str:
    """A fresh unique id for a document, run or plan."""
    return str(uuid.uuid4())


def _object_name(obj: Any) -> str:
    return str(getattr(obj, "name", None) or repr(obj))


class OpenRun:
    """The state of one open run: descriptors, sequence counters and the event being bundled."""

    def __init__(self, key: Any, start: dict[str, Any]) -> None:
        self.key = key
        self.start = start
        self.uid: str = start["uid"]
        # stream name -> (descriptor document, names of the objects it describes)
        self.descriptors: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {}
        self.seq: dict[str, int] = {}  # next seq_num per stream
        self._seq_at_checkpoint: dict[str, int] = {}
        self.bundle_name: str | None = None
        self._read: list[tuple[Any, dict[str, Any]]] = []
        self._describe: dict[int, dict[str, Any]] = {}
        # ``collect``: streams declared with collect=True, by the ids of their objects; the
        # streams of each old-style flyer, by the data keys of its events; the stream
        # resources announced (uid -> data key).
        self.collect_streams: dict[frozenset[int], list[str]] = {}
        self.flyer_streams: dict[int, dict[frozenset[str], str]] = {}
        self.stream_resources: dict[str, str] = {}

    # -- checkpoints -------------------------------------------------------------------------

    def checkpoint(self) -> None:
        """Remember the sequence counters: a rewind returns to them."""
        self._seq_at_checkpoint = dict(self.seq)

    def rewind(self) -> None:
        """Go back to the last checkpoint: counters restored, any open bundle dropped.

        The interruptions stream is not rewound: a pause is never replayed, so its events
        keep counting on.
        """
        interruptions = self.seq.get(INTERRUPTIONS)
        self.seq = dict(self._seq_at_checkpoint)
        if interruptions is not None:
            self.seq[INTERRUPTIONS] = interruptions
        self.drop()

    # -- bundling ------------------------------------------------------------------------------

    @property
    def bundling(self) -> bool:
        """True between ``create`` and ``save``/``drop``."""
        return self.bundle_name is not None

    def create(self, name: str) -> None:
        """Start bundling readings into one event of stream `name`."""
        if self.bundle_name is not None:
            raise IllegalMessageSequence(
                f"'create' for stream {name!r} while the event of stream "
                f"{self.bundle_name!r} is still open; 'save' or 'drop' it first"
            )
        self.bundle_name = name
        self._read.clear()

    def add_reading(self, obj: Any, reading: dict[str, Any]) -> None:
        """Add one device's reading to the open bundle (its keys must not collide)."""
        for other, previous in self._read:
            if other is obj:
                raise IllegalMessageSequence(
                    f"{_object_name(obj)} was read twice in one event of stream "
                    f"{self.bundle_name!r}"
                )
            clash = previous.keys() & reading.keys()
            if clash:
                raise IllegalMessageSequence(
                    f"data keys {sorted(clash)} of {_object_name(obj)} collide with those "
                    f"of {_object_name(other)} in stream {self.bundle_name!r}"
                )
        self._read.append((obj, reading))

    def drop(self) -> None:
        """Abandon the open bundle."""
        self.bundle_name = None
        self._read.clear()

    def bundle(self) -> tuple[str, list[tuple[Any, dict[str, Any]]]]:
        """Take the open bundle (stream name, [(object, reading)]) and close it."""
        if self.bundle_name is None:
            raise IllegalMessageSequence("'save' without 'create': no event is being bundled")
        name, read = self.bundle_name, list(self._read)
        self.drop()
        return name, read

    # -- documents -----------------------------------------------------------------------------

    def forget_device(self, obj: Any) -> None:
        """`obj` was reconfigured: describe it afresh, and give every stream it is in a new
        descriptor at its next event (sequence numbers go on)."""
        self._describe.pop(id(obj), None)
        name = _object_name(obj)
        for stream, (_doc, names) in list(self.descriptors.items()):
            if name in names:
                del self.descriptors[stream]

    def cached_description(self, obj: Any) -> dict[str, Any] | None:
        """The cached ``describe()`` of `obj` in this run, if any."""
        return self._describe.get(id(obj))

    def cache_description(self, obj: Any, description: dict[str, Any]) -> None:
        """Remember `obj`'s ``describe()`` for this run."""
        self._describe[id(obj)] = description

    def descriptor(
        self,
        name: str,
        objs: list[Any],
        configuration: dict[str, dict[str, Any]],
        now: float,
    ) -> dict[str, Any] | None:
        """The new descriptor for stream `name`, or None if it exists (and matches `objs`)."""
        if name in self.descriptors:
            return self.stream_descriptor(name, [(obj, {}) for obj in objs], configuration, now)
        return self.stream_descriptor(
            name, [(obj, self._describe[id(obj)]) for obj in objs], configuration, now
        )

    def stream_descriptor(
        self,
        name: str,
        described: list[tuple[Any, dict[str, Any]]],
        configuration: dict[str, dict[str, Any]],
        now: float,
    ) -> dict[str, Any] | None:
        """As `descriptor`, with each object's data keys given (``describe_collect``)."""
        names = tuple(_object_name(o) for o, _ in described)
        existing = self.descriptors.get(name)
        if existing is not None:
            if set(existing[1]) != set(names):
                raise IllegalMessageSequence(
                    f"stream {name!r} was described with {list(existing[1])}; an event read "
                    f"{list(names)} instead. Use another stream name for another set of devices"
                )
            return None
        data_keys: dict[str, Any] = {}
        object_keys: dict[str, list[str]] = {}
        hints: dict[str, Any] = {}
        for (obj, desc), obj_name in zip(described, names, strict=True):
            object_keys[obj_name] = list(desc)
            for key, value in desc.items():
                data_keys[key] = {**value, "object_name": obj_name}
            obj_hints = getattr(obj, "hints", None)
            if isinstance(obj_hints, dict):
                hints[obj_name] = obj_hints
        doc = {
            "uid": new_uid(),
            "time": now,
            "run_start": self.uid,
            "name": name,
            "data_keys": data_keys,
            "object_keys": object_keys,
            "configuration": configuration,
            "hints": hints,
        }
        self.descriptors[name] = (doc, names)
        self.seq.setdefault(name, 1)
        self._seq_at_checkpoint.setdefault(name, 1)
        return doc

    def event(
        self, name: str, read: list[tuple[Any, dict[str, Any]]], now: float
    ) -> dict[str, Any]:
        """The event document for a saved bundle (takes the stream's next seq_num)."""
        descriptor = self.descriptors[name][0]
        data: dict[str, Any] = {}
        timestamps: dict[str, Any] = {}
        for _obj, reading in read:
            for key, value in reading.items():
                data[key] = value["value"]
                timestamps[key] = value["timestamp"]
        seq_num = self.seq[name]
        self.seq[name] = seq_num + 1
        return {
            "uid": new_uid(),
            "time": now,
            "descriptor": descriptor["uid"],
            "seq_num": seq_num,
            "data": data,
            "timestamps": timestamps,
            "filled": {},
        }

    def event_page(
        self,
        name: str,
        data: dict[str, list[Any]],
        timestamps: dict[str, list[Any]],
        now: float,
    ) -> dict[str, Any]:
        """The event page of ``len`` rows of stream `name` (takes as many seq_nums)."""
        rows = len(next(iter(data.values()), ()))
        start = self.seq[name]
        self.seq[name] = start + rows
        return {
            "descriptor": self.descriptors[name][0]["uid"],
            "uid": [new_uid() for _ in range(rows)],
            "time": [now] * rows,
            "seq_num": list(range(start, start + rows)),
            "data": data,
            "timestamps": timestamps,
            "filled": {},
        }

    def interruptions_descriptor(self, now: float) -> dict[str, Any]:
        """The descriptor of the ``interruptions`` stream (one string per pause or resume)."""
        key = {"dtype": "string", "shape": [], "source": "RunEngine"}
        doc = {
            "uid": new_uid(),
            "time": now,
            "run_start": self.uid,
            "name": INTERRUPTIONS,
            "data_keys": {"interruption": key},
            "object_keys": {},
            "configuration": {},
            "hints": {},
        }
        self.descriptors[INTERRUPTIONS] = (doc, ())
        self.seq[INTERRUPTIONS] = 1
        return doc

    def interruption(self, content: str, now: float) -> dict[str, Any] | None:
        """The next event of the ``interruptions`` stream, or None if it is not recorded."""
        if INTERRUPTIONS not in self.descriptors or self.descriptors[INTERRUPTIONS][1]:
            return None
        reading = {"interruption": {"value": content, "timestamp": now}}
        return self.event(INTERRUPTIONS, [(None, reading)], now)

    def stop(self, exit_status: str, reason: str, now: float) -> dict[str, Any]:
        """The run stop document."""
        return {
            "uid": new_uid(),
            "time": now,
            "run_start": self.uid,
            "exit_status": exit_status,
            "reason": reason,
            "num_events": {name: count - 1 for name, count in self.seq.items()},
        }

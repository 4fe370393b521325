"""The Log: what *did* happen, as immutable events appended in order.

`Log.append` is the hot path of the whole library: every job start, every throttled command,
every plan message goes through it. It never awaits: it stamps the event from the Clock, keeps
it in a bounded in-memory ring, hands the event and its JSON to the durable sink (which
batches in its own thread) and wakes the matching subscribers. It blocks the loop only as
backpressure, when a durable sink falls behind its loss bound (`SQLiteLog`: the oldest
uncommitted event nears `flush_interval`), and then only until the sink has caught up: a log
that promises to lose at most 100 ms of events in a crash cannot let producers run further
ahead of the disk than that.

Reads: `Log.recent` looks at the ring (sync, instant); `await Log.query` asks the durable sink
when there is one (after flushing), so it also sees what has scrolled out of the ring, and
events of kinds this process has not registered (a newer version's, a part not imported).
A Log over a read-only sink (``SQLiteLog(path, readonly=True)``) reads and never appends.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Iterable
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Protocol, Self, runtime_checkable

import anyio
import msgspec

from ._clock import Clock, current_clock, to_timestamp
from ._events import Event, check_kind, check_kind_name, is_reserved, normalize_payload
from ._events import _kind_names as _KINDS
from ._exceptions import EventKindError, EventPayloadError, LogError

__all__ = ["Log", "LogSink", "Subscription"]

_encode = msgspec.json.Encoder().encode


@runtime_checkable
class LogSink(Protocol):
    """A durable destination for the Log's events (e.g. `timecontrol.stores.SQLiteLog`).

    `write` is called on the loop for every event: queue and return. It may block only as
    backpressure, briefly, when the sink falls behind the loss bound it promises.

    Optional: a sink with a true ``readonly`` attribute only reads; a `Log` over it refuses
    appends with `LogError`. A sink with a ``pace(seq)`` method has it called before the Log
    stamps event `seq` (the loop's thread, every event): that is where it may block as
    backpressure, so that an event's times are those at which it was recorded.
    """

    def last_seq(self) -> int:
        """The highest sequence number already stored (0 if none): the Log continues after it."""
        ...

    def write(self, event: Event, payload: bytes) -> None:
        """Queue one event (with its payload as JSON) for writing; never blocks."""
        ...

    async def flush(self) -> None:
        """Return once everything queued so far is durable."""
        ...

    async def query(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        kinds: Collection[str] | None = None,
        subjects: Collection[str] | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """Events matching every given filter, in sequence order (or newest first)."""
        ...

    async def aclose(self) -> None:
        """Flush and release the sink."""
        ...


def _kindset(kinds: str | Collection[str] | None) -> frozenset[str] | None:
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = (kinds,)
    for kind in kinds:
        check_kind(kind)
    return frozenset(kinds)


def _readkinds(kinds: str | Collection[str] | None) -> frozenset[str] | None:
    """Kinds to read back: well-formed names, registered here or not (a store may hold
    kinds of a newer version, or of a part this process did not import)."""
    if kinds is None:
        return None
    if isinstance(kinds, str):
        kinds = (kinds,)
    return frozenset(check_kind_name(kind) for kind in kinds)


def _subjectset(subjects: str | Collection[str] | None) -> frozenset[str] | None:
    if subjects is None:
        return None
    return frozenset((subjects,) if isinstance(subjects, str) else subjects)


def _matches(
    event: Event,
    kinds: frozenset[str] | None,
    subjects: frozenset[str] | None,
) -> bool:
    return (kinds is None or event.kind in kinds) and (
        subjects is None or event.subject in subjects
    )


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise LogError(f"limit must be None or a non-negative int, got {limit!r}")


def _check_subject(subject: object) -> str:
    """A subject as a plain str that UTF-8 can store; `EventPayloadError` otherwise.

    Without this check a subject such as ``5`` came back from a store as ``"5"``, and one
    holding a lone surrogate stopped the SQLite writer, losing every later event.
    """
    if not isinstance(subject, str):
        raise EventPayloadError(
            f"event subject must be a str (a job, plan or command id, or ''), got {subject!r} "
            f"({type(subject).__name__})"
        )
    try:
        subject.encode()
    except UnicodeEncodeError as exc:
        raise EventPayloadError(
            f"event subject {subject!r} is not valid Unicode text ({exc.reason}); "
            "give a str that UTF-8 can encode"
        ) from None
    return str.__str__(subject)  # a str subclass (e.g. an enum member) as its plain value


class Subscription:
    """An async iterator over new events that match a filter.

    Created by `Log.subscribe`; use it as ``async with log.subscribe(...) as sub:`` and
    ``async for event in sub``. A subscriber that falls more than `buffer` events behind
    loses the oldest ones (counted in `dropped`) rather than slowing the Log down.
    """

    def __init__(
        self,
        log: Log,
        kinds: frozenset[str] | None,
        subjects: frozenset[str] | None,
        buffer: int,
    ) -> None:
        self._log = log
        self.kinds = kinds
        self.subjects = subjects
        self._queue: deque[Event] = deque()
        self._buffer = buffer
        self._wakeup: anyio.Event | None = None
        self._closed = False
        #: Events lost because this subscriber fell more than `buffer` behind.
        self.dropped = 0

    def _deliver(self, event: Event) -> None:
        if len(self._queue) >= self._buffer:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()

    def close(self) -> None:
        """Stop receiving; a pending `get` ends the iteration."""
        if not self._closed:
            self._closed = True
            self._log._unsubscribe(self)
            wakeup, self._wakeup = self._wakeup, None
            if wakeup is not None:
                wakeup.set()

    def pending(self) -> int:
        """Events received and not yet read."""
        return len(self._queue)

    def get_nowait(self) -> Event | None:
        """The next event if one is waiting, else None."""
        return self._queue.popleft() if self._queue else None

    async def get(self) -> Event:
        """Wait for the next event. Raises `StopAsyncIteration` once closed and drained."""
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            if self._wakeup is None:
                self._wakeup = anyio.Event()
            await self._wakeup.wait()
        return self._queue.popleft()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Log:
    """The append-only record of everything that happened.

    Args:
        clock: where timestamps come from (default: `current_clock()` when first used).
        ring_size: how many recent events stay in memory for `recent` (default 100,000).
        sink: an optional durable sink (e.g. `timecontrol.stores.SQLiteLog`); sequence numbers
            continue after the sink's last stored event.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        ring_size: int = 100_000,
        sink: LogSink | None = None,
    ) -> None:
        if not isinstance(ring_size, int) or ring_size < 1:
            raise LogError(f"ring_size must be a positive int, got {ring_size!r}")
        self._clock = clock
        self._ring: deque[Event] = deque(maxlen=ring_size)
        self._sink = sink
        self._seq = sink.last_seq() if sink is not None else 0
        self._subscribers: list[Subscription] = []
        self._closed = False
        # Why appends are refused (None: they are not); one check on the hot path for both.
        self._refusal: str | None = None
        # A sink's backpressure, called before each event is stamped (see `LogSink`), so that
        # an event's times are those at which it was recorded, after any wait.
        self._pace: Callable[[int], None] | None = getattr(sink, "pace", None)
        if sink is not None and getattr(sink, "readonly", False) is True:
            self._refusal = (
                f"this Log reads the read-only store {sink!r}; events can no longer be "
                "appended (open the store without readonly=True to write)"
            )

    @property
    def clock(self) -> Clock:
        """The clock stamping this Log's events."""
        if self._clock is None:
            self._clock = current_clock()
        return self._clock

    @property
    def sink(self) -> LogSink | None:
        """The durable sink, if any."""
        return self._sink

    @property
    def closed(self) -> bool:
        """True once `aclose` was called: the Log takes no more events (reads still work)."""
        return self._closed

    @property
    def last_seq(self) -> int:
        """Sequence number of the newest event (0 before the first)."""
        return self._seq

    @property
    def ring_size(self) -> int:
        """Capacity of the in-memory ring."""
        return self._ring.maxlen or 0

    def append(self, kind: str, subject: str = "", payload: dict[str, Any] | None = None) -> Event:
        """Record an event now and return it. Call it from the loop's thread.

        For your own kinds (`register_kind`) and ``log.note``: timecontrol's own record kinds
        (``job.*``, ``engine.*``, ``plan.*``, ...) are written by the library only, and
        appending one raises `EventKindError` (nothing is recorded). Raises `EventKindError`
        for an unregistered kind and `EventPayloadError` for a payload
        that is not JSON or a subject that is not a str; in each case nothing is recorded. The
        event carries the payload as JSON reads it back (see `normalize_payload`: a tuple
        becomes a list, NaN None, ...), so that `recent`, `query` and the durable sink all
        return the same event. With a durable sink it may block briefly as backpressure, when
        the disk falls behind the sink's loss bound (see the module docstring); over a
        read-only sink it raises `LogError`.
        """
        if is_reserved(kind):
            raise EventKindError(
                f"event kind {kind!r} is one of timecontrol's own records and is written by the "
                "library only; register a kind of your own (timecontrol.register_kind, e.g. "
                "'mylab.sample') or use 'log.note'"
            )
        return self._emit(kind, subject, payload)

    def _emit(self, kind: str, subject: str = "", payload: dict[str, Any] | None = None) -> Event:
        """`append` for the library's own kinds (reserved ones included)."""
        if self._refusal is not None:
            raise LogError(self._refusal)
        if kind not in _KINDS:
            check_kind(kind)
        if type(subject) is not str or not subject.isascii():
            subject = _check_subject(subject)
        if payload is None:
            payload = {}
        # Encoding here validates the payload before anything is recorded, and spreads the
        # JSON work evenly over the loop instead of in bursts in the writer thread.
        payload, encoded = normalize_payload(kind, payload)
        if self._pace is not None:
            self._pace(self._seq + 1)
        clock = self._clock or self.clock
        mono, wall = clock.monotonic(), clock.time()
        self._seq += 1
        event = Event(self._seq, mono, wall, kind, subject, payload)
        self._ring.append(event)
        if self._sink is not None:
            self._sink.write(event, encoded)
        for sub in self._subscribers:
            if (sub.kinds is None or kind in sub.kinds) and (
                sub.subjects is None or subject in sub.subjects
            ):
                sub._deliver(event)
        return event

    def _append_plain(
        self,
        kind: str,
        subject: str,
        payload: dict[str, Any],
        mono: float | None = None,
        wall: float | None = None,
    ) -> Event:
        """`append` for library code whose payload is already what JSON reads back.

        The caller guarantees that `kind` is registered and that `payload` is a fresh dict
        (nobody else keeps it) with str keys and only str, int, bool, None and *finite*
        float values, for which `normalize_payload` is the identity; the decode is skipped,
        and the encode too when there is no durable sink. Same event, same order, same
        subscribers as `append` (the scheduler records every run through it). `mono` and
        `wall`: the Clock's readings if the caller has just taken them (both or neither).
        """
        if self._refusal is not None:
            raise LogError(self._refusal)
        if type(subject) is not str or not subject.isascii():
            subject = _check_subject(subject)
        sink = self._sink
        encoded = _encode(payload) if sink is not None else b""
        if self._pace is not None:
            self._pace(self._seq + 1)
        if mono is None or wall is None:
            clock = self._clock or self.clock
            mono, wall = clock.monotonic(), clock.time()
        self._seq += 1
        event = Event(self._seq, mono, wall, kind, subject, payload)
        self._ring.append(event)
        if sink is not None:
            sink.write(event, encoded)
        for sub in self._subscribers:
            if (sub.kinds is None or kind in sub.kinds) and (
                sub.subjects is None or subject in sub.subjects
            ):
                sub._deliver(event)
        return event

    def subscribe(
        self,
        kinds: str | Collection[str] | None = None,
        subjects: str | Collection[str] | None = None,
        *,
        buffer: int = 100_000,
    ) -> Subscription:
        """Receive every future event whose kind and subject match (None = any).

        On a closed Log there are no future events: the subscription comes back closed.
        """
        if buffer < 1:
            raise LogError(f"buffer must be a positive int, got {buffer!r}")
        sub = Subscription(self, _kindset(kinds), _subjectset(subjects), buffer)
        if self._closed:
            sub._closed = True  # no future events: iterating ends at once instead of hanging
        else:
            self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def recent(
        self,
        *,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        kinds: str | Collection[str] | None = None,
        subjects: str | Collection[str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """Matching events still in the in-memory ring (`since` inclusive, `until` exclusive).

        With `limit`, the oldest `limit` matches (or the newest, with `newest_first`).
        """
        _check_limit(limit)
        if limit == 0:
            return []
        lo = -math.inf if since is None else to_timestamp(since, "since")
        hi = math.inf if until is None else to_timestamp(until, "until")
        ks, ss = _kindset(kinds), _subjectset(subjects)
        source: Iterable[Event] = reversed(self._ring) if newest_first else self._ring
        out: list[Event] = []
        for event in source:
            if lo <= event.wall < hi and _matches(event, ks, ss):
                out.append(event)
                if limit is not None and len(out) >= limit:
                    break
        return out

    async def query(
        self,
        *,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        kinds: str | Collection[str] | None = None,
        subjects: str | Collection[str] | None = None,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """Like `recent`, but over the durable sink when there is one (everything ever kept).

        Over a sink, `kinds` may name kinds this process has not registered (the store may
        hold them); they must still be well-formed names.
        """
        _check_limit(limit)
        if self._sink is None:
            return self.recent(
                since=since,
                until=until,
                kinds=kinds,
                subjects=subjects,
                limit=limit,
                newest_first=newest_first,
            )
        await self._sink.flush()
        return await self._sink.query(
            since=None if since is None else to_timestamp(since, "since"),
            until=None if until is None else to_timestamp(until, "until"),
            kinds=_readkinds(kinds),
            subjects=_subjectset(subjects),
            limit=limit,
            newest_first=newest_first,
        )

    async def purge(self, older_than: timedelta | float) -> int:
        """Delete events older than `older_than` (a timedelta, or seconds) before now.

        Applies to the durable sink (returns how many it deleted) and to the ring.
        """
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        if not (isinstance(seconds, int | float) and seconds >= 0):
            raise LogError(f"older_than must be a non-negative duration, got {older_than!r}")
        before = self.clock.time() - seconds
        # Not just a prefix of the ring: after a wall-clock step backwards the ring is not in
        # wall order, and the sink deletes by wall time whatever the order.
        ring = self._ring
        kept = [event for event in ring if event.wall >= before]
        if len(kept) < len(ring):
            ring.clear()
            ring.extend(kept)
        purge = getattr(self._sink, "purge", None)
        if purge is None:
            return 0
        count: int = await purge(before)
        return count

    async def flush(self) -> None:
        """Return once every event appended so far is durable (no-op without a sink)."""
        if self._sink is not None:
            await self._sink.flush()

    async def aclose(self) -> None:
        """Flush and close the sink and end every subscription. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._refusal = "this Log is closed; events can no longer be appended"
        for sub in list(self._subscribers):
            sub.close()
        if self._sink is not None:
            await self._sink.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __len__(self) -> int:
        """Events currently in the ring."""
        return len(self._ring)

    def __repr__(self) -> str:
        return f"<Log last_seq={self._seq} in_ring={len(self._ring)} sink={self._sink!r}>"

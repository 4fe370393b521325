"""Faults and recovery: what an instrument does when a command did not end cleanly.

After anything that may leave a reply on the wire unread (a timeout, a reply that did not
parse, a cancelled call) the instrument is *dirty*: before its next command it drains stale
input and confirms with its sync probe that the next reply will answer the next question.
After a transport error it is *broken*: it reconnects, with backoff, and then confirms. This
module holds that state machine as a mixin of `Instrument`, which owns the flags, the
counters and the transport; the exchange itself (lock, watchdogs, limiters, retries) stays in
`_instrument.py`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import anyio

from timecontrol._log import Log

from ._errors import InstrumentTimeout, ReplyParseError, TransportError
from ._events import record
from ._transport import Transport
from ._types import InstrumentStats, SyncProbe

__all__ = ["Recovery"]


class Recovery:
    """The fault paths and the recovery of an `Instrument` (a mixin: it owns no state).

    The attributes below are set by `Instrument` (its class attributes are documented there);
    they are only declared here.
    """

    drain_quiet: ClassVar[float | None]
    resync_timeout: ClassVar[float | None]
    resync_rounds: ClassVar[int]
    reconnect_attempts: ClassVar[int]
    reconnect_delay: ClassVar[float]
    reconnect_max_delay: ClassVar[float]
    name: str
    stats: InstrumentStats
    _transport: Transport
    _log: Log | None
    _dirty: bool
    _broken: bool

    def sync_probe(self) -> SyncProbe | None:
        """The query that confirms synchronisation after a fault; ``None``: drain only.

        The base class has none (it knows no protocol); `ScpiInstrument` uses ``*OPC?``. Return
        a *unique* probe (an echo of a fresh token) where the instrument allows it.
        """
        return None

    def _record(self, kind: str, payload: dict[str, Any]) -> None:
        record(self._log, kind, self.name, {"address": self._transport.address, **payload})

    def _record_error(self, command: str, exc: BaseException) -> None:
        payload = {"command": command, "error": type(exc).__name__, "message": str(exc)}
        self._record("instrument.error", payload)

    # The fault paths: count, record, and build the error to raise.

    def _timed_out(self, command: str, t: float, detail: str) -> InstrumentTimeout:
        self.stats.timeouts += 1
        self._record("instrument.timeout", {"command": command, "timeout": t, "detail": detail})
        return InstrumentTimeout(command, t, detail)

    def _bad_reply(self, command: str, reply: str, expected: str) -> ReplyParseError:
        self.stats.parse_errors += 1
        # repr(): a garbled reply holds undecodable bytes as lone surrogates, which JSON (and
        # so the Log) cannot carry; the repr shows them as escapes, as the error message does.
        self._record(
            "instrument.bad_reply", {"command": command, "reply": repr(reply), "expected": expected}
        )
        return ReplyParseError(command, reply, expected)

    def _lost(self, command: str, exc: TransportError) -> None:
        self._broken = True
        self.stats.transport_errors += 1
        self._record("instrument.connection_lost", {"command": command, "message": str(exc)})

    async def _make_ready(self, t: float) -> None:
        # Two passes: a resync that fails turns into a reconnect, which is then confirmed.
        for _ in range(2):
            if self._broken:
                await self._reconnect()
                # A fresh connection can still carry stale input (a serial line, a VISA
                # device's output buffer): confirm before trusting it.
                self._dirty = True
            if not self._dirty:
                return
            if await self._resync(t):
                return
            self._broken = True
        raise TransportError(f"{self!r}: cannot resynchronise, even after reconnecting")

    async def _resync(self, t: float) -> bool:
        """Drain stale input and confirm with the probe; True when in step again."""
        stale_before = self.stats.stale_replies
        ok = await self._drain_and_probe(t)
        self._record(
            "instrument.resync",
            {
                "ok": ok,
                "stale": self.stats.stale_replies - stale_before,
                "probe": probe.command if (probe := self.sync_probe()) is not None else None,
            },
        )
        return ok

    async def _drain_and_probe(self, t: float) -> bool:
        probe = self.sync_probe()
        quiet = self.drain_quiet if self.drain_quiet is not None else min(t, 0.1)
        wait = self.resync_timeout if self.resync_timeout is not None else 4 * t
        transport = self._transport
        for _ in range(self.resync_rounds):
            try:
                await transport.clear()
                self.stats.stale_replies += len(await transport.drain(quiet))
                if probe is None:
                    break
                if not await self._probe(probe, wait):
                    continue
                if not probe.unique:
                    # The match may have been a stale reply that happened to equal the probe's
                    # answer; then the real answer arrives now, and we go round again.
                    late = await transport.drain(quiet)
                    if late:
                        self.stats.stale_replies += len(late)
                        continue
                break
            except InstrumentTimeout:
                continue
            except TransportError:
                self._broken = True
                self.stats.transport_errors += 1
                return False
        else:
            return False
        self._dirty = False
        self.stats.resyncs += 1
        return True

    async def _probe(self, probe: SyncProbe, wait: float) -> bool:
        """Send the probe; read (and discard as stale) until its answer or `wait` expires."""
        transport = self._transport
        deadline = anyio.current_time() + wait
        await transport.write(probe.command, wait)
        while (remaining := deadline - anyio.current_time()) > 0:
            try:
                reply = await transport.read(remaining)
            except InstrumentTimeout:
                return False
            if reply.strip() == probe.reply:
                return True
            self.stats.stale_replies += 1
        return False

    async def _reconnect(self) -> None:
        """Close and reopen the transport, with exponential backoff between failed attempts."""
        delay = self.reconnect_delay
        error: TransportError | None = None
        for attempt in range(self.reconnect_attempts):
            if attempt:
                await anyio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_delay)
            await self._transport.close()
            try:
                await self._transport.open()
            except TransportError as exc:
                error = exc
                continue
            self._broken = False
            self.stats.reconnects += 1
            payload = {"ok": True, "attempts": attempt + 1, "error": None}
            self._record("instrument.reconnect", payload)
            return
        self._record(
            "instrument.reconnect",
            {"ok": False, "attempts": self.reconnect_attempts, "error": str(error)},
        )
        raise TransportError(
            f"{self!r}: could not reconnect after {self.reconnect_attempts} attempts: {error}"
        ) from error

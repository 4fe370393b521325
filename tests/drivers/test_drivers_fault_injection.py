"""The fault-injection acceptance test: 10,000 queries from 8 concurrent tasks against the TCP
emulator, with 1 % of replies late, 1 % dropped and 1 % garbled (and a few disconnects).

Every query's expected reply is unique (an echo of a counter), so a reply handed to the wrong
query cannot go unnoticed. Every query must either return exactly its own reply or raise a
typed driver error; idempotent ones are retried, the others surface their error.

Real sockets mean real time: the timeout is 20 ms and a late reply comes 40 ms late.
"""

from __future__ import annotations

import itertools
from collections import Counter

import anyio
import pytest
from timecontrol.drivers import (
    InstrumentTimeout,
    ReplyParseError,
    ScpiInstrument,
    SyncProbe,
    TransportError,
)
from timecontrol.drivers.sim import Emulator, Faults, PowerSupplyModel

pytestmark = pytest.mark.anyio

T = 0.02
TYPED = (InstrumentTimeout, ReplyParseError, TransportError)


class EchoOpc(ScpiInstrument):
    """Resynchronises with the default ``*OPC?`` probe (replies are never ``1`` here).

    The drain is kept short (5 ms) so that most late replies arrive *after* it, during the
    probe: the harder case, where the probe loop must recognise and discard them.
    """

    default_timeout = T
    drain_quiet = 0.005
    reconnect_delay = 0.002


class EchoToken(EchoOpc):
    """Resynchronises with a unique token, with a short drain: stale replies that arrive after
    the drain are recognised by the probe loop instead."""

    drain_quiet = 0.002
    _tokens = itertools.count()

    def sync_probe(self) -> SyncProbe:
        token = f"SYNC{next(self._tokens)}"
        return SyncProbe(f"ECHO? {token}", token, unique=True)


async def run_fault_injection(
    cls: type[EchoOpc], queries: int, tasks: int, idempotent_share: float
) -> dict[str, int]:
    faults = Faults(late=0.01, drop=0.01, garble=0.01, disconnect=0.001, late_delay=2 * T, seed=7)
    emu = Emulator(PowerSupplyModel(), faults)
    counter = itertools.count(1000)  # never "0" or "1": no reply looks like *OPC?'s
    outcome: Counter[str] = Counter()
    per_task = queries // tasks
    async with emu.serve_tcp() as address, cls(address) as inst:

        async def worker(index: int) -> None:
            idempotent = index < tasks * idempotent_share
            for _ in range(per_task):
                n = next(counter)
                try:
                    reply = await inst.query_int(f"ECHO? {n}", idempotent=idempotent)
                except TYPED as exc:
                    outcome[f"raised {type(exc).__name__}"] += 1
                    assert not idempotent or inst.retries < 99  # (bounded retries may run out)
                    continue
                outcome["ok" if reply == n else "WRONG"] += 1

        async with anyio.create_task_group() as tg:
            for index in range(tasks):
                tg.start_soon(worker, index)
        stats = inst.stats
    outcome.update({f"injected {k}": v for k, v in faults.injected.items()})
    outcome["retries"] = stats.retries
    outcome["resyncs"] = stats.resyncs
    outcome["reconnects"] = stats.reconnects
    return dict(outcome)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_ten_thousand_queries_never_get_a_wrong_reply() -> None:
    # Half the tasks declare their queries idempotent (retried), half do not (errors surface).
    result = await run_fault_injection(EchoOpc, queries=10_000, tasks=8, idempotent_share=0.5)
    assert result.get("WRONG", 0) == 0
    answered = sum(v for k, v in result.items() if k == "ok" or k.startswith("raised"))
    assert answered == 10_000
    assert result["injected late"] > 50
    assert result["injected garble"] > 50
    assert result["injected drop"] > 50
    assert result["retries"] > 0
    assert result["resyncs"] > 100
    # the non-idempotent half surfaced its failures as typed errors
    assert result.get("raised InstrumentTimeout", 0) > 0
    assert result.get("raised ReplyParseError", 0) > 0


@pytest.mark.parametrize("cls", [EchoOpc, EchoToken])
async def test_fault_injection_on_both_backends(cls: type[EchoOpc]) -> None:
    # A shorter run of the same scenario, so that trio and the unique-token probe are covered.
    result = await run_fault_injection(cls, queries=2_000, tasks=8, idempotent_share=1.0)
    assert result.get("WRONG", 0) == 0
    # every task retried: only a fault repeated on every attempt could surface
    assert result.get("ok", 0) >= 1_995

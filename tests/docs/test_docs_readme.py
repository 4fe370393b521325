"""The README's examples run as written (on virtual time where they would take hours)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import anyio
import pytest

import timecontrol as tc
from timecontrol.testing import VirtualClock

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def _block(marker: str) -> str:
    found = [b for b in BLOCKS if marker in b]
    assert len(found) == 1, f"expected one README block with {marker!r}"
    return found[0]


def test_concepts_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = _block("# no argument: in memory only")
    # Run it on virtual time: the module's code runs inside the virtual run (so the engine
    # picks up the virtual clock), and anyio.run(main) becomes an await.
    code = code.replace("anyio.run(main)", "")

    async def module() -> None:
        namespace: dict[str, Any] = {}
        exec(compile(code, "README.md", "exec"), namespace)
        await namespace["main"]()

    VirtualClock("2026-03-30T08:00+02:00").run(module)
    records = tc.stores.read_events(tmp_path / "lab.sqlite", kinds=["job.succeeded"])
    assert [r.subject for r in records] == ["kinetics"]
    assert records[0].payload["result"] == 0.42


def test_concepts_example_adds_jobs_before_any_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As written: jobs are added at import time, outside any event loop.
    monkeypatch.chdir(tmp_path)
    code = _block("# no argument: in memory only").replace("anyio.run(main)", "")
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    engine = namespace["engine"]
    assert [job.id for job in engine.jobs()] == ["kinetics", "routine"]
    assert engine.log.recent(kinds="job.added")[0].subject == "kinetics"


def test_cron_explain_example() -> None:
    block = _block('tc.cron("*/15 9-17 * * 1-5", tz="Europe/Berlin").explain()')
    expected = block.strip().splitlines()[-1].strip("'")
    assert tc.cron("*/15 9-17 * * 1-5", tz="Europe/Berlin").explain() == expected


def test_plans_example_runs() -> None:
    code = _block("await engine.run(scan([det], motor, -1, 1, 11))")
    body = "\n".join("    " + line for line in code.splitlines())
    namespace: dict[str, object] = {"tc": tc}
    exec(compile(f"async def main():\n{body}\n    return result\n", "README.md", "exec"), namespace)
    result = VirtualClock().run(namespace["main"])  # type: ignore[arg-type]
    assert result.exit_status == "success"
    assert result.plan_result == 11


def test_the_testing_example_is_a_passing_test(pytester: pytest.Pytester) -> None:
    code = _block("@pytest.mark.timecontrol(start=")
    pytester.makepyfile(test_readme_example=code)
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=2)


def test_restart_example_keeps_an_operators_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code = _block("# lab_service.py")

    def start() -> dict[str, Any]:
        namespace: dict[str, Any] = {"__name__": "lab_service"}
        exec(compile(code, "README.md", "exec"), namespace)
        return namespace

    async def first_run() -> None:
        engine: tc.Engine = start()["engine"]
        async with engine:
            await anyio.sleep(25 * 60)  # two weighings; virtual time
            engine.pause_job("balance")  # an operator pauses it

    async def second_run() -> list[str]:
        engine: tc.Engine = start()["engine"]  # the script runs again after a restart
        assert not engine.get_job("balance").enabled  # still paused
        async with engine:
            await anyio.sleep(60 * 60)  # virtual time
        return [r.status for r in await engine.history("balance")]

    VirtualClock("2026-03-30T08:00+02:00").run(first_run)
    statuses = VirtualClock("2026-03-30T09:00+02:00").run(second_run)
    assert statuses.count("success") == 2  # nothing ran while paused


def test_sequence_snippet_runs() -> None:
    # The README's sequence snippet, as written, inside a running engine on virtual time.
    block = _block("seq = engine.sequence(")
    body = "".join(f"    {line}\n" for line in block.splitlines())
    namespace: dict[str, Any] = {"tc": tc}
    source = f"async def snippet(engine):\n{body}    return seq\n"
    exec(compile(source, "README.md", "exec"), namespace)
    drawn: list[float] = []

    async def main() -> None:
        engine = tc.Engine()

        @engine.action
        async def draw(volume_ul: float) -> float:
            drawn.append(volume_ul)
            return volume_ul

        @engine.action
        async def analyse() -> str:
            return "ok"

        async with engine:
            seq = await namespace["snippet"](engine)
            assert seq.state == "finished"
            points = seq.points()
            # 15 planned points and the manual one, each with both actions done.
            assert len(points) == 16
            assert sum(1 for p in points if p.manual) == 1
            assert all(p.status == "succeeded" for p in points)

    VirtualClock("2026-03-30T08:00+02:00").run(main)
    assert drawn == [20] * 16


def test_bluesky_drop_in_snippet_runs(capsys: pytest.CaptureFixture[str]) -> None:
    # The README's drop-in snippet, as pasted (real bluesky and ophyd.sim), then shut down.
    namespace: dict[str, Any] = {}
    exec(compile(_block("RE = SyncRunEngine()"), "README.md", "exec"), namespace)
    try:
        uids = namespace["uids"]
        assert len(uids) == 1
        out = capsys.readouterr().out
        names = [line.split(" ", 1)[0] for line in out.splitlines()]
        # print(name, doc): one start, a descriptor, the three readings, one stop.
        assert names == ["start", "descriptor", "event", "event", "event", "stop"]
    finally:
        namespace["RE"].close()

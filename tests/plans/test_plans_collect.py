"""``collect`` for flyers, declared collect streams, and stream assets (StreamResource and
StreamDatum), as bluesky 1.16's run engine composes them."""

from __future__ import annotations

from typing import Any

import pytest
from plans_support import docs, running

from timecontrol.plans import IllegalMessageSequence, Msg, PlanArgumentError

vt = pytest.mark.timecontrol


def _key(source: str, external: bool = False) -> dict[str, Any]:
    key: dict[str, Any] = {"source": source, "dtype": "number", "shape": []}
    if external:
        key["external"] = "STREAM:"
    return key


class OldFlyer:
    """An old-style flyer: two streams in describe_collect(), partial events from collect()."""

    name = "flyer"

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def kickoff(self) -> None:
        return None

    def complete(self) -> None:
        return None

    def describe_collect(self) -> dict[str, Any]:
        return {"fast": {"x": _key("x"), "y": _key("y")}, "slow": {"t": _key("t")}}

    def collect(self) -> Any:
        batch = self.batches.pop(0)
        yield from batch


def _fast(i: int) -> dict[str, Any]:
    return {"data": {"x": i, "y": 2 * i}, "timestamps": {"x": 10.0 + i, "y": 10.0 + i}}


def _slow(i: int) -> dict[str, Any]:
    return {"data": {"t": 100 + i}, "timestamps": {"t": 20.0 + i}}


@vt
async def test_old_style_flyer_events_become_event_pages_per_stream() -> None:
    flyer = OldFlyer()
    flyer.batches = [[_fast(0), _slow(0), _fast(1)], [_fast(2)]]
    payloads: list[Any] = []

    def plan() -> Any:
        yield Msg("open_run")
        yield Msg("kickoff", flyer, group="k")
        yield Msg("wait", None, group="k")
        payloads.append((yield Msg("collect", flyer)))
        payloads.append((yield Msg("collect", flyer, return_payload=False)))
        yield Msg("close_run")

    async with running() as (engine, re_):
        seen: list[str] = []
        re_.subscribe(lambda name, doc: seen.append(name))
        result = await re_.run(plan())
    assert result.exit_status == "success"
    assert payloads == [[_fast(0), _slow(0), _fast(1)], None]
    descriptors = {d["name"]: d for d in docs(engine, "descriptor")}
    assert set(descriptors) == {"fast", "slow"}
    assert set(descriptors["fast"]["data_keys"]) == {"x", "y"}
    pages = docs(engine, "event_page")
    assert [(p["descriptor"], p["seq_num"]) for p in pages] == [
        (descriptors["fast"]["uid"], [1, 2]),
        (descriptors["slow"]["uid"], [1]),
        (descriptors["fast"]["uid"], [3]),
    ]
    assert pages[0]["data"] == {"x": [0, 1], "y": [0, 2]}
    assert pages[0]["timestamps"] == {"x": [10.0, 11.0], "y": [10.0, 11.0]}
    assert len(set(pages[0]["uid"])) == 2
    [stop] = docs(engine, "stop")
    assert stop["num_events"] == {"fast": 3, "slow": 1}
    assert seen == ["start", "descriptor", "descriptor", *["event_page"] * 3, "stop"]


class AssetFlyer:
    """A flyer with a declared stream: rows in pages (key ``n``), frames in an external file
    (keys ``img1``, ``img2``) announced through stream_resource/stream_datum documents."""

    name = "det"

    def __init__(self, widths: list[int]) -> None:
        self.widths = widths
        self.calls = 0
        self.frames = 0

    def kickoff(self) -> None:
        return None

    def describe_collect(self) -> dict[str, Any]:
        return {"img1": _key("f", True), "img2": _key("f", True), "n": _key("n")}

    def collect_pages(self) -> list[dict[str, Any]]:
        width = self.widths[self.calls - 1]
        return [{"data": {"n": list(range(width))}, "timestamps": {"n": [1.0] * width}}]

    def collect_asset_docs(self) -> Any:
        self.calls += 1
        if self.calls == 1:
            for key in ("img1", "img2"):
                yield "stream_resource", {"uid": f"res-{key}", "data_key": key, "uri": "x"}
        width = self.widths[self.calls - 1]
        for key in ("img1", "img2"):
            start = self.frames
            yield (
                "stream_datum",
                {
                    "uid": f"{key}-{self.calls}",
                    "stream_resource": f"res-{key}",
                    "descriptor": "",
                    "indices": {"start": start, "stop": start + width},
                    "seq_nums": {"start": 0, "stop": 0},
                },
            )
        self.frames += width


def _asset_plan(flyer: AssetFlyer, collects: int) -> Any:
    yield Msg("open_run")
    yield Msg("kickoff", flyer)
    yield Msg("declare_stream", None, flyer, name="primary", collect=True)
    for _ in range(collects):
        yield Msg("collect", flyer, name="primary")
    yield Msg("close_run")


@vt
async def test_declared_stream_with_stream_assets_gets_seq_nums_filled_in() -> None:
    flyer = AssetFlyer([3, 2])
    async with running() as (engine, re_):
        result = await re_.run(_asset_plan(flyer, 2))
        assert result.exit_status == "success"
        [start] = docs(engine, "start")
        [descriptor] = docs(engine, "descriptor")
        assert descriptor["data_keys"]["img1"]["external"] == "STREAM:"
        resources = docs(engine, "stream_resource")
        assert [r["data_key"] for r in resources] == ["img1", "img2"]
        assert {r["run_start"] for r in resources} == {start["uid"]}
        datums = docs(engine, "stream_datum")
        assert [d["seq_nums"] for d in datums] == [
            {"start": 1, "stop": 4},
            {"start": 1, "stop": 4},
            {"start": 4, "stop": 6},
            {"start": 4, "stop": 6},
        ]
        assert {d["descriptor"] for d in datums} == {descriptor["uid"]}
        pages = docs(engine, "event_page")
        assert [p["seq_num"] for p in pages] == [[1, 2, 3], [4, 5]]
        [stop] = docs(engine, "stop")
        assert stop["num_events"] == {"primary": 5}
        kinds = [e.kind for e in engine.log.recent(kinds=None) if e.kind.startswith("run.")]
        # assets come before the rows they describe
        assert kinds.index("run.stream_datum") < kinds.index("run.event_page")


@vt
async def test_stream_datum_of_mismatched_widths_fails_the_plan() -> None:
    flyer = AssetFlyer([3])

    def mismatched() -> Any:
        docs_ = list(AssetFlyer.collect_asset_docs(flyer))
        docs_[-1][1]["indices"] = {"start": 0, "stop": 1}  # img2 one row wide, img1 three
        return iter(docs_)

    flyer.collect_asset_docs = mismatched  # type: ignore[method-assign]
    async with running() as (engine, re_):
        with pytest.raises(PlanArgumentError, match="1 rows wide"):
            await re_.run(_asset_plan(flyer, 1))
        [stop] = docs(engine, "stop")
        assert stop["exit_status"] == "fail"


class ExternalReadable:
    """A readable device whose frames go to a file: each save announces one row."""

    name = "cam"

    def __init__(self) -> None:
        self.frames = 0

    def read(self) -> dict[str, Any]:
        return {"cam_sum": {"value": self.frames, "timestamp": 1.0}}

    def describe(self) -> dict[str, Any]:
        return {"cam_img": _key("file", True), "cam_sum": _key("sum")}

    def collect_asset_docs(self) -> Any:
        if self.frames == 0:
            yield "stream_resource", {"uid": "r", "data_key": "cam_img", "uri": "x"}
        yield (
            "stream_datum",
            {
                "uid": f"d{self.frames}",
                "stream_resource": "r",
                "descriptor": "",
                "indices": {"start": self.frames, "stop": self.frames + 1},
                "seq_nums": {"start": 0, "stop": 0},
            },
        )
        self.frames += 1


@vt
async def test_save_announces_the_assets_of_the_event() -> None:
    cam = ExternalReadable()

    def plan() -> Any:
        yield Msg("open_run")
        for _ in range(3):
            yield Msg("create", name="primary")
            yield Msg("read", cam)
            yield Msg("save")
        yield Msg("close_run")

    async with running() as (engine, re_):
        await re_.run(plan())
        events = docs(engine, "event")
        datums = docs(engine, "stream_datum")
        assert [e["seq_num"] for e in events] == [1, 2, 3]
        assert [d["seq_nums"] for d in datums] == [{"start": n, "stop": n + 1} for n in (1, 2, 3)]
        assert len(docs(engine, "stream_resource")) == 1


@vt
async def test_collect_mistakes_are_refused() -> None:
    flyer = OldFlyer()
    flyer.batches = [[{"data": {"z": 1}, "timestamps": {"z": 1.0}}]]
    async with running() as (_, re_):
        with pytest.raises(IllegalMessageSequence, match="open run"):
            await re_.run([Msg("collect", flyer)])
        with pytest.raises(PlanArgumentError, match="collect\\(\\), collect_pages\\(\\)"):
            await re_.run([Msg("open_run"), Msg("collect", object()), Msg("close_run")])
        with pytest.raises(PlanArgumentError, match="no stream"):
            await re_.run([Msg("open_run"), Msg("collect", flyer), Msg("close_run")])
        with pytest.raises(IllegalMessageSequence, match="declare the stream first"):
            await re_.run(
                [Msg("open_run"), Msg("collect", AssetFlyer([1]), name="p"), Msg("close_run")]
            )
        with pytest.raises(IllegalMessageSequence, match="declare that stream"):
            await re_.run([Msg("open_run"), Msg("collect", AssetFlyer([1])), Msg("close_run")])

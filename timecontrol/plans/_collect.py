"""``collect`` for flyers, and the external assets of devices (bluesky 1.16's bundler rules).

``Msg("collect", flyer, *more, name=None, return_payload=True)`` takes what a flyer has
gathered since ``kickoff``:

* **Old-style flyers** (no declared stream): ``describe_collect()`` returns
  ``{stream: {data key: description}}``; every stream gets a descriptor (once per run), and
  the partial events of ``collect()`` (``{"data", "timestamps"}``) become one
  ``event_page`` per stream, each row taking the stream's next ``seq_num``.
* **Declared streams**: ``declare_stream(flyer, name=..., collect=True)`` describes the
  stream from ``describe_collect()`` (one level: data key -> description); ``collect`` then
  fills that stream, from ``collect_pages()`` (event pages) or ``collect()``.
* **External assets**: a device with ``collect_asset_docs()`` (``WritesStreamAssets``) hands
  out ``stream_resource``/``stream_datum`` (and ``resource``/``datum``) documents. The run
  engine fills in ``run_start``, the stream's descriptor and the ``seq_nums`` the rows belong
  to (from the stream's counter; every datum of one collect has the same width), checks that
  each resource's data key is one of the descriptor's external (``"STREAM:"``) keys, and emits
  them before the events. Several such devices collected together are read up to the smallest
  ``get_index()``. A device without events advances the counter by the width itself. ``save``
  does the same for the devices of an event that write external assets (one row each).

Mistakes in what a device hands out raise `PlanArgumentError` (also event-model's
``EventModelValueError`` for mismatched widths and seq_nums, when event-model is loaded).
"""

from __future__ import annotations

from typing import Any

from ._commands import configuration_of
from ._compat import _merged, bluesky_class
from ._devices import maybe_await
from ._documents import OpenRun
from ._errors import IllegalMessageSequence, PlanArgumentError
from ._records import CommandHandler
from ._waiting import Waiting

__all__ = ["Collecting"]

_EXTERNAL = "STREAM:"


def _event_model_error(message: str) -> PlanArgumentError:
    """A `PlanArgumentError`, also event-model's ``EventModelValueError`` if it is loaded."""
    theirs = bluesky_class("EventModelValueError", "event_model")
    cls = PlanArgumentError if theirs is None else _merged(PlanArgumentError, theirs)
    error = cls(message)
    assert isinstance(error, PlanArgumentError)
    return error


async def _items(result: Any) -> list[Any]:
    """What a device's ``collect()``-like method gave: a list, a (sync or async) iterator,
    or a coroutine returning one."""
    result = await maybe_await(result)
    if hasattr(result, "__aiter__"):
        return [item async for item in result]
    return list(result or ())


def _is_data_key(value: Any) -> bool:
    return isinstance(value, dict) and {"dtype", "shape", "source"} <= value.keys()


def _external_keys(descriptor: dict[str, Any] | None) -> set[str]:
    if descriptor is None:
        return set()
    keys = descriptor["data_keys"]
    return {k for k, v in keys.items() if v.get("external") == _EXTERNAL}


class Collecting(Waiting):
    """``collect`` and ``declare_stream(..., collect=True)`` (mixed into `RunEngine`)."""

    def _collect_handlers(self) -> dict[str, CommandHandler]:
        return {"collect": self._cmd_collect, "declare_stream": self._cmd_declare_any_stream}

    async def _cmd_declare_any_stream(self, msg: Any) -> Any:
        if not msg.kwargs.get("collect"):
            return await self._cmd_declare_stream(msg)
        run = self._run_for(msg)
        name = str(msg.kwargs.get("name") or "primary")
        objs = [o for o in (msg.obj, *msg.args) if o is not None]
        described: list[tuple[Any, dict[str, Any]]] = []
        for obj in objs:
            self._seen[id(obj)] = obj
            keys = await self._describe_collect(obj, "declare_stream")
            if keys and not all(_is_data_key(v) for v in keys.values()):
                keys = keys.get(name, {}) if isinstance(keys.get(name), dict) else {}
            described.append((obj, dict(keys)))
        configuration = {self._name_of(o): await configuration_of(o) for o in objs}
        doc = run.stream_descriptor(name, described, configuration, self.host.clock.time())
        if doc is not None:
            self._emit("descriptor", doc, run.uid)
        run.collect_streams.setdefault(frozenset(id(o) for o in objs), []).append(name)
        return doc

    async def _cmd_collect(self, msg: Any) -> Any:
        run = self._run_for(msg)
        if msg.kwargs.get("stream") is True:
            raise PlanArgumentError(
                "collect(stream=True) is not supported: collect emits event pages "
                "(stream=False), as bluesky 1.16 does"
            )
        objs = [o for o in (msg.obj, *msg.args) if o is not None]
        for obj in objs:
            if not any(callable(getattr(obj, m, None)) for m in _COLLECT_METHODS):
                raise PlanArgumentError(
                    f"'collect' needs objects with collect(), collect_pages() or "
                    f"collect_asset_docs(), got {obj!r}"
                )
            self._seen[id(obj)] = obj
        stream = self._collect_stream(run, msg, objs)
        if stream is None:
            if len(objs) > 1:
                raise IllegalMessageSequence(
                    "collecting several objects needs a stream declared for all of them: "
                    "declare_stream(*objs, name=..., collect=True), then collect(..., name=...)"
                )
            await self._describe_flyer(run, objs[0])
        width = await self._collect_assets(run, stream, objs)
        if len(objs) == 1 and not _writes_stream_assets(objs[0]):
            payload = await self._collect_rows(run, objs[0], stream)
            if payload is not None:
                return payload if msg.kwargs.get("return_payload", True) else None
        if stream is not None:
            run.seq[stream] = run.seq.get(stream, 1) + width
        return None

    def _collect_stream(self, run: OpenRun, msg: Any, objs: list[Any]) -> str | None:
        """The stream `msg` collects into: its ``name``, or the one declared for `objs`."""
        declared = run.collect_streams.get(frozenset(id(o) for o in objs), [])
        name = msg.kwargs.get("name")
        if name is not None:
            if name not in declared:
                raise IllegalMessageSequence(
                    f"collect(name={name!r}): declare the stream first, with "
                    f"declare_stream(..., name={name!r}, collect=True)"
                )
            return str(name)
        if declared:
            if len(set(declared)) != 1:
                raise IllegalMessageSequence(
                    f"collect of objects declared in several streams {sorted(set(declared))}: "
                    "name the stream"
                )
            return declared[0]
        return None

    async def _describe_collect(self, obj: Any, command: str) -> dict[str, Any]:
        method = getattr(obj, "describe_collect", None)
        if not callable(method):
            raise PlanArgumentError(
                f"{command!r} needs an object with describe_collect(), got {obj!r}"
            )
        return dict(await maybe_await(method()))

    async def _describe_flyer(self, run: OpenRun, obj: Any) -> None:
        """Describe an old-style flyer's streams (once per run)."""
        if id(obj) in run.flyer_streams:
            return
        streams = await self._describe_collect(obj, "collect")
        if any(_is_data_key(v) for v in streams.values()):
            raise IllegalMessageSequence(
                f"describe_collect() of {self._name_of(obj)} returns the data keys of one "
                "stream: declare that stream before collecting, with "
                "declare_stream(obj, name=..., collect=True)"
            )
        now = self.host.clock.time()
        configuration = {self._name_of(obj): await configuration_of(obj)}
        by_keys: dict[frozenset[str], str] = {}
        for stream, keys in streams.items():
            doc = run.stream_descriptor(stream, [(obj, dict(keys))], configuration, now)
            if doc is not None:
                self._emit("descriptor", doc, run.uid)
            by_keys[frozenset(keys)] = stream
        run.flyer_streams[id(obj)] = by_keys

    async def _collect_rows(self, run: OpenRun, obj: Any, stream: str | None) -> list[Any] | None:
        """Event pages from ``collect_pages()`` or ``collect()``; None if it has neither."""
        now = self.host.clock.time()
        if callable(getattr(obj, "collect_pages", None)):
            pages = await _items(obj.collect_pages())
            for page in pages:
                name = stream or self._flyer_stream(run, obj, page["data"])
                self._check_not_external(run, name, page["data"])
                doc = run.event_page(name, dict(page["data"]), dict(page["timestamps"]), now)
                self._emit("event_page", doc, run.uid)
            return pages
        if not callable(getattr(obj, "collect", None)):
            if stream is None:
                raise PlanArgumentError(
                    f"'collect' of {self._name_of(obj)}, which has no collect() or "
                    "collect_pages(), needs name=<stream>"
                )
            return None
        events = await _items(obj.collect())
        grouped: dict[str, tuple[dict[str, list[Any]], dict[str, list[Any]]]] = {}
        for event in events:
            name = stream or self._flyer_stream(run, obj, event["data"])
            self._check_not_external(run, name, event["data"])
            data, stamps = grouped.setdefault(name, ({}, {}))
            for key, value in event["data"].items():
                data.setdefault(key, []).append(value)
                stamps.setdefault(key, []).append(event["timestamps"][key])
        for name, (data, stamps) in grouped.items():
            self._emit("event_page", run.event_page(name, data, stamps, now), run.uid)
        return events

    def _flyer_stream(self, run: OpenRun, obj: Any, data: dict[str, Any]) -> str:
        stream = run.flyer_streams.get(id(obj), {}).get(frozenset(data))
        if stream is None:
            raise PlanArgumentError(
                f"{self._name_of(obj)} collected data keys {sorted(data)}, which no stream "
                "of its describe_collect() has"
            )
        return stream

    def _check_not_external(self, run: OpenRun, stream: str, data: dict[str, Any]) -> None:
        external = _external_keys(run.descriptors[stream][0])
        if external & data.keys():
            raise PlanArgumentError(
                f"collected rows hold data for external keys {sorted(external & data.keys())} "
                f"of stream {stream!r}: those come as stream_datum documents"
            )

    async def _collect_assets(self, run: OpenRun, stream: str | None, objs: list[Any]) -> int:
        """Emit the asset documents of `objs` for `stream`; the width of their rows."""
        index: int | None = None
        if len(objs) > 1:
            for obj in objs:
                if not _writes_stream_assets(obj):
                    raise PlanArgumentError(
                        f"collecting several objects needs each to write stream assets "
                        f"(collect_asset_docs() and get_index()), got {obj!r}"
                    )
            index = min([int(await maybe_await(o.get_index())) for o in objs])
        docs: list[Any] = []
        for obj in objs:
            method = getattr(obj, "collect_asset_docs", None)
            if callable(method):
                docs += await _items(method() if index is None else method(index))
        return self._emit_assets(run, stream, docs)

    async def _save_assets(self, run: OpenRun, stream: str, objs: list[Any]) -> None:
        """`save`: the asset documents of the event's devices that write external assets."""
        docs: list[Any] = []
        for obj in objs:
            method = getattr(obj, "collect_asset_docs", None)
            if callable(method):
                docs += await _items(method())
        if docs:
            self._emit_assets(run, stream, docs)

    def _emit_assets(self, run: OpenRun, stream: str | None, docs: list[Any]) -> int:
        descriptor = run.descriptors[stream][0] if stream in run.descriptors else None
        external = _external_keys(descriptor)
        width = 0
        received: set[str] = set()
        for name, doc in docs:
            if name in ("resource", "stream_resource"):
                doc["run_start"] = run.uid
            if name == "stream_resource":
                self._stream_resource(run, doc, external)
            elif name == "stream_datum":
                width = self._stream_datum(run, stream, descriptor, doc, width)
                received.add(run.stream_resources[doc["stream_resource"]])
            elif name not in ("resource", "datum"):
                raise PlanArgumentError(
                    f"a device handed out a {name!r} document; accepted: resource, datum, "
                    "stream_resource, stream_datum"
                )
            self._emit(name, doc, run.uid)
        if received and received != external:
            raise PlanArgumentError(
                f"stream_datum documents came for data keys {sorted(received)}; the stream "
                f"{stream!r} expects one for each of {sorted(external)}"
            )
        return width

    def _stream_resource(self, run: OpenRun, doc: dict[str, Any], external: set[str]) -> None:
        uid = doc["uid"]
        if uid in run.stream_resources:
            raise PlanArgumentError(f"stream_resource {uid!r} was handed out twice")
        if doc["data_key"] not in external:
            raise PlanArgumentError(
                f"stream_resource for data key {doc['data_key']!r}, which is not one of the "
                f"stream's external ('STREAM:') data keys {sorted(external)}"
            )
        run.stream_resources[uid] = doc["data_key"]

    def _stream_datum(
        self,
        run: OpenRun,
        stream: str | None,
        descriptor: dict[str, Any] | None,
        doc: dict[str, Any],
        previous_width: int,
    ) -> int:
        if stream is None or descriptor is None:
            raise PlanArgumentError("a stream_datum needs a declared stream to belong to")
        if doc.get("descriptor"):
            raise PlanArgumentError(
                f"stream_datum {doc.get('uid')!r} came with descriptor "
                f"{doc['descriptor']!r}; leave it empty: the run engine fills it in"
            )
        if doc["stream_resource"] not in run.stream_resources:
            raise PlanArgumentError(
                f"stream_datum refers to an unknown stream_resource {doc['stream_resource']!r}"
            )
        seq_nums = doc.get("seq_nums") or {"start": 0, "stop": 0}
        if (seq_nums["start"], seq_nums["stop"]) != (0, 0):
            raise _event_model_error(
                f"stream_datum came with seq_nums {seq_nums}; leave them at start=0, stop=0: "
                "the run engine fills them in"
            )
        width = int(doc["indices"]["stop"]) - int(doc["indices"]["start"])
        if previous_width and width != previous_width:
            raise _event_model_error(
                f"stream_datum indices {doc['indices']} are {width} rows wide; the other "
                f"stream_datum documents of this collect are {previous_width} wide"
            )
        start = run.seq.get(stream, 1)
        doc["descriptor"] = descriptor["uid"]
        doc["seq_nums"] = {"start": start, "stop": start + width}
        return width

    @staticmethod
    def _name_of(obj: Any) -> str:
        return str(getattr(obj, "name", None) or repr(obj))


#: The methods that make an object collectable.
_COLLECT_METHODS = ("collect", "collect_pages", "collect_asset_docs")


def _writes_stream_assets(obj: Any) -> bool:
    """bluesky's ``WritesStreamAssets``: ``collect_asset_docs()`` and ``get_index()``."""
    return callable(getattr(obj, "collect_asset_docs", None)) and callable(
        getattr(obj, "get_index", None)
    )

"""Job definitions: what to run, when, and what to do when runs collide or come late.

A `Job` is an immutable value. Everything in it is JSON (the trigger through its own
``to_json()``), so that a job survives a restart, can be shown by a web API and is never
pickled. Runtime state (the next fire time, runs so far, runs in flight) lives in the scheduler.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Literal, Protocol, TypedDict, runtime_checkable

import msgspec

from .._clock import to_timestamp
from .._exceptions import NaiveDatetimeError, TimeControlError, UnknownActionError
from ..triggers import _protocol
from ._errors import JobArgumentsError, JobSpecError, PolicyError

__all__ = [
    "COALESCE_POLICIES",
    "CONFLICT_POLICIES",
    "JOB_SPEC_VERSION",
    "Coalesce",
    "Conflict",
    "Job",
    "JobSpec",
    "TriggerLike",
    "import_action",
    "trigger_from_spec",
]

#: Version of the job JSON shape; a newer one is refused when loading.
JOB_SPEC_VERSION: Final = 1

Conflict = Literal["skip", "queue", "concurrent"]
Coalesce = Literal["latest", "earliest", "all"]

#: What happens when a fire time comes while the previous run is still going.
CONFLICT_POLICIES: Final[tuple[str, ...]] = ("skip", "queue", "concurrent")
#: Which of several fire times missed in a row run (the others are recorded as coalesced).
COALESCE_POLICIES: Final[tuple[str, ...]] = ("latest", "earliest", "all")

_json = msgspec.json.Encoder()


@runtime_checkable
class TriggerLike(Protocol):
    """What the scheduler needs from a trigger (`timecontrol.triggers` implements it)."""

    def next(self, after: datetime) -> datetime | None:
        """The first fire time strictly after aware `after`, or None when there is none."""
        ...

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON state with a "type" key, from which the trigger is rebuilt."""
        ...


def trigger_from_spec(spec: Mapping[str, Any]) -> TriggerLike:
    """Rebuild a trigger from its ``to_json()`` output (via `timecontrol.triggers`)."""
    try:
        trigger: TriggerLike = _protocol.trigger_from_json(dict(spec))
    except TimeControlError as exc:
        raise JobSpecError(f"cannot rebuild trigger {dict(spec)!r}: {exc}") from None
    return trigger


def import_action(ref: str) -> Any:
    """The object named by a ``"module:qualname"`` reference (must be an async function)."""
    module_name, _, qualname = ref.partition(":")
    if not module_name or not qualname:
        raise UnknownActionError(
            f"action {ref!r} is neither a registered action name nor a 'module:qualname' "
            "reference (e.g. 'mylab.actions:sample')"
        )
    try:
        obj: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UnknownActionError(f"cannot import action {ref!r}: {exc}") from None
    if not inspect.iscoroutinefunction(obj):
        raise UnknownActionError(f"action {ref!r} is {obj!r}, not an async function (async def)")
    return obj


def plain_json(value: Any) -> bytes:
    """`value` as JSON, only if it reads back equal (no datetimes, UUIDs, sets, tuples...).

    msgspec would happily encode a datetime as a string; it would then come back from the store
    as a str, and an action would get a different argument after a restart than before.
    """
    encoded = _json.encode(value)
    if msgspec.json.decode(encoded) != value:
        raise ValueError("it does not read back as the same value (use plain JSON types)")
    return encoded


def _check_seconds(name: str, value: Any, *, allow_none: bool = True) -> float | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise JobSpecError(f"{name} must be a finite number of seconds or None, got {value!r}")
    if value <= 0:
        raise JobSpecError(f"{name} must be positive, got {value!r}")
    return float(value)


def _check_count(name: str, value: Any, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PolicyError(f"{name} must be an int >= 1, got {value!r}")
    return value


def _check_time(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return to_timestamp(value, name)
    except NaiveDatetimeError as exc:
        raise JobSpecError(str(exc)) from None


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A scheduled job: an action, its JSON arguments, a trigger and its policies.

    Build jobs with `Scheduler.add_job`; this class validates and carries the definition.

    Attributes:
        id: unique job id (the subject of every event the job produces).
        action: a registered action name, or a ``"module:qualname"`` reference.
        trigger: when it fires (anything with ``next(after)`` and ``to_json()``).
        kwargs: JSON keyword arguments for the action.
        name, description, tags: for people and for filtering.
        enabled: False while the job is paused.
        timeout: seconds a run may take before it is cancelled (status ``timeout``).
        max_executions: stop after this many runs (manual runs not counted).
        start, end: only fire times within ``[start, end]`` (POSIX seconds; see `start_at`).
        conflict: ``skip`` (default), ``queue`` or ``concurrent`` when the previous run is
            still going.
        max_instances: runs at once under ``concurrent`` (default 1).
        max_queue: fire times that may wait under ``queue`` (default 1); more are skipped.
        misfire_grace: how late (seconds) a run may still start; None (default) = always.
        coalesce: of fire times missed in a row, run the ``latest`` (default), the
            ``earliest``, or ``all`` of them (each through the conflict policy).
        durable_start: with a SQLite store, make the run's start durable before the action
            runs, so that a crash at any moment can never make a restart run that fire time
            again (at most once). Costs one commit (about a millisecond) per run; for actions
            that must not be repeated, such as dispensing a reagent.
    """

    id: str
    action: str
    trigger: Any
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    enabled: bool = True
    timeout: float | None = None
    max_executions: int | None = None
    start: float | None = None
    end: float | None = None
    conflict: str = "skip"
    max_instances: int = 1
    max_queue: int = 1
    misfire_grace: float | None = None
    coalesce: str = "latest"
    durable_start: bool = False

    @property
    def start_at(self) -> datetime | None:
        """`start` as an aware UTC datetime."""
        return None if self.start is None else _utc(self.start)

    @property
    def end_at(self) -> datetime | None:
        """`end` as an aware UTC datetime."""
        return None if self.end is None else _utc(self.end)

    def to_json(self) -> dict[str, Any]:
        """The definition as plain JSON (the trigger through its ``to_json()``)."""
        out: dict[str, Any] = {"version": JOB_SPEC_VERSION}
        for field in self.__struct_fields__:
            value = getattr(self, field)
            if field == "trigger":
                value = value.to_json()
            elif field == "tags":
                value = list(value)
            out[field] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        """Rebuild a job from `to_json` output; a newer spec version is refused."""
        if not isinstance(data, Mapping):
            raise JobSpecError(f"a job spec must be a JSON object, got {data!r}")
        version = data.get("version", 1)
        if not isinstance(version, int) or version > JOB_SPEC_VERSION:
            raise JobSpecError(
                f"job spec version {version!r} is newer than this timecontrol reads "
                f"(up to {JOB_SPEC_VERSION}); upgrade timecontrol"
            )
        fields = {k: v for k, v in data.items() if k != "version"}
        unknown = set(fields) - set(cls.__struct_fields__)
        if unknown:
            raise JobSpecError(f"job spec has unknown fields {sorted(unknown)}")
        if "trigger" not in fields:
            raise JobSpecError(f"job spec {dict(data)!r} has no trigger")
        fields["trigger"] = trigger_from_spec(fields["trigger"])
        fields["tags"] = tuple(fields.get("tags", ()))
        return make_job(**fields)


class _StoredJob(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The JSON shape `Job.to_json` writes, decoded (and type-checked) by msgspec in C."""

    version: int = JOB_SPEC_VERSION
    id: str
    action: str
    trigger: dict[str, Any]
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    enabled: bool = True
    timeout: float | None = None
    max_executions: int | None = None
    start: float | None = None
    end: float | None = None
    conflict: str = "skip"
    max_instances: int = 1
    max_queue: int = 1
    misfire_grace: float | None = None
    coalesce: str = "latest"
    durable_start: bool = False


_stored_decoder = msgspec.json.Decoder(_StoredJob)
_CONFLICTS: Final = frozenset(CONFLICT_POLICIES)
_COALESCES: Final = frozenset(COALESCE_POLICIES)


def _positive(value: float | None) -> bool:
    return value is None or (value > 0 and math.isfinite(value))


def job_from_stored(raw: str | bytes) -> Job:
    """`Job.from_json` for a spec read back from a store, as JSON text: the same `Job`.

    Reopening a file rebuilds every job, so this is the startup's inner loop. msgspec decodes
    and type-checks the spec in one pass, and the checks `make_job` makes are done on the
    typed values; a spec with anything unusual (a wrong type, an unknown field, a newer
    version, a value out of range) takes `Job.from_json`, which accepts or rejects it exactly
    as before and names the problem.
    """
    try:
        s = _stored_decoder.decode(raw)
    except msgspec.DecodeError:
        s = None
    if (
        s is None
        or not 1 <= s.version <= JOB_SPEC_VERSION
        or not 0 < len(s.id) <= 200
        or not s.action
        or "type" not in s.trigger
        or s.conflict not in _CONFLICTS
        or s.coalesce not in _COALESCES
        or not (_positive(s.timeout) and _positive(s.misfire_grace))
        or s.max_instances < 1
        or s.max_queue < 1
        or (s.max_executions is not None and s.max_executions < 1)
        or (s.start is not None and not math.isfinite(s.start))
        or (s.end is not None and not math.isfinite(s.end))
        or (s.start is not None and s.end is not None and s.end < s.start)
    ):
        return Job.from_json(msgspec.json.decode(raw))
    return Job(
        id=s.id,
        action=s.action,
        trigger=trigger_from_spec(s.trigger),
        kwargs=s.kwargs,
        name=s.name,
        description=s.description,
        tags=s.tags,
        enabled=s.enabled,
        timeout=s.timeout,
        max_executions=s.max_executions,
        start=s.start,
        end=s.end,
        conflict=s.conflict,
        max_instances=s.max_instances,
        max_queue=s.max_queue,
        misfire_grace=s.misfire_grace,
        coalesce=s.coalesce,
        durable_start=s.durable_start,
    )


def _utc(ts: float) -> datetime:
    from datetime import UTC

    return datetime.fromtimestamp(ts, UTC)


class JobSpec(TypedDict, total=False):
    """A job's settings besides id, action and trigger (the keywords of `make_job`)."""

    kwargs: Mapping[str, Any] | None
    name: str
    description: str
    tags: Iterable[str]
    enabled: bool
    timeout: float | None
    max_executions: int | None
    start: datetime | float | None
    end: datetime | float | None
    conflict: str
    max_instances: int
    max_queue: int
    misfire_grace: float | None
    coalesce: str
    durable_start: bool


def make_job(
    *,
    id: str,
    action: str,
    trigger: Any,
    kwargs: Mapping[str, Any] | None = None,
    name: str = "",
    description: str = "",
    tags: Iterable[str] = (),
    enabled: bool = True,
    timeout: float | None = None,
    max_executions: int | None = None,
    start: datetime | float | None = None,
    end: datetime | float | None = None,
    conflict: str = "skip",
    max_instances: int = 1,
    max_queue: int = 1,
    misfire_grace: float | None = None,
    coalesce: str = "latest",
    durable_start: bool = False,
) -> Job:
    """Validate every field and build a `Job` (raises a `JobSpecError` subclass on bad input)."""
    if not isinstance(durable_start, bool):
        raise JobSpecError(f"durable_start must be True or False, got {durable_start!r}")
    if not isinstance(id, str) or not id or len(id) > 200:
        raise JobSpecError(f"job id must be a non-empty str of at most 200 chars, got {id!r}")
    if not isinstance(action, str) or not action:
        raise JobSpecError(f"action must be a registered name or 'module:qualname', got {action!r}")
    if not (
        callable(getattr(trigger, "next", None)) and callable(getattr(trigger, "to_json", None))
    ):
        raise JobSpecError(
            f"trigger {trigger!r} is not a trigger: expected an object with next(after) and "
            "to_json() (see timecontrol.triggers)"
        )
    spec = trigger.to_json()
    if not isinstance(spec, dict) or "type" not in spec:
        raise JobSpecError(f"trigger {trigger!r}: to_json() must return a dict with a 'type' key")
    try:
        _json.encode(spec)
    except (TypeError, msgspec.EncodeError, OverflowError) as exc:
        raise JobSpecError(f"trigger {trigger!r}: to_json() is not JSON ({exc})") from None
    kw = dict(kwargs or {})
    if not all(isinstance(k, str) for k in kw):
        raise JobArgumentsError(f"kwargs keys must be str, got {sorted(map(repr, kw))}")
    try:
        plain_json(kw)
    except (TypeError, ValueError, msgspec.EncodeError, OverflowError) as exc:
        raise JobArgumentsError(
            f"kwargs {kw!r} are not JSON ({exc}); jobs are persisted, so their arguments may "
            "only be str, int, float, bool, None, lists and str-keyed dicts"
        ) from None
    if isinstance(tags, str):
        raise JobSpecError(f"tags must be a list of str, not the str {tags!r}")
    tag_tuple = tuple(tags)
    if not all(isinstance(t, str) for t in tag_tuple):
        raise JobSpecError(f"tags must be str, got {tag_tuple!r}")
    for label, text in (("name", name), ("description", description)):
        if not isinstance(text, str):
            raise JobSpecError(f"{label} must be a str, got {text!r}")
    if not isinstance(enabled, bool):
        raise JobSpecError(f"enabled must be True or False, got {enabled!r}")
    if conflict not in CONFLICT_POLICIES:
        raise PolicyError(
            f"unknown conflict policy {conflict!r}; expected one of {', '.join(CONFLICT_POLICIES)}"
        )
    if coalesce not in COALESCE_POLICIES:
        raise PolicyError(
            f"unknown coalesce policy {coalesce!r}; expected one of {', '.join(COALESCE_POLICIES)}"
        )
    try:
        grace = _check_seconds("misfire_grace", misfire_grace)
    except JobSpecError as exc:
        raise PolicyError(str(exc)) from None
    start_ts, end_ts = _check_time("start", start), _check_time("end", end)
    if start_ts is not None and end_ts is not None and end_ts < start_ts:
        raise JobSpecError(f"end {end!r} lies before start {start!r}")
    return Job(
        id=id,
        action=action,
        trigger=trigger,
        kwargs=kw,
        name=name,
        description=description,
        tags=tag_tuple,
        enabled=enabled,
        timeout=_check_seconds("timeout", timeout),
        max_executions=_check_count("max_executions", max_executions, allow_none=True),
        start=start_ts,
        end=end_ts,
        conflict=conflict,
        max_instances=_check_count("max_instances", max_instances) or 1,
        max_queue=_check_count("max_queue", max_queue) or 1,
        misfire_grace=grace,
        coalesce=coalesce,
        durable_start=durable_start,
    )

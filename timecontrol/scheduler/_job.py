"""Job definitions: what to run, when, and what to do when runs collide or come late.

A `Job` is an immutable value. Everything in it is JSON (the trigger through its own
``to_json()``), so that a job survives a restart, can be shown by a web API and is never
pickled. Runtime state (the next fire time, runs so far, runs in flight) lives in the scheduler.

Each option is declared once, on `Job`: its name, stored type, default and range (msgspec
constraints, checked in C both when a job is made and when one is read back from a store).
`JobSpec` is the same names with the types a caller may *pass* (a datetime for `start`, any
iterable for `tags`); an import-time check keeps the two in step, and `make_job` /
`update_job` / the store decoder all go through `check_job`, so a rule is written once.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import (
    Annotated,
    Any,
    Final,
    Literal,
    Protocol,
    TypedDict,
    Unpack,
    get_args,
    runtime_checkable,
)

import msgspec

from .._clock import to_timestamp
from .._exceptions import NaiveDatetimeError, TimeControlError
from ..triggers import _protocol
from ._errors import JobArgumentsError, JobOptionError, JobSpecError, PolicyError
from ._hooks import HookLike, HookRef, hook_refs, profile_ref

__all__ = [
    "COALESCE_POLICIES",
    "CONFLICT_POLICIES",
    "JOB_OPTIONS",
    "JOB_SPEC_VERSION",
    "Coalesce",
    "Conflict",
    "Job",
    "JobChanges",
    "JobSpec",
    "TriggerLike",
    "check_text",
    "job_from_stored",
    "make_job",
    "plain_json",
    "replace_job",
    "trigger_from_spec",
]

#: Version of the job JSON shape; a newer one is refused when loading. A job that uses none
#: of the version-2 options (profile, before, after, retention, alarm) is still written as version
#: 1, so that an older timecontrol reads it; one that uses them says 2 (an older one cannot
#: read it and quarantines that job; this one refuses versions above 2 with "upgrade").
JOB_SPEC_VERSION: Final = 2
# Each version-2 option with its default: a job leaving it at the default is written as
# version 1, so that an older timecontrol can still read the file.
_V2_DEFAULTS: Final[dict[str, Any]] = {
    "profile": None,
    "before": (),
    "after": (),
    "retention": None,
    "alarm": True,
}

#: What happens when a fire time comes while the previous run is still going.
Conflict = Literal["skip", "queue", "concurrent"]
#: Which of several fire times due at once run (the others are recorded as coalesced).
Coalesce = Literal["latest", "earliest", "all"]
CONFLICT_POLICIES: Final[tuple[str, ...]] = get_args(Conflict)
COALESCE_POLICIES: Final[tuple[str, ...]] = get_args(Coalesce)

_Positive = Annotated[float, msgspec.Meta(gt=0)]
_Count = Annotated[int, msgspec.Meta(ge=1)]
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


class Job(msgspec.Struct, frozen=True, kw_only=True):
    """A scheduled job: an action, its JSON arguments, a trigger and its policies.

    Build jobs with `Scheduler.add_job`; this class validates and carries the definition.

    Attributes:
        id: unique job id (the subject of every event the job produces).
        action: a registered action name, or a ``"module:qualname"`` reference (imported only
            from the scheduler's `allowed_modules`).
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
        coalesce: of fire times due at once, run the ``latest`` (default), the ``earliest``,
            or ``all`` of them (each through the conflict policy).
        durable_start: with a SQLite store, commit each run's start before the action runs,
            so that after a crash the run is recorded exactly (``interrupted``), never as
            uncertain. Costs a commit wait per run. See docs/scheduler.md, "Crashes".
        profile: a hook applied before each run (an instrument set-up); if it raises, the
            action is not called and the record is ``profile_failed`` (see `_hooks.py`).
        before, after: hooks run before the action (one raising: ``before_failed``, the
            action not called) and after it (``after_failed`` when the action succeeded).
        retention: seconds this job's execution records are kept (default: the
            scheduler's, 30 days); older ones are deleted daily, its totals kept.
        alarm: False keeps this job's failures from the scheduler-wide failure handlers
            (``on_failure(handler)`` without a job id); handlers registered for this job
            by id still get them. The lab guide's ``on_failure_alarm``.
    """

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    action: Annotated[str, msgspec.Meta(min_length=1)]
    trigger: Any
    kwargs: dict[str, Any] = msgspec.field(default_factory=dict)
    name: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    enabled: bool = True
    timeout: _Positive | None = None
    max_executions: _Count | None = None
    start: float | None = None
    end: float | None = None
    conflict: Conflict = "skip"
    max_instances: _Count = 1
    max_queue: _Count = 1
    misfire_grace: _Positive | None = None
    coalesce: Coalesce = "latest"
    durable_start: bool = False
    profile: HookRef | None = None
    before: tuple[HookRef, ...] = ()
    after: tuple[HookRef, ...] = ()
    retention: _Positive | None = None
    alarm: bool = True

    @property
    def start_at(self) -> datetime | None:
        """`start` as an aware UTC datetime."""
        return None if self.start is None else datetime.fromtimestamp(self.start, UTC)

    @property
    def end_at(self) -> datetime | None:
        """`end` as an aware UTC datetime."""
        return None if self.end is None else datetime.fromtimestamp(self.end, UTC)

    def to_json(self) -> dict[str, Any]:
        """The definition as plain JSON (the trigger through its ``to_json()``)."""
        out: dict[str, Any] = {"version": 1}
        for field in self.__struct_fields__:
            value = getattr(self, field)
            if field == "trigger":
                value = value.to_json()
            elif field == "tags":
                value = list(value)
            elif field in _V2_DEFAULTS:
                if value == _V2_DEFAULTS[field]:
                    continue  # (unused: the definition stays readable by version 1)
                out["version"] = 2
                if field == "profile":
                    value = value.to_json()
                elif field in ("before", "after"):
                    value = [ref.to_json() for ref in value]
            out[field] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Job:
        """Rebuild a job from `to_json` output; a newer spec version is refused."""
        if not isinstance(data, Mapping):
            raise JobSpecError(f"a job spec must be a JSON object, got {data!r:.200}")
        try:
            stored = msgspec.convert(dict(data), _StoredJob)
        except msgspec.ValidationError as exc:
            raise JobSpecError(f"bad job spec: {exc}") from None
        return _from_stored(stored)


class JobSpec(TypedDict, total=False):
    """The options of a job besides id, action and trigger, as a caller passes them.

    Same names as `Job`'s fields (checked at import); the defaults live on `Job`.
    """

    kwargs: Mapping[str, Any] | None
    name: str
    description: str
    tags: Iterable[str]
    enabled: bool
    timeout: float | None
    max_executions: int | None
    start: datetime | float | None
    end: datetime | float | None
    conflict: Conflict
    max_instances: int
    max_queue: int
    misfire_grace: float | None
    coalesce: Coalesce
    durable_start: bool
    profile: HookLike | None
    before: Iterable[HookLike] | None
    after: Iterable[HookLike] | None
    retention: timedelta | float | None
    alarm: bool


class JobChanges(JobSpec, total=False):
    """What `Scheduler.update_job` may change: any option, the action and the trigger."""

    action: str
    trigger: Any


#: The option names, in `Job`'s order (every field but id, action and trigger).
JOB_OPTIONS: Final[tuple[str, ...]] = tuple(
    f for f in Job.__struct_fields__ if f not in ("id", "action", "trigger")
)
if set(JOB_OPTIONS) != set(JobSpec.__optional_keys__):  # pragma: no cover - a coding error
    raise AssertionError("JobSpec and Job disagree on the job options")

_POLICY_FIELDS: Final = frozenset(
    {"conflict", "coalesce", "misfire_grace", "max_instances", "max_queue"}
)


class _StoredJob(Job, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The JSON shape `Job.to_json` writes: a `Job` plus its format version."""

    version: int = JOB_SPEC_VERSION


_stored_decoder = msgspec.json.Decoder(_StoredJob)


def trigger_from_spec(spec: Mapping[str, Any]) -> TriggerLike:
    """Rebuild a trigger from its ``to_json()`` output (via `timecontrol.triggers`)."""
    try:
        trigger: TriggerLike = _protocol.trigger_from_json(dict(spec))
    except TimeControlError as exc:
        raise JobSpecError(f"cannot rebuild trigger {_short(spec)}: {exc}") from None
    except (RecursionError, TypeError, ValueError, KeyError, AttributeError) as exc:
        # A damaged document (a wrong type deep inside, absurd nesting) is a bad spec too.
        raise JobSpecError(
            f"cannot rebuild trigger {_short(spec)}: {type(exc).__name__}: {_short(exc)}"
        ) from None
    return trigger


def _short(value: object, limit: int = 200) -> str:
    """`repr(value)` cut to `limit` chars; safe for absurdly deep values."""
    try:
        text = repr(value)
    except RecursionError:
        text = f"<{type(value).__name__} nested too deeply to show>"
    return text if len(text) <= limit else text[:limit] + "…"


def plain_json(value: Any) -> bytes:
    """`value` as JSON, only if it reads back equal (no datetimes, UUIDs, sets, tuples...).

    msgspec would happily encode a datetime as a string; it would then come back from the store
    as a str, and an action would get a different argument after a restart than before.
    """
    encoded = _json.encode(value)
    if msgspec.json.decode(encoded) != value:
        raise ValueError("it does not read back as the same value (use plain JSON types)")
    return encoded


def check_text(label: str, value: object) -> str:
    """`value` if it is a str that UTF-8 can store; `JobSpecError` naming `label` otherwise."""
    if not isinstance(value, str):
        raise JobSpecError(f"{label} must be a str, got {_short(value)} ({type(value).__name__})")
    if value.isascii():
        return value  # (the usual case, decided in C)
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        raise JobSpecError(
            f"{label} {value!r:.200} is not valid text ({exc.reason}): give a str that UTF-8 "
            "can store"
        ) from None
    return value


def _kwargs(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise JobArgumentsError(
            f"kwargs must be a dict of keyword arguments, got {_short(value)} "
            f"({type(value).__name__})"
        )
    kw = dict(value)
    bad = [k for k in kw if not isinstance(k, str)]
    if bad:
        raise JobArgumentsError(f"kwargs keys must be str, got {_short(bad)}")
    try:
        plain_json(kw)
    except (TypeError, ValueError, msgspec.EncodeError, OverflowError, RecursionError) as exc:
        raise JobArgumentsError(
            f"kwargs {_short(kw)} are not JSON ({_short(exc)}); jobs are persisted, so their "
            "arguments may only be str, int, float, bool, None, lists and str-keyed dicts"
        ) from None
    return kw


def _tags(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise JobSpecError(f"tags must be a list of str, got {_short(value)}")
    tags = tuple(value)
    for tag in tags:
        check_text("a tag", tag)
    return tags


def _time(name: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        return to_timestamp(value, name)
    except NaiveDatetimeError as exc:
        raise JobSpecError(str(exc)) from None
    except (TypeError, ValueError, OverflowError, TimeControlError) as exc:
        raise JobSpecError(
            f"{name} must be an aware datetime or POSIX seconds, got {_short(value)} ({exc})"
        ) from None


def _start(value: Any) -> float | None:
    return _time("start", value)


def _end(value: Any) -> float | None:
    return _time("end", value)


def _retention(value: Any) -> Any:
    # A timedelta as seconds; anything else is checked by the field's type and range.
    return value.total_seconds() if isinstance(value, timedelta) else value


# How a caller's value becomes the stored one (the rest are taken as they are).
_NORMALISE: Final[dict[str, Callable[[Any], Any]]] = {
    "kwargs": _kwargs,
    "tags": _tags,
    "start": _start,
    "end": _end,
    "profile": profile_ref,
    "before": lambda v: hook_refs("before", v),
    "after": lambda v: hook_refs("after", v),
    "retention": _retention,
}


def check_options(options: Mapping[str, Any], allowed: Iterable[str] = JOB_OPTIONS) -> None:
    """`JobOptionError` for a keyword that is not an option (a misspelling, say)."""
    known = set(allowed)
    unknown = [k for k in options if k not in known]
    if unknown:
        raise JobOptionError(
            f"unknown job option(s) {', '.join(map(repr, unknown))}; accepted: "
            f"{', '.join(sorted(known))}"
        )


def make_job(*, id: str, action: str, trigger: Any, **spec: Unpack[JobSpec]) -> Job:
    """Validate every field and build a `Job` (raises a `JobSpecError` subclass on bad input).

    `spec` holds `JobSpec` options; any other keyword raises `JobOptionError`.
    """
    check_options(spec)
    fields: dict[str, Any] = {"id": id, "action": action, "trigger": trigger}
    for key, value in spec.items():
        normalise = _NORMALISE.get(key)
        fields[key] = value if normalise is None else normalise(value)
    return check_job(fields)


def replace_job(job: Job, changes: Mapping[str, Any]) -> Job:
    """`job` with `changes` applied, validated like a new job (nothing changes on error)."""
    check_options(changes, (*JOB_OPTIONS, "action", "trigger"))
    fields = {f: getattr(job, f) for f in job.__struct_fields__}
    for key, value in changes.items():
        normalise = _NORMALISE.get(key)
        fields[key] = value if normalise is None else normalise(value)
    return check_job(fields)


def check_job(fields: dict[str, Any]) -> Job:
    """Every rule a job must satisfy, on normalised `fields`; returns the `Job`."""
    check_text("job id", fields["id"])
    check_text("action", fields["action"])
    for label in ("name", "description"):
        if label in fields:
            check_text(label, fields[label])
    for policy, allowed in (("conflict", CONFLICT_POLICIES), ("coalesce", COALESCE_POLICIES)):
        value = fields.get(policy, allowed[0])
        if not isinstance(value, str) or value not in allowed:
            raise PolicyError(
                f"unknown {policy} policy {_short(value)}; expected one of {', '.join(allowed)}"
            )
    _check_trigger(fields["trigger"])
    try:
        job = msgspec.convert(fields, Job)
    except msgspec.ValidationError as exc:
        raise _field_error(fields, exc) from None
    except UnicodeError:  # msgspec reports a str with a lone surrogate by raising this
        bad = [k for k, v in fields.items() if isinstance(v, str) and not _encodable(v)]
        raise JobSpecError(
            f"{', '.join(bad) or 'a field'} {_short(fields.get(bad[0]) if bad else None)} is "
            "not valid text (a lone surrogate); job fields must be valid Unicode"
        ) from None
    _check_ranges(job)
    return job


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _field_error(fields: Mapping[str, Any], exc: msgspec.ValidationError) -> JobSpecError:
    """The error for a value msgspec rejected, naming the field, the value and the rule."""
    text = str(exc)
    found = re.search(r"at `\$\.(\w+)", text)
    field = found.group(1) if found else "?"
    value = fields.get(field, "?")
    expected = text.partition(" - at ")[0]
    message = f"{field} {_short(value)} is not accepted: {expected}"
    if field in _POLICY_FIELDS:
        return PolicyError(message)
    if field == "kwargs":
        return JobArgumentsError(message)
    return JobSpecError(message)


def _check_trigger(trigger: Any) -> None:
    if not (
        callable(getattr(trigger, "next", None)) and callable(getattr(trigger, "to_json", None))
    ):
        raise JobSpecError(
            f"trigger {_short(trigger)} is not a trigger: expected an object with next(after) "
            "and to_json() (see timecontrol.triggers)"
        )
    spec = trigger.to_json()
    if not isinstance(spec, dict) or "type" not in spec:
        raise JobSpecError(f"trigger {trigger!r}: to_json() must return a dict with a 'type' key")
    try:
        _json.encode(spec)
    except (TypeError, ValueError, msgspec.EncodeError, OverflowError, RecursionError) as exc:
        raise JobSpecError(f"trigger {_short(trigger)}: to_json() is not JSON ({exc})") from None


# The instants a datetime can hold (years 1 to 9999, UTC), with a day's margin for offsets.
_FIRST_INSTANT: Final = -62135596800.0 + 86400
_LAST_INSTANT: Final = 253402300799.0 - 86400


def _check_ranges(job: Job) -> None:
    """What the field types cannot say: finite numbers, an ordered window."""
    for label in ("timeout", "misfire_grace", "start", "end", "retention"):
        value = getattr(job, label)
        if value is not None and not math.isfinite(value):
            error = PolicyError if label == "misfire_grace" else JobSpecError
            raise error(f"{label} must be a finite number of seconds or None, got {value!r}")
    for label in ("start", "end"):
        value = getattr(job, label)
        if value is not None and not _FIRST_INSTANT <= value <= _LAST_INSTANT:
            raise JobSpecError(
                f"{label} {value!r} lies outside the years 1 to 9999 (POSIX seconds from "
                f"{_FIRST_INSTANT} to {_LAST_INSTANT}); pass an aware datetime in that range"
            )
    if job.start is not None and job.end is not None and job.end < job.start:
        raise JobSpecError(f"end {job.end_at} lies before start {job.start_at}")


def _from_stored(stored: _StoredJob) -> Job:
    if not 1 <= stored.version <= JOB_SPEC_VERSION:
        raise JobSpecError(
            f"job spec version {stored.version!r} is newer than this timecontrol reads "
            f"(up to {JOB_SPEC_VERSION}); upgrade timecontrol"
        )
    if not isinstance(stored.trigger, dict) or "type" not in stored.trigger:
        raise JobSpecError(f"job {stored.id!r}: its trigger {_short(stored.trigger)} has no type")
    fields = msgspec.structs.asdict(stored)
    del fields["version"]
    fields["trigger"] = trigger_from_spec(stored.trigger)
    for label in ("id", "action", "name", "description"):
        check_text(label, fields[label])
    for tag in stored.tags:
        check_text("a tag", tag)
    job = Job(**fields)
    _check_ranges(job)
    return job


def job_from_stored(raw: str | bytes) -> Job:
    """The `Job` whose `Job.to_json` a store kept, as JSON text (`JobSpecError` if damaged).

    Reopening a file rebuilds every job, so this is the startup's inner loop: msgspec decodes
    and checks the declared types and ranges in one pass, in C.
    """
    try:
        stored = _stored_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise JobSpecError(f"stored job spec is damaged: {_short(exc)}") from None
    return _from_stored(stored)

"""The ``timecontrol`` command: ``timecontrol demo`` and ``timecontrol log FILE``."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import anyio
import msgspec

from . import __version__
from ._demo import run_demo
from ._events import Event
from ._exceptions import TimeControlError
from .stores import read_events
from .testing import VirtualClock

__all__ = ["main"]


# -- formatting -------------------------------------------------------------------------------


def _short(key: str, value: Any, width: int = 60) -> str:
    if key == "due" and isinstance(value, float):
        text = datetime.fromtimestamp(value).astimezone().strftime("%H:%M:%S.%f")[:-3]
    elif isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, str):
        text = value
    else:
        text = msgspec.json.encode(value).decode()
    return text if len(text) <= width else text[: width - 1] + "…"


def format_event(event: Event, t0: float | None = None) -> str:
    """One readable line for an event: time, kind, subject and the payload's main fields."""
    stamp = event.at.astimezone().strftime("%H:%M:%S.%f")[:-3]
    rel = f"+{event.wall - t0:8.3f}s " if t0 is not None else ""
    details = {k: v for k, v in event.payload.items() if k not in {"traceback", "seq"}}
    body = " ".join(f"{k}={_short(k, v, 48)}" for k, v in details.items())
    return f"{rel}{stamp}  #{event.seq:<5} {event.kind:<18} {event.subject:<12} {body}".rstrip()


# -- timecontrol log --------------------------------------------------------------------------

_REL = re.compile(r"^-?(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def _parse_when(text: str, now: datetime) -> float:
    """An ISO 8601 time (naive = local time) or a relative one like ``-2h`` / ``30m``."""
    match = _REL.match(text.strip())
    if match:
        return (now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])).timestamp()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise TimeControlError(
            f"cannot read time {text!r}; give ISO 8601 (2026-03-29T09:00+02:00) "
            "or an age such as 30m, 2h, 7d"
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # a person typing a time means their local time
    return when.timestamp()


def _cmd_log(args: argparse.Namespace, out: TextIO) -> int:
    """List a log file's events. Reads only: never writes, creates or locks anything, so it
    works on a file an engine is writing, and on a file on read-only media. Events of kinds
    this process does not know are shown as they are; a damaged row is skipped with a
    warning on stderr (exit status 1), so that the rest of the file stays readable."""
    now = datetime.now(UTC)  # the CLI is an edge: it may read the real clock
    skipped: list[str] = []
    events = read_events(
        args.file,
        since=None if args.since is None else _parse_when(args.since, now),
        until=None if args.until is None else _parse_when(args.until, now),
        kinds=args.kind or None,
        subjects=args.subject or None,
        limit=args.limit,
        newest_first=args.tail,
        on_bad_row=skipped.append,
    )
    for message in skipped:
        sys.stderr.write(f"timecontrol: warning: skipped a damaged event: {message}\n")
    if args.tail:
        events.reverse()
    if args.json:
        for event in events:
            out.write(event.to_json().decode() + "\n")
        return 1 if skipped else 0
    for event in events:
        out.write(format_event(event) + "\n")
    out.write(
        f"-- {len(events)} event(s)" + (f", {len(skipped)} damaged" if skipped else "") + "\n"
    )
    return 1 if skipped else 0


# -- timecontrol demo -------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    db = Path(args.db)
    if db.exists() and not args.keep:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db) + suffix).unlink(missing_ok=True)
    if args.fast:
        VirtualClock(datetime.now(UTC).replace(microsecond=0)).run(run_demo, db, out, True)
    else:
        anyio.run(run_demo, db, out, False)
    return 0


# -- entry point ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="timecontrol", description="Run lab experiments on time, and read what happened."
    )
    parser.add_argument("--version", action="version", version=f"timecontrol {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="a short live demonstration on simulated instruments (about 14 s)"
    )
    demo.add_argument("--fast", action="store_true", help="run under virtual time")
    demo.add_argument(
        "--db", default="timecontrol-demo.sqlite", help="log file to write (default: %(default)s)"
    )
    demo.add_argument("--keep", action="store_true", help="append to an existing log file")
    demo.set_defaults(func=_cmd_demo)

    log = sub.add_parser("log", help="list and filter the events of a log file")
    log.add_argument("file", type=Path)
    log.add_argument("--kind", action="append", help="only this kind (repeatable)")
    log.add_argument("--subject", action="append", help="only this subject (repeatable)")
    log.add_argument("--since", help="ISO time or age (30m, 2h, 7d)")
    log.add_argument("--until", help="ISO time or age")
    log.add_argument("--limit", type=int, help="at most this many events")
    log.add_argument("--tail", action="store_true", help="the newest events (with --limit)")
    log.add_argument("--json", action="store_true", help="one JSON event per line")
    log.set_defaults(func=_cmd_log)
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, with a clear message)."""
    args = _parser().parse_args(argv)
    stream = out if out is not None else sys.stdout
    try:
        status: int = args.func(args, stream)
    except TimeControlError as exc:
        sys.stderr.write(f"timecontrol: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    except BaseExceptionGroup as group:
        # `timecontrol demo | head`: the reader went away; not an error of ours.
        if group.subgroup(BrokenPipeError) is not None and group.split(BrokenPipeError)[1] is None:
            return _closed_pipe()
        raise
    return status


def _closed_pipe() -> int:
    # Point stdout at devnull so that the interpreter's final flush does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141  # 128 + SIGPIPE, as a shell reports it


if __name__ == "__main__":
    raise SystemExit(main())

"""Reply parsers: the text an instrument sent, turned into a value or refused.

They are stricter than Python's own conversions on purpose: a reply garbled on the wire must
fail to parse (and so make the instrument resynchronise) rather than be read as a value.
"""

from __future__ import annotations

import math
import re

__all__ = ["has_undecodable", "parse_bool", "parse_float", "parse_int", "parse_str"]

# SCPI numeric responses (NR1, NR2, NR3) and the named non-finite values some instruments send.
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_NONFINITE = {
    "NAN": math.nan,
    "INF": math.inf,
    "+INF": math.inf,
    "-INF": -math.inf,
    "NINF": -math.inf,
}
_TRUE = frozenset({"1", "+1", "ON", "TRUE"})
_FALSE = frozenset({"0", "+0", "-0", "OFF", "FALSE"})


def parse_float(reply: str) -> float:
    """Parse a numeric reply (``5``, ``+5.000E+00``, ``NAN``); `ValueError` otherwise.

    Stricter than `float()`: underscores, inner spaces and ``infinity`` spellings that a
    garbled reply could produce are rejected instead of silently accepted.
    """
    text = reply.strip()
    if _NUMBER.fullmatch(text):
        return float(text)
    special = _NONFINITE.get(text.upper())
    if special is None:
        raise ValueError(f"not a number: {reply!r}")
    return special


def parse_int(reply: str) -> int:
    """Parse an integer reply (``12``, ``+12``, an integral ``1.2E+01``); else `ValueError`."""
    text = reply.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        value = float(text)
        if value.is_integer():
            return int(value)
    raise ValueError(f"not an integer: {reply!r}")


def parse_bool(reply: str) -> bool:
    """Parse a boolean reply (``1``/``0``/``ON``/``OFF``); `ValueError` otherwise."""
    text = reply.strip().upper()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {reply!r}")


def parse_str(reply: str) -> str:
    """The reply as text, without surrounding whitespace (never fails)."""
    return reply.strip()


def has_undecodable(reply: str) -> bool:
    """True if `reply` holds bytes that were not valid text (no parser may accept it)."""
    # Transports decode with "surrogateescape": bytes that were not valid text show up as lone
    # surrogates, which no parser may accept (that is how a garbled str reply is caught).
    return not reply.isascii() and any("\udc80" <= c <= "\udcff" for c in reply)

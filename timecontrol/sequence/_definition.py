"""What a sequence *is*, as the Log keeps it: its `Definition` (the ``sequence.declared``
payload), and how a re-declaration is compared with it.

A restart rebuilds a sequence from its Log events only, so the definition holds everything
that the declaration gave: the chain's action names (functions are given again at
re-declaration, never imported from a name the store supplies), the planned offsets, the
time points' own start, the kwargs as JSON, the four policies and the downtime grace.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Final

__all__ = ["DEFINITION_VERSION", "Definition"]

#: The version of the ``sequence.declared`` payload (a newer one is refused, not misread).
DEFINITION_VERSION: Final = 1

_SHOWN = 6  # offsets shown in a difference


@dataclass(frozen=True, slots=True)
class Definition:
    """A sequence's declaration as plain JSON values (see the module docstring)."""

    actions: tuple[str, ...]
    offsets: tuple[float, ...]
    start: float | None
    kwargs: dict[str, Any]
    on_error: str
    on_pause: str
    on_interrupt: str
    on_downtime: str
    downtime_grace: float = 60.0

    def to_json(self) -> dict[str, Any]:
        """The ``sequence.declared`` payload."""
        return {
            "version": DEFINITION_VERSION,
            "actions": list(self.actions),
            "offsets": list(self.offsets),
            "start": self.start,
            "kwargs": self.kwargs,
            "on_error": self.on_error,
            "on_pause": self.on_pause,
            "on_interrupt": self.on_interrupt,
            "on_downtime": self.on_downtime,
            "downtime_grace": self.downtime_grace,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Definition:
        """The definition from `to_json`'s object (policies missing from it take their
        defaults, so that later additions keep older payloads readable)."""
        return cls(
            actions=tuple(d["actions"]),
            offsets=tuple(float(x) for x in d["offsets"]),
            start=d.get("start"),
            kwargs=dict(d.get("kwargs") or {}),
            on_error=d.get("on_error", "skip_rest"),
            on_pause=d.get("on_pause", "catch_up"),
            on_interrupt=d.get("on_interrupt", "skip"),
            on_downtime=d.get("on_downtime", "skip"),
            # Histories declared before the grace existed had none: a point due a moment
            # before the restart followed `on_downtime`, so they keep that reading.
            downtime_grace=float(d.get("downtime_grace", 0.0)),
        )

    def changes(self, declared: Definition) -> dict[str, list[Any]]:
        """``{field: [stored, declared]}`` for every field that differs from `declared`."""
        out: dict[str, list[Any]] = {}
        for f in fields(self):
            old, new = getattr(self, f.name), getattr(declared, f.name)
            if old != new:
                plain = (list(old), list(new)) if isinstance(old, tuple) else (old, new)
                out[f.name] = [plain[0], plain[1]]
        return out

    def explain(self, declared: Definition) -> str:
        """The differences from `declared`, one phrase each, for an error message."""
        phrases = []
        for name, (old, new) in self.changes(declared).items():
            if name == "offsets":
                phrases.append(_offsets_phrase(old, new))
            else:
                phrases.append(f"{name}: stored {old!r}, declared {new!r}")
        return "; ".join(phrases)


def _offsets_phrase(old: list[float], new: list[float]) -> str:
    first = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), None)
    if first is None:
        first = min(len(old), len(new))
    stored = old[first : first + _SHOWN]
    declared = new[first : first + _SHOWN]
    return (
        f"timepoints: {len(old)} points stored, {len(new)} declared; from point {first} on "
        f"stored {[f'{x:g}' for x in stored]} s, declared {[f'{x:g}' for x in declared]} s"
    )

"""Every exception a public package exports is also in `timecontrol.errors`, as it promises."""

from __future__ import annotations

import importlib

import timecontrol.errors as errors
from timecontrol.errors import TimeControlError

PACKAGES = [
    "timecontrol",
    "timecontrol.limiters",
    "timecontrol.plans",
    "timecontrol.queue",
    "timecontrol.scheduler",
    "timecontrol.sequence",
    "timecontrol.stores",
    "timecontrol.triggers",
]


def test_every_exported_timecontrol_error_is_in_errors() -> None:
    missing: list[str] = []
    for name in PACKAGES:
        module = importlib.import_module(name)
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if isinstance(obj, type) and issubclass(obj, TimeControlError):
                # The same class, or a narrower one whose base is there to catch it (the
                # triggers' NaiveDatetimeError is a TriggerError and the project's one).
                listed = getattr(errors, attr, None)
                if not (isinstance(listed, type) and issubclass(obj, listed)):
                    missing.append(f"{name}.{attr}")
    assert missing == []


def test_errors_all_is_sorted_and_complete() -> None:
    assert list(errors.__all__) == sorted(errors.__all__)
    for attr in errors.__all__:
        obj = getattr(errors, attr)
        assert isinstance(obj, type), attr
        assert issubclass(obj, BaseException), attr

"""The start document's metadata: scan ids, validation and normalisation, as bluesky does it.

bluesky's RunEngine lets users replace three steps of ``open_run`` (its attributes of the same
names, which the run engine here has too):

* ``scan_id_source(md) -> int`` (sync or async): the next scan id from the persistent
  metadata; default: ``md.get("scan_id", 0) + 1``.
* ``md_validator(md)``: raises if the final metadata is not acceptable; default: ``sample``
  must be a string or a mapping (bluesky's rule, which keeps it searchable).
* ``md_normalizer(md) -> md``: returns the metadata as it goes into the start document,
  given a deep copy; default: unchanged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from ._devices import maybe_await
from ._errors import PlanArgumentError

__all__ = ["MetadataHooks", "default_md_validator", "default_scan_id_source"]


def default_scan_id_source(md: Mapping[str, Any]) -> int:
    """The scan id after the one in `md` (1 if there is none)."""
    return int(md.get("scan_id", 0)) + 1


def default_md_validator(md: Mapping[str, Any]) -> None:
    """Refuse a ``sample`` that is neither a string nor a mapping (bluesky's rule)."""
    sample = md.get("sample")
    if "sample" in md and not (hasattr(sample, "keys") or isinstance(sample, str)):
        raise PlanArgumentError(
            f"metadata 'sample' must be a string or a dict (it is indexed for searching), "
            f"got {sample!r}; e.g. sample='dirt' or sample={{'color': 'red', 'number': 5}}"
        )


class MetadataHooks:
    """bluesky's three metadata hooks (mixed into the run engine's core)."""

    def _setup_metadata_hooks(self) -> None:
        #: ``scan_id_source(md)`` (sync or async) gives the next scan id (bluesky's hook).
        self.scan_id_source: Callable[[Any], Any] = default_scan_id_source
        #: ``md_validator(md)`` raises if the start metadata is not acceptable.
        self.md_validator: Callable[[dict[str, Any]], Any] = default_md_validator
        #: ``md_normalizer(md)`` returns the start metadata as it is to be written.
        self.md_normalizer: Callable[[Any], Any] = _unchanged

    async def _next_scan_id(self, md: Mapping[str, Any]) -> int:
        value = await maybe_await(self.scan_id_source(md))
        if isinstance(value, bool) or not isinstance(value, int):
            raise PlanArgumentError(f"scan_id_source must return an int, got {value!r}")
        return value

    def _final_metadata(self, md: dict[str, Any]) -> dict[str, Any]:
        """`md` validated, then normalised (on a deep copy: the caller's dicts stay as given)."""
        self.md_validator(dict(md))
        normalized = self.md_normalizer(copy.deepcopy(md))
        if not isinstance(normalized, Mapping):
            raise PlanArgumentError(f"md_normalizer must return a mapping, got {normalized!r}")
        return dict(normalized)


def _unchanged(md: Any) -> Any:
    return md

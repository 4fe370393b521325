"""Test your schedules the way timecontrol tests its own: on virtual time.

* `run(main, start=...)` runs a coroutine function under a `VirtualClock` (asyncio or trio).
* The pytest plugin (installed with timecontrol) runs tests marked
  ``@pytest.mark.timecontrol(start=...)`` on both backends; the ``virtual_clock`` fixture
  gives the test its clock.
"""

from __future__ import annotations

from ._virtual import DEFAULT_START, Backend, VirtualClock, VirtualEventLoop, run

__all__ = ["DEFAULT_START", "Backend", "VirtualClock", "VirtualEventLoop", "run"]

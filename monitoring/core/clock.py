"""Time as an input: the core never reads the wall clock itself.

The clocks are ``cmlbase.clock``'s, shared with the local workspace, whose warp clock a job run
reads (``clock_from_env``); the library keeps importing them from here.
"""

from __future__ import annotations

from cmlbase.clock import CLOCK_FILE_ENV, Clock, SystemClock, WarpClock, clock_from_env, iso_exact, iso_ms

__all__ = ["CLOCK_FILE_ENV", "Clock", "SystemClock", "WarpClock", "clock_from_env", "iso_exact", "iso_ms"]

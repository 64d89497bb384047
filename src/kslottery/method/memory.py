"""Memory between runs: a process that computes run after run (a notebook kernel, a Ray worker) hands back what
a finished run freed, and each run records its own peak, not the process's so far (:class:`~.runs.Run` calls
both as it starts).
"""

from __future__ import annotations

import ctypes
import gc
import time
from pathlib import Path

COLLECT_EVERY_S = 60.0
_collected = -COLLECT_EVERY_S   # the first run collects


def release_memory() -> bool:
    """Hand the memory earlier runs freed back to the system before the next run allocates. glibc keeps freed
    heap pages: one Gemma rows tuning left 4.0 GiB resident where 1.2 GiB was live, and a kernel that computes
    run after run grew past the profile's 12 GiB. False where the C library has no ``malloc_trim``.

    A full collection (for a dropped model held in reference cycles) takes about a second once torch and
    transformers are loaded: at most one a minute, so that a study of minute-long runs always gets it and a
    test suite of many tiny runs does not pay it each time (it made ``make test`` 77 s slower)."""
    global _collected
    if time.monotonic() - _collected >= COLLECT_EVERY_S:
        gc.collect()
        _collected = time.monotonic()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):   # not glibc (macOS, musl): nothing to trim
        return False
    return True


def reset_peak() -> bool:
    """Start the process's peak resident memory afresh (Linux: /proc/self/clear_refs, which ru_maxrss reads too),
    so that a run records its own peak, not that of every run its process computed before it. False elsewhere."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True

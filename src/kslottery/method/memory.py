"""Memory between runs: a process that computes run after run (a notebook kernel, a Ray worker) hands back what
a finished run freed, and each run records its own peak, not the process's so far (:class:`~.runs.Run` calls
both as it starts).
"""

from __future__ import annotations

import ctypes
import gc
from pathlib import Path


def release_memory() -> bool:
    """Hand the memory earlier runs freed back to the system before the next run allocates. glibc keeps freed
    heap pages: one Gemma rows tuning left 4.0 GiB resident where 1.2 GiB was live, and a kernel that computes
    run after run grew past the profile's 12 GiB. False where the C library has no ``malloc_trim``."""
    gc.collect()
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

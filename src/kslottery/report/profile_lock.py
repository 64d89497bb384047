"""One run of a profile at a time.

Two ``kslottery run --profile X`` at once used to share ``.ksl-partial/X-<notebook>.ipynb``: both exited 0
and the published provenance said "0 runs, 0.0 min". The runner now holds a lock per profile (the filelock
the runs take, see :meth:`kslottery.method.runs.Run.claim`) and works in a folder of that profile's own.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

from ..method.errors import KSLError

PARTIAL = ".ksl-partial"


def partial_root(home: Path) -> Path:
    """``<home>/.ksl-partial``, where unfinished pages and staged books live; one line if a file is there."""
    folder = home / PARTIAL
    if folder.exists() and not folder.is_dir():
        raise KSLError(f"{folder} is a file, where the runner keeps unfinished pages",
                       f"remove or rename {folder}, then rerun")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def profile_lock(prof):
    """Hold the profile's lock (``.ksl-partial/run-<name>.lock`` of its home) and yield its working folder,
    ``.ksl-partial/run-<name>/``; a second run of the same profile is refused at once, in one line."""
    root = partial_root(prof.home)
    lock = FileLock(root / f"run-{prof.name}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise KSLError(f"profile {prof.name} is already running (another process holds {lock.lock_file})",
                       "wait for that run to finish, or stop it, then rerun") from None
    try:
        work = root / f"run-{prof.name}"
        if work.exists() and not work.is_dir():
            raise KSLError(f"{work} is a file, where the runner keeps this profile's unfinished pages",
                           f"remove or rename {work}, then rerun")
        work.mkdir(exist_ok=True)
        yield work
    finally:
        lock.release()

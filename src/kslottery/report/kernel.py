"""What ``kslottery run`` does in a notebook's kernel before the notebook's own cells: record the runs the
notebook names (for its provenance) and keep third-party noise out of the published page.

Warning filters are process-wide, so they are set here, in the kernel the runner starts, and never at import
time: importing :mod:`kslottery` in a user's own session changes none of their warning settings."""

from __future__ import annotations

import warnings
from pathlib import Path

from ..method import archive  # noqa: F401  (a tune run restored without its weights computes them again)
from ..method.runs import record_runs_to
from .profile_schema import remember


def setup(log: str, profile_file: str | None = None) -> None:
    """``log``: where the runs the notebook names are recorded; ``profile_file``: the profile being run, which
    the notebook's own ``load_profile(profile)`` then finds by its name (a user's file may lie anywhere)."""
    record_runs_to(log)
    if profile_file is not None:
        remember(Path(profile_file))
    # transformers' loading bars import tqdm.auto, which warns inside Jupyter without ipywidgets; its 5.x
    # deprecation notices (raised inside transformers, torch and PEFT, not by this code) would drown the results.
    warnings.filterwarnings("ignore", message="IProgress not found")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|torch|peft)\.")

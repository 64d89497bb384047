"""A run computed over several sittings: an interrupted run resumes from its ``.partial`` folder in a later
process, perhaps at another commit or on another machine. Each sitting is kept in the run's ``params.json``
(``sittings``: when it started, its commit and machine, and how long it worked), so the run's wall-clock and the
commits it was computed at cover every sitting, not only the last one.

An interrupted sitting never saw its own end: it is taken to have worked until the last file it wrote.

    >>> of({"git_commit": "abc", "machine": {"cpus": 2}, "started": "2026-12-07T10:00:00+0000"})[0]["git_commit"]
    'abc'
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

FORMAT = "%Y-%m-%dT%H:%M:%S%z"


def now() -> str:
    return time.strftime(FORMAT)


def of(params: dict) -> list[dict]:
    """Every sitting a run's ``params.json`` records (a run written before sittings were kept: its one, the last)."""
    return params.get("sittings") or [{k: params.get(k) for k in ("started", "git_commit", "machine")}]


def earlier(work: Path) -> list[dict]:
    """The sittings of the unfinished run in ``work`` before this one, each with its ``wall_s`` (empty for a run
    starting afresh)."""
    path = work / "params.json"
    if not path.exists():
        return []
    past = of(json.loads(path.read_text()))
    last = past[-1]
    if last.get("wall_s") is None:
        files = [f.stat().st_mtime for f in work.rglob("*") if f.is_file() and f.name != "params.json"]
        try:
            began = datetime.strptime(last["started"], FORMAT).timestamp()
        except (TypeError, ValueError):   # no start recorded: nothing to count
            began = max(files, default=0.0)
        last["wall_s"] = round(max(0.0, max(files, default=began) - began), 1)
    return past


def closed(params: dict, wall_s: float) -> dict:
    """A run's ``params.json`` with the finishing sitting's own wall-clock recorded (unchanged if it keeps none)."""
    if params.get("sittings"):
        params = {**params, "sittings": [*params["sittings"][:-1], {**params["sittings"][-1], "wall_s": round(wall_s, 1)}]}
    return params


def wall_s(run_dir: Path, params: dict, record: dict) -> float:
    """A finished run's wall-clock over all its sittings. A run written before sittings were kept recorded its last
    sitting only; where its step log (``train_log.jsonl``, appended across sittings) times more than that, the
    steps' own times are the better count."""
    wall = record.get("wall_s", 0.0) or 0.0
    log = run_dir / "train_log.jsonl"
    if "sittings" in params or not log.exists():
        return wall
    steps = sum(json.loads(line).get("step_s", 0.0) for line in log.read_text().splitlines() if line.strip())
    return round(max(wall, steps), 1)

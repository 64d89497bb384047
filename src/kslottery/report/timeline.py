"""When a protocol was fixed, against when its first test score was computed.

A design committed before its scores is a claim a reader should be able to check, not take on trust. Two
records settle it without anyone's word: git's history of the profile's ``protocol:`` block (a commit that
changes only comments changes nothing that governs a verdict, so it does not count), and the start time every
run writes into its ``params.json``. The provenance page prints both (:func:`timeline_lines`).

    >>> timeline_lines({"changes": [{"name": "v1", "commit": "abc1234", "time": "2026-12-06T16:30:23+00:00"}],
    ...                 "first_score": {"started": "2026-12-07T14:00:00+0000", "runs": 3}})[-1]
    'The first of its 3 test scores started 2026-12-07 14:00 UTC, 21.5 h after the last change of the protocol.'
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ..method.runs import finished


def _git(root: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def _protocol(text: str | None) -> dict | None:
    try:
        return (yaml.safe_load(text or "") or {}).get("protocol")
    except (yaml.YAMLError, AttributeError):   # a commit whose profile did not parse fixed no protocol
        return None


def protocol_changes(profile: str | Path) -> list[dict]:
    """The commits (oldest first) at which the profile's ``protocol:`` block took a new value: {"commit",
    "time" (committer's, ISO), "name"}; the working tree's own value last, as ``commit: "uncommitted"``, when it
    differs from the last commit's. Empty outside git (a source archive has no history to show)."""
    path = Path(profile).resolve()
    root = path.parent
    top = _git(root, "rev-parse", "--show-toplevel")
    if top is None:
        return []
    root = Path(top.strip()).resolve()   # pathspecs are relative to the working directory: run git at the top
    rel = path.relative_to(root).as_posix()
    log = _git(root, "log", "--format=%H %cI", "--", rel) or ""
    changes, last = [], None
    for line in reversed(log.split("\n")):
        if not line.strip():
            continue
        sha, when = line.split()
        proto = _protocol(_git(root, "show", f"{sha}:{rel}"))
        if proto is not None and proto != last:
            changes.append({"commit": sha[:7], "time": when, "name": proto.get("name", "")})
        last = proto
    now = _protocol(path.read_text())
    if now is not None and now != last:
        changes.append({"commit": "uncommitted", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "name": now.get("name", "")})
    return changes


def first_score(used: list[str], split: str, offset: int | None = None, root: str | Path | None = None) -> dict | None:
    """The earliest start among the runs in ``used`` that scored ``split`` (from sentence ``offset``, when given:
    a protocol's test sentences): {"started", "run", "runs" (how many such runs)}; None when there are none."""
    starts = []
    for name in used:
        run = finished(name, root) if name.startswith("eval-") else None
        if run is None:
            continue
        params, at = run[0], offset is None or run[0]["params"].get("offset", 0) == offset
        if params["params"].get("split") == split and at and "started" in params:
            starts.append((_when(params["started"]), params["started"], name))
    if not starts:
        return None
    _, started, run = min(starts)
    return {"started": started, "run": run, "runs": len(starts)}


def design_timeline(profile: str | Path, used: list[str], root: str | Path | None = None) -> dict | None:
    """What :func:`timeline_lines` prints for a notebook that used the runs ``used`` under the profile's protocol
    (None for a profile without one): its changes, its first test score and its first dev score."""
    proto = _protocol(Path(profile).read_text())
    if proto is None:
        return None
    return {"changes": protocol_changes(profile),
            "first_score": first_score(used, "devtest", proto.get("test_offset", 0), root),
            "first_dev_score": first_score(used, "dev", None, root)}


def _when(stamp: str) -> datetime:
    """A run's start (``%Y-%m-%dT%H:%M:%S%z``) or a commit's time (ISO 8601), in UTC."""
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", None):
        try:
            t = datetime.strptime(stamp, fmt) if fmt else datetime.fromisoformat(stamp)
        except ValueError:
            continue
        return t.astimezone(timezone.utc)
    raise ValueError(f"not a time: {stamp!r}")


def _utc(stamp: str) -> str:
    return _when(stamp).strftime("%Y-%m-%d %H:%M UTC")


def timeline_lines(entry: dict) -> list[str]:
    """The provenance page's section: each version of the protocol with its commit and time, then the first
    test score and how long after the last change it started (or a warning when a change came later)."""
    changes, first, dev = entry.get("changes") or [], entry.get("first_score"), entry.get("first_dev_score")
    lines = ["## When the design was fixed", ""]
    if not changes:
        return lines + ["No git history of the profile was found, so this page cannot show when its protocol "
                        "was committed."]
    lines += ["| protocol | commit | committed |", "|---|---|---|"]
    lines += [f"| {c['name'] or '—'} | `{c['commit']}` | {_utc(c['time'])} |" for c in changes]
    lines.append("")
    if first is None:
        return lines + ["No test score of the protocol exists yet."]
    fixed = _when(changes[-1]["time"])
    if changes[-1]["commit"] == "uncommitted" or _when(first["started"]) < fixed:
        return lines + [f"**The protocol changed after its first test score** (started {_utc(first['started'])}, "
                        f"run `{first['run']}`): its verdicts are not confirmatory."]
    said = []
    for what, score in (("test score{}", first), ("dev score{} (the learning-rate choice)", dev)):
        if score is not None:
            n, gap = score["runs"], (_when(score["started"]) - fixed).total_seconds() / 3600
            said.append(f"The first of its {n} {what.format('' if n == 1 else 's')} started {_utc(score['started'])}, "
                        f"{gap:.1f} h {'after' if gap >= 0 else 'before'} the last change of the protocol.")
    return lines + [" ".join(said)]

"""When a protocol was fixed, against when its first test score was computed.

A design committed before its scores is a claim a reader should be able to check, not take on trust. Three
records bear on it: git's history of the profile's ``protocol:`` block and of the fair test's notebook
parameters (a commit that changes only comments changes neither), git's history of the code that turns scores
into verdicts, and the start time and commit every run writes into its ``params.json``. The provenance page
prints them (:func:`timeline_lines`), and says what they cannot show: scores in runs this folder no longer
holds, and a history someone rewrote.

    >>> _keys({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 0})
    'b, c'
"""

from __future__ import annotations

import subprocess
from datetime import datetime, timezone
from pathlib import Path

import yaml

from ..method.runs import runs_root
from ..method.status import finished_runs
from ..study.design import Design

# The code that turns scores into outcomes and verdicts, and the notebook that calls it (repository paths).
GOVERNING = ("src/kslottery/study/design.py", "src/kslottery/study/verdicts.py", "src/kslottery/study/comparison.py",
             "src/kslottery/study/fair.py", "src/kslottery/study/claims.py", "src/kslottery/study/fair_claims.py",
             "notebooks/fair_test.ipynb")


def _git(root: Path, *args: str) -> str | None:
    try:
        r = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    return r.stdout if r.returncode == 0 else None


def _design(text: str | None) -> dict | None:
    """What of a profile governs the fair test: its protocol block and the fair-test notebook's parameters."""
    try:
        prof = yaml.safe_load(text or "") or {}
        proto = prof.get("protocol")
    except (yaml.YAMLError, AttributeError):   # a commit whose profile did not parse fixed nothing
        return None
    if not isinstance(proto, dict):
        return None
    notebook = ((prof.get("notebooks") or {}).get("fair_test") or {})
    return {**proto, **{f"fair_test.{k}": v for k, v in notebook.items()}}


def _keys(before: dict | None, after: dict) -> str:
    before = before or {}
    return ", ".join(sorted(k for k in {*before, *after} if before.get(k) != after.get(k)))


def _top(path: Path) -> Path | None:
    top = _git(path.parent, "rev-parse", "--show-toplevel")
    return None if top is None else Path(top.strip()).resolve()


def protocol_changes(profile: str | Path) -> list[dict]:
    """The commits (oldest first) at which the profile's protocol block or fair-test parameters took a new value:
    {"commit", "time" (committer's, ISO), "name", "changed" (the keys)}; the working tree's own value last, as
    ``commit: "uncommitted"``, when it differs. Empty outside git (a source archive has no history to show)."""
    path = Path(profile).resolve()
    root = _top(path)
    if root is None:
        return []
    rel = path.relative_to(root).as_posix()   # pathspecs are relative to the working directory: git runs at the top
    log = _git(root, "log", "--full-history", "--follow", "--format=%H %cI", "--", rel) or ""
    changes, last = [], None
    for line in reversed(log.split("\n")):
        if not line.strip():
            continue
        sha, when = line.split()
        design = _design(_git(root, "show", f"{sha}:{rel}"))
        if design is not None and design != last:
            changes.append({"commit": sha[:7], "time": when, "name": design.get("name", ""),
                            "changed": _keys(last, design) if last is not None else "(the first version)"})
        last = design if design is not None else last
    now = _design(path.read_text())
    if now is not None and now != last:
        changes.append({"commit": "uncommitted", "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "name": now.get("name", ""), "changed": _keys(last, now)})
    return changes


def code_change(profile: str | Path) -> dict | None:
    """The last commit to the code that governs verdicts (:data:`GOVERNING`): {"commit", "time"}; None outside git."""
    root = _top(Path(profile).resolve())
    line = (_git(root, "log", "-1", "--format=%H %cI", "--", *GOVERNING) or "").strip() if root else ""
    return {"commit": line.split()[0][:7], "time": line.split()[1]} if line else None


def first_score(pair: str, split: str, span: tuple[int, int] | None = None,
                root: str | Path | None = None) -> dict | None:
    """The earliest start among every finished eval run of the runs folder that scored ``pair``'s ``split`` (and,
    given ``span`` = (first, end), any of those sentences): {"started", "run", "commit", "runs" (how many)}."""
    starts = []
    for name, meta, _ in finished_runs(runs_root(root), ("eval",)):
        p = meta["params"]
        if p.get("pair") != pair or p.get("split") != split or "started" not in meta:
            continue
        first = p.get("offset") or 0
        end = first + p["limit"] if p.get("limit") is not None else float("inf")
        if span is None or (first < span[1] and span[0] < end):   # the run read some of these sentences
            starts.append((_when(meta["started"]), meta["started"], name, meta.get("git_commit") or ""))
    if not starts:
        return None
    _, started, run, commit = min(starts)
    return {"started": started, "run": run, "commit": commit, "runs": len(starts)}


def design_timeline(profile: str | Path, root: str | Path | None = None) -> dict | None:
    """What :func:`timeline_lines` prints for the profile's fair test (None for a profile without a protocol)."""
    path = Path(profile)
    proto = _design(path.read_text())
    if proto is None:
        return None
    pair, offset, n = proto.get("pair", Design.pair), proto.get("test_offset", 0), proto.get("test_sentences")
    fixed = {"changes": protocol_changes(path), "code": code_change(path), "pair": pair,
             "span": [offset, offset + n if n else None],
             "first_score": first_score(pair, "devtest", (offset, offset + n if n else float("inf")), root),
             "first_dev_score": first_score(pair, "dev", None, root)}
    top, last = _top(path.resolve()), (fixed["changes"] or [{}])[-1].get("commit")
    commit = (fixed["first_score"] or {}).get("commit", "").removesuffix("-dirty")
    if top and commit and last and last != "uncommitted":   # the scored code contains the protocol it claims
        fixed["first_score"]["contains_protocol"] = _git(top, "merge-base", "--is-ancestor", last, commit) is not None
    return fixed


def _when(stamp: str) -> datetime:
    """A run's start (``%Y-%m-%dT%H:%M:%S%z``) or a commit's time (ISO 8601), in UTC; a stamp without a zone
    is refused rather than read in this machine's."""
    for fmt in ("%Y-%m-%dT%H:%M:%S%z", None):
        try:
            t = datetime.strptime(stamp, fmt) if fmt else datetime.fromisoformat(stamp)
        except ValueError:
            continue
        if t.tzinfo is not None:
            return t.astimezone(timezone.utc)
    raise ValueError(f"not a time with a zone: {stamp!r}")


def _utc(stamp: str) -> str:
    return _when(stamp).strftime("%Y-%m-%d %H:%M UTC")


def timeline_lines(entry: dict, label: str = "design-fixed") -> list[str]:
    """The provenance page's section (its table named ``label``): each version of the protocol with its commit,
    time and changed keys; the last change to the code that governs verdicts; the earliest dev and test scores,
    with a warning for a score that came before a change; and what none of it can show."""
    changes, first, dev = entry.get("changes") or [], entry.get("first_score"), entry.get("first_dev_score")
    lines = ["## When the design was fixed", ""]
    if not changes:
        return lines + ["No git history of the profile was found, so this page cannot show when its protocol "
                        "was committed."]
    # a captioned table (MyST's table directive), like every table of the book's results pages
    lines += ["```{table} Each version of the profile's protocol block and the fair test's notebook parameters: its "
              "commit, when git says it was committed, and the keys it changed", f":name: {label}", "",
              "| protocol | commit | committed | changed |", "|---|---|---|---|"]
    lines += [f"| {c['name'] or '—'} | `{c['commit']}` | {_utc(c['time'])} | {c.get('changed') or '—'} |"
              for c in changes] + ["```"]
    fixed = _when(changes[-1]["time"])
    lines.append("")
    if entry.get("code"):
        lines.append(f"The code that turns scores into outcomes and verdicts last changed at `{entry['code']['commit']}` "
                     f"({_utc(entry['code']['time'])}).")
    span = entry.get("span") or [0, None]
    where = f"devtest sentences {span[0]}–{span[1] - 1}" if span[1] else f"devtest from sentence {span[0]}"
    if first is None:
        lines.append(f"No run in this runs folder has scored {where} yet.")
    elif changes[-1]["commit"] == "uncommitted" or _when(first["started"]) < fixed:
        lines.append(f"**The protocol changed after its first test score** (started {_utc(first['started'])}, "
                     f"run `{first['run']}`): its verdicts are not confirmatory.")
    else:
        gap, n = (_when(first["started"]) - fixed).total_seconds() / 3600, first["runs"]
        lines.append(f"The earliest of the {n} run{'' if n == 1 else 's'} in this runs folder that scored {where} "
                     f"started {_utc(first['started'])}, {gap:.1f} h after the protocol's last change.")
        if first.get("contains_protocol") is False:
            lines.append(f"**Its code (`{first['commit'][:7]}`) does not contain that change.**")
    if dev is not None:
        gap = (_when(dev["started"]) - fixed).total_seconds() / 3600
        said = (f"{gap:.1f} h after the protocol's last change" if gap >= 0 else
                f"**{-gap:.1f} h before the protocol's last change**")
        lines.append(f"The earliest dev score (of {dev['runs']}) started {_utc(dev['started'])}, {said}.")
    return lines + ["", "Not shown here: scores in runs this folder no longer holds (the method chapter names the "
                    "earlier designs' scores), and a history rewritten after the fact (commit times are the "
                    "committer's clock)."]

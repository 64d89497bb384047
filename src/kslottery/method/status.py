"""What a runs folder holds right now (``kslottery status``): the finished runs of each kind with the compute they
recorded, and the unfinished ones (``.partial``) with how far they got and whether a live process is computing
them. A profile takes hours on a CPU and resumes across sittings; this is how to see where it stands without
opening its notebooks.

    >>> s = status(runs_root())                                                            # doctest: +SKIP
    >>> s["finished"]["tune"], [u["step"] for u in s["unfinished"]]                         # doctest: +SKIP
    ({'runs': 14, 'hours': 1.6}, [45])
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from .runs import LOCKS
from .tuning import planned_steps


def tune_steps(params: dict) -> int | None:
    """A tune run's planned steps from its parameters, at most (a too-short ``max_len`` drops examples and so
    steps); None for a run that is not a tuning."""
    if not {"limit", "batch_size", "epochs"} <= set(params) or params["limit"] is None:
        return None
    return planned_steps(params["limit"], params["batch_size"], params["epochs"], params.get("max_steps"))


def _last_step(folder: Path) -> int | None:
    log = folder / "train_log.jsonl"
    if not log.exists():
        return None
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines[-2:]):   # a line cut by an interruption: the one before it is the last whole step
        try:
            return int(json.loads(line)["step"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


def _json(path: Path, damaged: list, run: str) -> dict:
    """A run's JSON file, or {} where it is missing; a damaged one is listed (``kslottery status`` exists for the
    runs folder of an interrupted, perhaps broken, study: it reports what it finds rather than stop at it)."""
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text())
        if isinstance(value, dict):
            return value
    except (OSError, ValueError):
        pass
    damaged.append({"run": run, "file": path.name})
    return {}


def _computing(root: Path, name: str) -> str | None:
    """The process that holds the run's lock, from the pid file its claim wrote ("<pid> on <host>"); None when
    nobody does. On this machine the process must be alive: a killed one leaves its pid file behind."""
    try:
        words = (root / LOCKS / f"{name}.pid").read_text().split()
        pid, host = int(words[0]), (words[2] if len(words) > 2 else platform.node())
    except (OSError, ValueError, IndexError):
        return None
    if host != platform.node():
        return f"process {pid} on {host} (not checked from here)"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:   # alive, another user's
        pass
    return f"process {pid}"


def finished_runs(root: Path, kinds: tuple[str, ...]) -> list[tuple[str, dict, dict]]:
    """(name, params.json, record.json) of every finished run of ``kinds`` in ``root``, read and not verified: a
    listing must not hash gigabytes of weights, and a damaged run is for its reuse to refuse, not for a listing."""
    out, damaged, folder = [], [], Path(root)
    for p in sorted(folder.iterdir()) if folder.is_dir() else []:
        if p.name.split("-")[0] in kinds and (p / "DONE").exists():
            meta = _json(p / "params.json", damaged, p.name)
            if isinstance(meta.get("params"), dict):
                out.append((p.name, meta, _json(p / "record.json", damaged, p.name)))
    return out


def status(root: Path) -> dict:
    """{"root", "finished": {kind: {"runs", "hours"}}, "unfinished": [one dict per ``.partial`` folder]}."""
    finished: dict[str, dict] = {}
    unfinished, damaged = [], []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name.endswith(".partial"):
            name = folder.name.removesuffix(".partial")
            meta = _json(folder / "params.json", damaged, folder.name)
            params = meta.get("params") if isinstance(meta.get("params"), dict) else {}
            modified = max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)
            unfinished.append({"run": name, "kind": name.split("-")[0], "mode": params.get("mode"),
                               "lr": params.get("lr"), "seed": params.get("seed"), "step": _last_step(folder),
                               "steps": tune_steps(params) if name.startswith("tune-") else None,
                               "idle_s": round(time.time() - modified), "computing": _computing(Path(root), name)})
        elif (folder / "DONE").exists():
            kind = folder.name.split("-")[0]
            wall = _json(folder / "record.json", damaged, folder.name).get("wall_s", 0.0)
            wall = wall if isinstance(wall, (int, float)) else 0.0
            k = finished.setdefault(kind, {"runs": 0, "hours": 0.0})
            k["runs"] += 1
            k["hours"] = round(k["hours"] + wall / 3600, 2)
    return {"root": str(root), "finished": finished, "unfinished": unfinished, "damaged": damaged}


def describe(s: dict) -> str:
    """The status as the lines ``kslottery status`` prints."""
    done = s["finished"]
    kinds = ", ".join(f"{kind} {k['runs']}" for kind, k in sorted(done.items())) or "none"
    lines = [f"runs in {s['root']}",
             f"finished: {sum(k['runs'] for k in done.values())} runs ({kinds}), "
             f"{sum(k['hours'] for k in done.values()):.1f} h of recorded compute"]
    if not s["unfinished"]:
        lines.append("unfinished: none")
    for u in s["unfinished"]:
        what = " ".join(f"{k} {u[k]:g}" if isinstance(u[k], float) else f"{k} {u[k]}"
                        for k in ("mode", "lr", "seed") if u[k] is not None)
        step = f"step {u['step']}/{u['steps']}" if u["step"] is not None and u["steps"] else "started"
        who = f"computing: {u['computing']}" if u["computing"] else "nobody computing it (rerun to resume)"
        lines.append(f"unfinished: {u['run']}  {what}  {step}  last write {u['idle_s']} s ago  {who}")
    for d in s.get("damaged", []):
        lines.append(f"damaged: {d['run']}  its {d['file']} cannot be read (delete {d['run']} and rerun the command "
                     "that made it)")
    return "\n".join(lines)

"""Run directories named by a hash of their resolved parameters (open_lth style).

``<root>/<kind>-<hash12>/`` holds ``params.json`` (parameters, versions, seed, git commit, machine),
the artifacts, and ``DONE``, written last: a directory without ``DONE`` never exists under its final
name, because work happens in ``<name>.partial/`` and is renamed when complete. A ``.partial``
folder left by an interrupted run is where that run resumes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path

from .errors import KSLError

DONE = "DONE"


def runs_root(explicit: str | os.PathLike | None = None) -> Path:
    return Path(explicit or os.environ.get("KSL_RUNS") or "runs").expanduser()


def named_params(config) -> dict:
    """A config dataclass as the parameters that name its run. Options added after runs existed
    (``named_when_set`` in their field metadata) join only when set, so the runs made before them,
    which behaved like the default, keep their names; options that cannot change a result
    (``named: False``, e.g. permission to read pickle weights) never join, and an option that another one
    overrides (``unnamed_with``: the FLORES split when a data file is given) leaves when that one is set."""

    values = asdict(config)
    params = dict(values)
    for f in fields(config):
        if (f.metadata.get("named") is False
                or (f.metadata.get("named_when_set") and values[f.name] == f.default)
                or any(values[other] for other in f.metadata.get("unnamed_with", ()))):
            del params[f.name]
    return params


def param_hash(params: dict) -> str:
    blob = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def versions() -> dict:

    out = {"python": sys.version.split()[0]}
    for dist in ("kslottery", "torch", "transformers", "tokenizers", "accelerate", "peft", "sacrebleu",
                 "numpy", "scipy"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    try:
        here = Path(__file__).resolve().parent
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if r.returncode:
            return None
        # Results a profile run writes into the book (and the goldens copied from them) are outputs,
        # not code: rewriting them does not make the code that produced them dirty.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ":/",
                                ":(top,exclude)book/results"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return r.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as e:
        raise KSLError(f"cannot write run directories under {root} ({e.strerror})",
                       "pass a writable folder with --runs-dir or set KSL_RUNS") from None


@contextlib.contextmanager
def atomic_dir(target: Path):
    """Yield a temporary sibling of ``target``; rename it to ``target`` only if the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-")
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    try:
        yield Path(tmp)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False, default=str) + "\n")
    os.replace(tmp, path)


_run_log: Path | None = None


def record_runs_to(path: str | os.PathLike | None) -> None:
    """Append the name of every run this process names (computed or reused) to ``path``: how ``kslottery
    run`` learns which runs a notebook used, for its provenance page (it calls this in the notebook's kernel
    before the notebook's own cells). None stops recording."""
    global _run_log
    _run_log = Path(path) if path is not None else None


class Run:
    """One run: ``Run(kind, params, root)``; ``done`` says whether it can be reused.

    Work writes into ``run.work`` (the ``.partial`` folder); ``finish()`` stamps ``DONE`` and renames it."""

    def __init__(self, kind: str, params: dict, root: str | os.PathLike | None = None, seed: int | None = None,
                 revisions: dict | None = None):
        """``revisions``: markers of code changes that changed what a run with these parameters computes (a
        fixed bug, a new table layout). They join the parameters, and so the name, only when given, so the
        runs a change does not affect keep their names and the stale ones are never reused."""
        if revisions and set(revisions) & set(params):
            raise ValueError(f"revision markers {sorted(set(revisions) & set(params))} clash with parameters")
        params = {**params, **(revisions or {})}
        self.kind, self.params, self.seed = kind, params, seed
        self.root = runs_root(root)
        self.name = f"{kind}-{param_hash(params)}"
        self.path = self.root / self.name
        self.work = self.root / f"{self.name}.partial"
        if _run_log is not None:
            with open(_run_log, "a") as f:
                f.write(self.name + "\n")

    @property
    def done(self) -> bool:
        return (self.path / DONE).exists()

    def start(self) -> Path:
        ensure_writable(self.root)
        self.work.mkdir(exist_ok=True)
        self._t0 = time.time()
        write_json(self.work / "params.json", {
            "kind": self.kind, "params": self.params, "seed": self.seed, "versions": versions(),
            "git_commit": git_commit(), "machine": machine(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        return self.work

    def finish(self, record: dict) -> Path:
        # Peak resident memory of the process that produced the run (in a notebook kernel: the kernel so far).
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        record = {**record, "run": self.name, "wall_s": round(time.time() - getattr(self, "_t0", time.time()), 1),
                  "peak_rss_gib": round(peak, 2)}
        write_json(self.work / "record.json", record)
        (self.work / DONE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")
        os.rename(self.work, self.path)
        return self.path

    def abandon(self) -> None:
        """Remove the work folder when nothing useful for a resume is in it."""
        shutil.rmtree(self.work, ignore_errors=True)

    def record(self) -> dict:
        return json.loads((self.path / "record.json").read_text())

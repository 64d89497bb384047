"""Run directories named by a hash of their resolved parameters (open_lth style).

``<root>/<kind>-<hash12>/`` holds ``params.json`` (parameters, versions, seed, git commit, machine),
the artifacts, ``MANIFEST.json`` (the sha256 of every file) and ``DONE``, written last: a directory
without ``DONE`` never exists under its final name, because work happens in ``<name>.partial/`` and is
renamed when complete. A ``.partial`` folder left by an interrupted run is where that run resumes.

One process computes a run at a time: :meth:`Run.claim` takes a lock (``<root>/.locks/<name>.lock``)
that a second process asking for the same run waits on (and then reuses the finished run), or, with
``KSL_NO_WAIT=1`` (the commands' ``--no-wait``), refuses naming the process that holds it. A finished run
is verified against its manifest before it is reused or read (:func:`verify`).
"""

from __future__ import annotations

import contextlib
import functools
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

from filelock import FileLock, Timeout

from . import sittings
from .errors import KSLError
from .finite import not_finite
from .memory import release_memory, reset_peak

DONE = "DONE"
MANIFEST = "MANIFEST.json"
LOCKS = ".locks"
LEFT_OUT = "LEFT_OUT.json"   # the files a run was archived without (kslottery.method.archive)


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
        with contextlib.suppress(md.PackageNotFoundError):
            out[dist] = md.version(dist)
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


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _artifacts(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in (DONE, MANIFEST, LEFT_OUT))


def left_out(path: str | os.PathLike) -> dict[str, str]:
    """{relative path: sha256} of the files an archived run is kept without (its weights); {} for a whole run."""
    f = Path(path) / LEFT_OUT
    return json.loads(f.read_text())["sha256"] if f.exists() else {}


def write_manifest(work: Path) -> None:
    """The sha256 of every file of a run about to finish, so a reader can tell a damaged run from a good one."""
    write_json(work / MANIFEST, {"sha256": {p.relative_to(work).as_posix(): file_sha256(p) for p in _artifacts(work)}})


# Runs verified by this process, with the size and mtime of each file then: a notebook reads one run many
# times, and hashing a full fine-tuned model again each time would cost more than the read.
_verified: dict[Path, tuple] = {}


def _signature(path: Path) -> tuple:
    return tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in [path / MANIFEST, *_artifacts(path)])


def verify(path: Path) -> None:
    """Check a finished run against its manifest: the files present are exactly the files it lists, each with
    its sha256, less those an archived run is kept without (``LEFT_OUT.json``, with the manifest's sha256). A damaged
    run (a file changed, missing or added, the manifest missing or empty) is an error naming the file, never used."""
    path = Path(path)
    key = path.resolve()
    if (path / MANIFEST).exists() and _verified.get(key) == _signature(path):
        return
    fix = f"delete {path} and run the same command again to recompute it"
    try:
        recorded = json.loads((path / MANIFEST).read_text())["sha256"]
        if not isinstance(recorded, dict):
            raise TypeError
    except FileNotFoundError:
        raise KSLError(f"run {path.name} is damaged: it has no {MANIFEST}", fix) from None
    except (OSError, ValueError, KeyError, TypeError):
        raise KSLError(f"run {path.name} is damaged: its {MANIFEST} cannot be read", fix) from None
    extra = sorted({p.relative_to(path).as_posix() for p in _artifacts(path)} - set(recorded))
    if extra:
        raise KSLError(f"run {path.name} is damaged: {extra[0]} is not in its {MANIFEST}", fix)
    try:
        gone = left_out(path)
    except (OSError, ValueError, KeyError, TypeError):
        raise KSLError(f"run {path.name} is damaged: its {LEFT_OUT} cannot be read", fix) from None
    for rel, digest in recorded.items():
        f = path / rel
        if rel in gone and not f.exists():
            if gone[rel] != digest:
                raise KSLError(f"run {path.name} is damaged: {LEFT_OUT} and {MANIFEST} disagree on {rel}", fix)
            continue
        if not f.is_file():
            raise KSLError(f"run {path.name} is damaged: {rel} is missing", fix)
        if file_sha256(f) != digest:
            raise KSLError(f"run {path.name} is damaged: {rel} does not match the sha256 recorded when the run "
                           "finished", fix)
    _verified[key] = _signature(path)


# The run locks this process holds, by lock file: one lock object per run, so asking twice in one process
# (a notebook kernel) re-enters it instead of waiting on itself.
_held: dict[Path, object] = {}


def _let_go(lock_file: Path) -> None:
    lock = _held.pop(lock_file, None)
    if lock is not None:
        lock_file.with_suffix(".pid").unlink(missing_ok=True)
        lock.release(force=True)


def releases_locks(compute):
    """For a function that claims a run and computes it: if it raises (bad input found late, an interruption),
    the locks it took are let go, so a notebook kernel that carries on keeps no other process waiting."""
    @functools.wraps(compute)
    def wrapper(*args, **kwargs):
        before = set(_held)
        try:
            return compute(*args, **kwargs)
        except BaseException:
            for lock_file in set(_held) - before:
                _let_go(lock_file)
            raise
    return wrapper


def _holder(pid_file: Path) -> str:
    try:
        return f"process {pid_file.read_text().strip()}"
    except OSError:
        return "another process"


_run_log: Path | None = None


def record_runs_to(path: str | os.PathLike | None) -> None:
    """Append the name of every run this process names (computed or reused) to ``path``: how ``kslottery
    run`` learns which runs a notebook used, for its provenance page (it calls this in the notebook's kernel
    before the notebook's own cells). None stops recording."""
    global _run_log
    _run_log = Path(path) if path is not None else None


class RunRecord(dict):
    """What every run kind's owner returns: the finished run's ``record.json`` with ``run`` (its name), ``path`` and
    ``reused`` (found finished, not computed by this call). Owners subclass it with typed readers (EvalRecord,
    DiscoveryRecord, TunedRecord, CertRecord); it stays a dict, so code that reads keys keeps working."""


class Run:
    """One run: ``Run(kind, params, root)``; ``done`` says whether it can be reused.

    Every run kind computes through the same three steps: ``reuse`` (claim it; the finished run's record when it
    needs no computing), ``start`` (its ``.partial`` folder), ``complete`` (finish it and return its record), so
    each kind's owner returns a typed record read from disk the same way whether it computed the run or not.

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
        """Finished, and its files match their manifest (a damaged run raises: it must not be reused)."""
        if not (self.path / DONE).exists():
            return False
        verify(self.path)
        return True

    def claim(self) -> bool:
        """Ask to compute this run. False: it is finished (perhaps by another process this one waited for),
        reuse it. True: this process holds the run's lock until :meth:`finish` or :meth:`release`, so no
        second writer ever works in the same ``.partial`` folder."""
        if self.done:
            return False
        ensure_writable(self.root)
        self.check_place()
        (self.root / LOCKS).mkdir(exist_ok=True)
        lock_file = self.root / LOCKS / f"{self.name}.lock"
        pid_file = lock_file.with_suffix(".pid")
        lock = _held.get(lock_file) or FileLock(lock_file)   # held already: re-entered, not waited on
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if os.environ.get("KSL_NO_WAIT", "") not in ("", "0"):
                raise KSLError(f"run {self.name} is being computed by {_holder(pid_file)} (lock {lock_file})",
                               "wait for it to finish, or drop --no-wait to wait and reuse it") from None
            print(f"waiting for {_holder(pid_file)}, which is computing run {self.name}", file=sys.stderr)
            lock.acquire()
        _held[lock_file] = lock   # only once acquired: a refused claim must not let go of the holder's record
        pid_file.write_text(f"{os.getpid()} on {platform.node()}\n")
        if self.done:   # the process this one waited for finished it
            self.release()
            return False
        return True

    def check_place(self) -> None:
        """Before computing: the run's name, its ``.partial`` and ``.locks`` are free for it. A folder without
        DONE (or a file) under the run's name used to cost a full recompute and then a traceback at the rename,
        on every rerun."""
        for path, what in ((self.root / LOCKS, "the runs' lock folder"), (self.work, f"run {self.name}'s work folder")):
            if path.exists() and not path.is_dir():
                raise KSLError(f"{path} is a file, where {what} belongs", f"delete or move {path}, then rerun")
        if self.path.is_file() or self.path.is_symlink() and not self.path.exists():
            raise KSLError(f"{self.path} is a file, where run {self.name} belongs", f"delete or move {self.path}, then rerun")
        if self.path.is_dir() and not (self.path / DONE).exists():
            raise KSLError(f"{self.path} is a run directory without DONE (a run that never finished, or a copy)",
                           f"delete or move {self.path}, then rerun to compute it anew")

    def release(self) -> None:
        """Let go of the run's lock (finish does; a caller that gives up after claim may)."""
        _let_go(self.root / LOCKS / f"{self.name}.lock")

    def start(self) -> Path:
        release_memory()
        self._own_peak = reset_peak()
        ensure_writable(self.root)
        self.check_place()
        self.work.mkdir(exist_ok=True)
        self._t0 = time.time()
        past, entry = sittings.earlier(self.work), {"started": sittings.now(), "git_commit": git_commit(),
                                                    "machine": machine()}   # a resumed run keeps its earlier sittings
        self._past_s = sum(s["wall_s"] for s in past)
        write_json(self.work / "params.json", {"kind": self.kind, "params": self.params, "seed": self.seed,
                                               "versions": versions(), **entry, "sittings": [*past, entry]})
        return self.work

    def finish(self, record: dict) -> Path:
        # Peak resident memory since start() reset it (where Linux allows; else the process's so far: in a
        # notebook kernel, every run before this one too)
        peak, wall = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, time.time() - getattr(self, "_t0", time.time())
        write_json(pj := self.work / "params.json", sittings.closed(json.loads(pj.read_text()), wall))   # all sittings count
        record = {**record, "run": self.name, "wall_s": round(wall + getattr(self, "_past_s", 0.0), 1),
                  "peak_rss_gib": round(peak, 2),
                  "peak_rss_of": "this run" if getattr(self, "_own_peak", False) else "the process so far"}
        bad = not_finite(self.work, record)
        if bad:   # a run of NaN is not a result: nothing is kept, so a rerun with other settings starts clean
            shutil.rmtree(self.work, ignore_errors=True)
            self.release()
            raise KSLError(f"run {self.name} computed values that are not finite ({bad}); nothing was kept",
                           "give a finite, smaller learning rate, scale or weight decay and rerun")
        write_json(self.work / "record.json", record)
        write_manifest(self.work)
        (self.work / DONE).write_text(time.strftime("%Y-%m-%dT%H:%M:%S%z") + "\n")
        os.rename(self.work, self.path)
        self.release()
        return self.path

    def record(self) -> dict:
        return json.loads((self.path / "record.json").read_text())

    def reuse(self, record_type: type[RunRecord] = RunRecord, claim: bool = True) -> RunRecord | None:
        """Claim the run. None: this process holds its lock and computes it. Otherwise it is finished (perhaps by
        the process this one waited for): its record, as ``record_type``. ``claim=False`` (a rank other than 0
        of a multi-process run, which never writes it): None while it is unfinished, and no lock is taken."""
        if self.claim() if claim else not self.done:
            return None
        return record_type({**self.record(), "reused": True, "path": str(self.path)})

    def complete(self, record: dict, record_type: type[RunRecord] = RunRecord) -> RunRecord:
        """Finish the run with ``record`` and return what a later reuse reads: the record as written to disk."""
        path = self.finish(record)
        return record_type({**self.record(), "reused": False, "path": str(path)})


def finished(name: str, root: str | os.PathLike | None = None) -> tuple[dict, dict] | None:
    """``(params, record)`` of the finished run called ``name`` (its files checked against the manifest), or None
    while it is unfinished or absent: how code that does not own a run kind reads a run it did not compute."""
    path = runs_root(root) / name
    if not (path / DONE).exists():
        return None
    verify(path)
    return json.loads((path / "params.json").read_text()), json.loads((path / "record.json").read_text())


def note_runs(names: list[str]) -> None:
    """Record runs another process computed for this one (a Ray worker of :mod:`kslottery.study.executor`) as if
    this process had named them, so a notebook's provenance lists every run it used."""
    if _run_log is not None and names:
        with open(_run_log, "a") as f:
            f.write("".join(n + "\n" for n in names))

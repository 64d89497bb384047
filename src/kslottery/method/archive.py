"""The run archive: finished runs without their weights, kept in git so a study longer than one sitting survives
the loss of its runs folder (a machine handed back bare, a pre-empted job, a 3-hour session).

``pack`` copies each finished run into ``<archive>/<name>/`` and leaves out a tune run's tensors and model files
larger than ``max_mib`` (a full model, embedding snapshots, an embedding run's rows: read only to compute
*another* run; its records always stay), listing each with its sha256 in ``LEFT_OUT.json``. ``MANIFEST.json``
is copied unchanged, so an archived run still says what the whole run held; its records, tickets, scores and
hypotheses are all there.
``restore`` copies archived runs that a runs folder lacks into it. A restored run is reused like any other;
when a later run needs its weights, :func:`kslottery.method.tuned.TunedRun` computes them again under the same
name (:func:`rebuild`). Other run kinds are kept whole: they are small, and only a tune
run can be computed again from its parameters alone.

    >>> pack("runs", "archive")                                                    # doctest: +SKIP
    {'packed': 31, 'kept_mib': 4.2, 'left_out_mib': 3120.5}
    >>> restore("archive", "runs")                                                 # doctest: +SKIP
    {'restored': 31}
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import fields
from pathlib import Path

from .errors import KSLError
from .runs import DONE, LEFT_OUT, MANIFEST, atomic_dir, left_out, param_hash, verify, write_json
from .tuned import rebuilt_by
from .tuning import TuneConfig, check, run_params, tune

MAX_MIB = 2.0   # keeps a ticket's tuned rows (about 0.3 MiB at 60 rows), drops an embedding run's (tens of MiB)


def _weights(run: Path, rel: str, recorded: dict) -> bool:
    """Whether a file of a finished run is one the archive may leave out: a tune run's tensors or the files of
    its model, adapter or snapshot folders. Its own records (params, record, logs) never are."""
    return run.name.startswith("tune-") and rel in recorded and ("/" in rel or rel.endswith(".safetensors"))


def _finished(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / DONE).is_file())


def pack(runs: str | os.PathLike, archive: str | os.PathLike, max_mib: float = MAX_MIB) -> dict:
    """Archive every finished run of ``runs`` that ``archive`` lacks; each is verified first and written whole or
    not at all. Returns counts and sizes."""
    runs, archive = Path(runs), Path(archive)
    if not runs.is_dir():
        raise KSLError(f"no runs folder at {runs}", "pass the folder that holds the run directories (--runs-dir)")
    archive.mkdir(parents=True, exist_ok=True)
    packed, kept, dropped = 0, 0, 0
    for run in _finished(runs):
        if (archive / run.name).exists():
            continue
        verify(run)
        recorded = json.loads((run / MANIFEST).read_text())["sha256"]
        gone = dict(left_out(run))   # an archived run restored, then archived again, stays as it was
        with atomic_dir(archive / run.name) as work:
            for f in sorted(p for p in run.rglob("*") if p.is_file()):
                rel = f.relative_to(run).as_posix()
                if rel == LEFT_OUT:
                    continue
                if _weights(run, rel, recorded) and f.stat().st_size > max_mib * 2**20:
                    gone[rel] = recorded[rel]
                    dropped += f.stat().st_size
                    continue
                (work / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(f, work / rel)
                kept += f.stat().st_size
            if gone:
                write_json(work / LEFT_OUT, {"max_mib": max_mib, "sha256": dict(sorted(gone.items()))})
        packed += 1
    return {"packed": packed, "kept_mib": round(kept / 2**20, 1), "left_out_mib": round(dropped / 2**20, 1)}


def restore(archive: str | os.PathLike, runs: str | os.PathLike) -> dict:
    """Copy the archived runs that ``runs`` lacks into it (each checked against its manifest, less what it was
    archived without)."""
    archive, runs = Path(archive), Path(runs)
    if not archive.is_dir():
        return {"restored": 0}
    runs.mkdir(parents=True, exist_ok=True)
    restored = 0
    for run in _finished(archive):
        if (runs / run.name).exists():
            continue
        verify(run)
        with atomic_dir(runs / run.name) as work:
            shutil.copytree(run, work, dirs_exist_ok=True)
        restored += 1
    return {"restored": restored}


@rebuilt_by
def rebuild(path: str | os.PathLike, progress: bool = True) -> None:
    """Compute again, under its own name, a tune run restored without its weights. Its recorded parameters give
    the config, which must name the same run: else nothing is touched. The archived copy stays aside until the
    new run has finished."""
    path = Path(path)
    params = json.loads((path / "params.json").read_text())["params"]
    kw = {f.name: params[f.name] for f in fields(TuneConfig) if f.name in params}
    for name in ("ticket", "snapshots"):   # JSON gave lists
        if kw.get(name) is not None:
            kw[name] = tuple(kw[name])
    cfg, bitext = check(TuneConfig(**kw))
    if f"tune-{param_hash(run_params(cfg, bitext))}" != path.name:
        raise KSLError(f"{path.name} cannot be computed again from its parameters (they name another run)",
                       f"delete {path} and rerun the command that made it")
    print(f"{path.name} was restored without {', '.join(sorted(left_out(path)))}: computing it again", flush=True)
    aside = path.with_name(f".{path.name}-archived")
    os.rename(path, aside)
    try:
        tune(cfg, runs_dir=path.parent, progress=progress)
    finally:
        if path.exists():
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.rename(aside, path)

"""Training state on disk: checkpoints of what trains (with the optimizer and schedule) that an interrupted
``tune`` resumes from, snapshots of the embedding for budget sweeps, and signals deferred to a step boundary
so that Ctrl-C or SIGTERM leaves a checkpoint rather than a torn one."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from pathlib import Path

import torch

from . import models
from .errors import KSLError, disk_full, no_space


@contextlib.contextmanager
def deferred_signals():
    """Hold SIGINT / SIGTERM until the current optimizer step ends, so the loop can checkpoint exactly
    there (the list it yields fills with the signals received); a second Ctrl-C stops at once."""
    pending: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield pending   # only the main thread may own signal handlers (e.g. a loop started from a worker)
        return

    def hold(signum, frame):
        if pending and signum == signal.SIGINT:
            raise KeyboardInterrupt
        pending.append(signum)

    previous = {s: signal.signal(s, hold) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield pending
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def save(work: Path, params, opt, sched, step: int) -> None:
    from safetensors.torch import save_file

    ck = work / "ckpt.partial"
    try:
        ck.mkdir(exist_ok=True)
        save_file({f"p{i}": p.detach().float().contiguous() for i, p in enumerate(params)}, ck / "params.safetensors")
        torch.save({"opt": opt.state_dict(), "sched": sched.state_dict(), "step": step}, ck / "state.pt")
        for path in (ck / "params.safetensors", ck / "state.pt", ck):   # on disk before it replaces the last one
            _fsync(path)
    except BaseException as e:
        shutil.rmtree(ck, ignore_errors=True)   # never a half-written checkpoint beside the last good one
        if not isinstance(e, KeyboardInterrupt) and no_space(e, work):
            raise disk_full(work.parent) from None
        raise
    final = work / "ckpt"
    if final.exists():
        shutil.rmtree(final)
    ck.rename(final)
    _fsync(work)   # the rename itself: a power cut must leave the old checkpoint or the new one, not neither


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def snapshot(work: Path, lm: models.LoadedModel, step: int) -> None:
    """The trained rows' delta after ``step`` steps (``snapshots/step-N.safetensors``: ids, delta)."""
    from safetensors.torch import save_file

    emb = lm.model.get_input_embeddings()
    (work / "snapshots").mkdir(exist_ok=True)
    tmp = work / "snapshots" / f".step-{step}.safetensors"
    save_file({"ids": emb.ids.cpu().contiguous(), "delta": emb.delta.detach().cpu().contiguous()}, tmp)
    tmp.rename(work / "snapshots" / f"step-{step}.safetensors")


def resume(work: Path, params, opt, sched, main: bool) -> int:
    from safetensors.torch import load_file

    ck = work / "ckpt"
    if not (ck / "state.pt").exists():
        if main:
            (work / "train_log.jsonl").unlink(missing_ok=True)
        return 0
    try:
        saved = load_file(ck / "params.safetensors")
        with torch.no_grad():
            for i, p in enumerate(params):
                p.copy_(saved[f"p{i}"])
        state = torch.load(ck / "state.pt", weights_only=True)
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
    except Exception as e:   # truncated or foreign: every rerun would fail the same way until it is removed
        raise KSLError(f"the checkpoint {ck} of the unfinished run {work.name} is damaged ({type(e).__name__})",
                       f"delete {ck} to restart the run from step 0 (or {work} to start over), then rerun") from None
    # Keep the log consistent with the checkpoint: drop entries written after it.
    logf = work / "train_log.jsonl"
    if main and logf.exists():
        lines = [ln for ln in logf.read_text().splitlines() if ln.strip()]
        logf.write_text("".join(ln + "\n" for ln in lines[: state["step"]]))
    return state["step"]

"""Runs that cannot lie: one writer per run (a lock every run kind takes), and finished runs verified against
the sha256 of every file before anything reuses or reads them."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kslottery.method.errors import KSLError
from kslottery.method.memory import release_memory
from kslottery.method.runs import LOCKS, MANIFEST, Run, verify

TINY = "tiny:smollm2-135m"
# One tiny tune run: 12 steps, a checkpoint every 5, long enough for a second process to arrive mid-run.
TUNE = ["tune", "--model", TINY, "--quiet", "--limit", "48", "--batch-size", "4", "--max-steps", "12",
        "--checkpoint-every", "5"]


def kslottery_bg(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "kslottery.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def half_written(root: Path) -> list[str]:
    """What an interrupted or doubled writer leaves: .partial folders, temporary files, stale owner records."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.endswith((".partial", ".tmp", ".pid")) or p.name.startswith(".tune-"))


def wait_for(cond, timeout=240):
    t0 = time.time()
    while not cond():
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.2)


# A second process asking for the run the first is computing: (extra arguments or environment, exit code,
# what its output must say; {pid} is the first process).
SECOND = [
    (["--no-wait"], {}, 2, "error: run {run} is being computed by process {pid}"),
    ([], {"KSL_NO_WAIT": "1"}, 2, "error: run {run} is being computed by process {pid}"),
    ([], {}, 0, "(reused)"),
]


@pytest.mark.slow
def test_two_processes_on_one_run_never_write_it_twice(tmp_path):
    runs = tmp_path / "runs"
    first = kslottery_bg(*TUNE, "--runs-dir", str(runs))
    # the first process holds the lock once its owner record exists (before it loads the model); it is paused
    # there (SIGSTOP) while the others arrive, so that none of them can find the run already finished
    wait_for(lambda: any((runs / LOCKS).glob("*.pid")) if (runs / LOCKS).exists() else False)
    run = next((runs / LOCKS).glob("*.pid")).stem
    os.kill(first.pid, signal.SIGSTOP)
    try:
        seconds = [kslottery_bg(*TUNE, *extra, "--runs-dir", str(runs), env=env) for extra, env, _, _ in SECOND]
        results = {}
        for p, (_, _, code, _) in zip(seconds, SECOND):
            if code == 2:   # refused at once, while the first holds the run
                results[p] = p.communicate(timeout=300)
            else:           # waiting: it says so, then blocks until the first finishes
                line = ""
                while "waiting for" not in line:
                    line = p.stderr.readline()
                    assert line, "the waiting process exited without waiting"
                results[p] = line
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out1, err1 = first.communicate(timeout=600)
    assert first.returncode == 0, err1[-2000:]
    for p, (_, _, code, says) in zip(seconds, SECOND):
        if code == 2:
            out, err = results[p]
        else:
            out, rest = p.communicate(timeout=600)
            err = results[p] + rest
        assert p.returncode == code, err[-2000:]
        text = says.format(run=run, pid=first.pid)
        if code == 2:
            assert err.startswith(text) and err.count("\n") == 1 and "; " in err, err
        else:
            assert text in out and f"waiting for process {first.pid}" in err, (out, err)
    steps = [json.loads(line)["step"] for line in (runs / run / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))   # each step once: one writer
    assert half_written(runs) == []


def test_the_lock_is_taken_and_released_in_process(tmp_path):
    run = Run("probe", {"x": 1}, tmp_path)
    assert run.claim() and run.claim()   # the same process asking again re-enters, it does not wait on itself
    assert (tmp_path / LOCKS / f"{run.name}.pid").read_text().startswith(str(os.getpid()))
    run.start()
    run.finish({"ok": True})
    assert not (tmp_path / LOCKS / f"{run.name}.pid").exists()
    assert not Run("probe", {"x": 1}, tmp_path).claim()   # finished: reuse
    assert half_written(tmp_path) == []


@pytest.fixture(scope="module")
def finished(tmp_path_factory, flores_dir):
    """A finished embed-mode tune run of the tiny model, in a runs folder of its own."""
    from kslottery.method.tuning import TuneConfig, tune

    root = tmp_path_factory.mktemp("finished")
    rec = tune(TuneConfig(model=TINY, limit=8, batch_size=4, lr=1e-2), runs_dir=root, progress=False)
    return Path(rec["path"])


def truncate(path: Path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def flip(path: Path):
    data = bytearray(path.read_bytes())
    data[-2] ^= 1
    path.write_bytes(bytes(data))


# (how the run is damaged, the file, what the error says)
DAMAGE = [
    (truncate, "rows.safetensors", "rows.safetensors does not match the sha256 recorded when the run finished"),
    (flip, "record.json", "record.json does not match the sha256 recorded when the run finished"),
    (Path.unlink, "rows.safetensors", "rows.safetensors is missing"),
    (truncate, MANIFEST, f"its {MANIFEST} cannot be read"),
]
# Every reader of a tune run: rerunning it (the reuse path), ks, evaluate --tuned, transfer.
READERS = {
    "tune": ["tune", "--model", TINY, "--quiet", "--limit", "8", "--batch-size", "4", "--lr", "1e-2"],
    "ks": ["ks", "--tuned", "{run}"],
    "evaluate": ["evaluate", "--model", TINY, "--quiet", "--limit", "2", "--tuned", "{run}"],
    "transfer": ["transfer", "--tuned", "{run}", "--ticket", "13,263"],
}


@pytest.mark.parametrize("damage,file,says", DAMAGE, ids=[f"{d.__name__}-{f}" for d, f, _ in DAMAGE])
@pytest.mark.parametrize("reader", list(READERS))
def test_a_damaged_run_is_never_used(reader, damage, file, says, finished, tmp_path, capsys):
    from kslottery.cli import main

    runs = tmp_path / "runs"
    shutil.copytree(finished.parent, runs)
    run = runs / finished.name
    damage(run / file)
    before = sorted(p.name for p in runs.iterdir())
    code = main([a.format(run=run) for a in READERS[reader]] + ["--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert err == f"error: run {run.name} is damaged: {says}; delete {run} and run the same command again to " \
                  "recompute it\n"
    assert sorted(p.name for p in runs.iterdir()) == before and half_written(runs) == []


def test_a_sound_run_verifies_and_one_without_its_manifest_is_refused(finished, tmp_path):
    """Issue 44: a deleted or emptied manifest, or a file it does not list, no longer lets a tampered run through
    (runs from before manifests are recomputed once)."""
    from kslottery.method.tuned import TunedRun

    verify(finished)
    recorded = json.loads((finished / MANIFEST).read_text())["sha256"]
    assert {"rows.safetensors", "record.json", "params.json", "train_log.jsonl"} <= set(recorded)
    assert len(TunedRun(finished).rows()["ids"]) > 0
    old = tmp_path / finished.name
    shutil.copytree(finished, old)
    (old / MANIFEST).unlink()
    with pytest.raises(KSLError, match=f"run {old.name} is damaged: it has no MANIFEST.json; delete {old} and run"):
        TunedRun(old)
    (old / MANIFEST).write_text('{"sha256": {}}')
    with pytest.raises(KSLError, match="is damaged: params.json is not in its MANIFEST.json"):
        TunedRun(old)
    shutil.rmtree(old)
    shutil.copytree(finished, old)
    (old / "extra.safetensors").write_bytes(b"x")
    with pytest.raises(KSLError, match="is damaged: extra.safetensors is not in its MANIFEST.json"):
        TunedRun(old)
    damaged = tmp_path / "again" / finished.name
    shutil.copytree(finished, damaged)
    truncate(damaged / "train_log.jsonl")   # any file, not only the ones a reader loads
    with pytest.raises(KSLError, match="train_log.jsonl does not match"):
        TunedRun(damaged)


def test_a_failure_after_the_claim_lets_go_of_the_lock(tmp_path, monkeypatch, flores_dir):
    """A notebook kernel whose tune failed after taking the lock (here: the model does not load) keeps running;
    it must not keep another process waiting on that run."""
    from kslottery.method import models, tuning

    def broken(*args, **kwargs):
        raise RuntimeError("the model did not load")

    monkeypatch.setattr(models, "load", broken)
    with pytest.raises(RuntimeError):
        tuning.tune(tuning.TuneConfig(model=TINY, limit=4, batch_size=2), runs_dir=tmp_path, progress=False)
    (lock,) = (tmp_path / LOCKS).glob("*.lock")
    other = subprocess.run([sys.executable, "-c", f"import filelock; filelock.FileLock({str(lock)!r}).acquire(timeout=0)"],
                           capture_output=True, text=True)
    assert other.returncode == 0, other.stderr[-500:]   # free: another process can take it at once
    assert half_written(tmp_path) == []


def test_memory_freed_by_a_run_goes_back_before_the_next_starts():
    # glibc keeps freed heap pages resident: a kernel that computes run after run grew past the profile's 12 GiB
    if not sys.platform.startswith("linux"):
        pytest.skip("malloc_trim is glibc's")

    def resident_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    keep, junk = [], []
    for i in range(4000):   # 250 MiB in 64 KiB blocks (below mmap's threshold: on the heap), one in 20 kept
        (keep if i % 20 == 0 else junk).append(bytearray(64 * 1024))
    del junk
    before = resident_mib()
    assert release_memory()
    assert before - resident_mib() > 100


def test_a_run_records_its_own_peak_memory_not_its_processs(tmp_path):
    # a notebook kernel computes run after run: each record once carried the largest of them all
    import resource

    if not sys.platform.startswith("linux"):
        pytest.skip("the peak is reset through /proc")
    big = bytearray(600 * 2**20)
    big[::4096] = b"x" * len(big[::4096])   # touched: resident
    del big
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    run = Run("probe", {"peak": 1}, tmp_path)
    run.claim()
    run.start()
    record = json.loads((run.finish({"ok": True}) / "record.json").read_text())
    assert record["peak_rss_of"] == "this run"
    assert record["peak_rss_gib"] < before - 0.4


def test_a_run_resumed_in_a_later_sitting_counts_every_sitting(tmp_path, monkeypatch):
    import json
    import os

    from kslottery.method import runs as runs_mod

    # the first sitting starts at a recorded time, writes a checkpoint 40 s in, and is killed
    monkeypatch.setattr(runs_mod, "git_commit", lambda: "aaaa")
    first = Run("probe", {"x": 2}, tmp_path)
    assert first.claim()
    work = first.start()
    params = json.loads((work / "params.json").read_text())
    began = runs_mod.sittings.datetime.strptime(params["started"], runs_mod.sittings.FORMAT).timestamp()
    (work / "checkpoint.bin").write_bytes(b"x")
    os.utime(work / "checkpoint.bin", (began + 40, began + 40))
    first.release()
    # the second, at another commit, resumes the same folder and finishes
    monkeypatch.setattr(runs_mod, "git_commit", lambda: "bbbb")
    second = Run("probe", {"x": 2}, tmp_path)
    assert second.claim()
    second.start()
    path = second.finish({"ok": True})
    params, record = (json.loads((path / f).read_text()) for f in ("params.json", "record.json"))
    assert [s["git_commit"] for s in params["sittings"]] == ["aaaa", "bbbb"] and params["git_commit"] == "bbbb"
    assert params["sittings"][0]["wall_s"] == 40.0 and params["sittings"][1]["wall_s"] < 5
    assert 40.0 <= record["wall_s"] < 45   # the run's cost is both sittings', not the last one's
    # a fresh run has one sitting, and the provenance readers see every commit a run was computed at
    assert runs_mod.sittings.of(params)[0]["git_commit"] == "aaaa"
    assert runs_mod.sittings.of({"git_commit": "cccc"})[0]["git_commit"] == "cccc"


def test_a_run_resumed_before_sittings_were_kept_is_costed_by_its_step_log(tmp_path):
    import json

    from kslottery.method import sittings

    # as tune-81211f4d9e4a: resumed at step 50, its record timing the last sitting only (126 s of 2,776 s of steps)
    (tmp_path / "train_log.jsonl").write_text("".join(json.dumps({"step": i, "step_s": 43.375}) + "\n"
                                                      for i in range(1, 65)))
    old = {"git_commit": "aaaa"}
    assert sittings.wall_s(tmp_path, old, {"wall_s": 126.0}) == 2776.0
    assert sittings.wall_s(tmp_path, old, {"wall_s": 3000.0}) == 3000.0    # a whole run keeps its own clock
    assert sittings.wall_s(tmp_path, {**old, "sittings": []}, {"wall_s": 126.0}) == 126.0   # kept: it already counts

"""Where a runs folder stands (kslottery.method.status, ``kslottery status``)."""

import json
import os
import subprocess
import sys

import pytest

from kslottery.cli import main
from kslottery.method import status, tuning


@pytest.mark.parametrize("kw", [dict(limit=16, batch_size=4), dict(limit=16, batch_size=4, max_steps=2),
                                dict(limit=12, batch_size=4, epochs=0.5), dict(limit=10, batch_size=4, epochs=2.0)])
def test_planned_steps_are_the_steps_a_tuning_takes(kw, flores_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path))
    rec = tuning.tune(tuning.TuneConfig(model="tiny:smollm2-135m", lr=1e-2, **kw), progress=False)
    params = json.loads((tmp_path / rec["run"] / "params.json").read_text())["params"]
    assert status.tune_steps(params) == rec["train"]["steps"]


def _partial(root, name, steps_logged, last_line_cut=False, pid=None):
    folder = root / f"{name}.partial"
    folder.mkdir(parents=True)
    (folder / "params.json").write_text(json.dumps({"kind": "tune", "params": {
        "mode": "embed", "lr": 0.001, "seed": 1, "limit": 512, "batch_size": 8, "epochs": 1.0, "max_steps": None}}))
    lines = [json.dumps({"step": s, "loss": 2.0}) for s in range(1, steps_logged + 1)]
    if last_line_cut:
        lines.append('{"step": 9')
    (folder / "train_log.jsonl").write_text("\n".join(lines) + "\n")
    if pid is not None:
        (root / ".locks").mkdir(exist_ok=True)
        (root / ".locks" / f"{name}.pid").write_text(f"{pid} on {os.uname().nodename}\n")


def test_status_counts_finished_runs_and_says_how_far_each_unfinished_one_got(tmp_path):
    done = tmp_path / "eval-aaaaaaaaaaaa"
    done.mkdir()
    (done / "DONE").write_text("x\n")
    (done / "record.json").write_text(json.dumps({"wall_s": 1800.0}))
    _partial(tmp_path, "tune-bbbbbbbbbbbb", 8, last_line_cut=True, pid=os.getpid())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _partial(tmp_path, "tune-cccccccccccc", 0, pid=int(dead.stdout))   # a killed run leaves its pid file behind
    s = status.status(tmp_path)
    assert s["finished"] == {"eval": {"runs": 1, "hours": 0.5}}
    live, stale = s["unfinished"]
    assert (live["step"], live["steps"], live["lr"], live["seed"]) == (8, 64, 0.001, 1)   # the cut line is not a step
    assert live["computing"] == f"process {os.getpid()}"
    assert (stale["step"], stale["computing"]) == (0, None)
    text = status.describe(s)
    assert "finished: 1 runs (eval 1), 0.5 h of recorded compute" in text
    assert "tune-bbbbbbbbbbbb  mode embed lr 0.001 seed 1  step 8/64" in text
    assert "tune-cccccccccccc" in text and "nobody computing it (rerun to resume)" in text


def test_status_of_a_missing_folder_is_one_line_naming_the_fix(tmp_path, capsys):
    assert main(["status", "--runs-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no runs folder at" in err and "KSL_RUNS" in err


def _finished(root, kind, params, wall_s) -> str:
    """A finished run of ``kind`` with these parameters that recorded ``wall_s`` seconds: its name."""
    import time

    from kslottery.method.runs import Run

    run = Run(kind, params, root)
    run.start()
    run._t0 = time.time() - wall_s
    run.complete({})
    return run.name


def test_status_against_a_profiles_plan_counts_only_the_designs_runs(tmp_path, capsys):
    tiny, pair = "tiny:smollm2-135m", "eng_Latn-cat_Latn"
    tune = {"model": tiny, "pair": pair, "limit": 16, "batch_size": 4, "epochs": 1.0, "max_steps": None}
    _finished(tmp_path, "tune", tune, 8.0)                                     # 4 steps of the design's recipe
    _finished(tmp_path, "tune", {**tune, "limit": 64}, 99.0)                   # another chapter's training pairs
    _finished(tmp_path, "eval", {"model": tiny, "pair": pair, "split": "devtest", "offset": 4, "limit": 4}, 2.0)
    _finished(tmp_path, "eval", {"model": tiny, "pair": pair, "split": "devtest", "offset": 0, "limit": 4}, 99.0)
    _finished(tmp_path, "eval", {"model": tiny, "pair": pair, "split": "dev", "offset": 16, "limit": 3}, 1.5)   # selection
    _finished(tmp_path, "eval", {"model": tiny, "pair": pair, "split": "dev", "offset": 0, "limit": 3}, 99.0)  # trained on
    _finished(tmp_path, "eval", {"model": tiny, "pair": "eng_Latn-deu_Latn", "split": "devtest", "offset": 4,
                                 "limit": 4}, 99.0)
    assert main(["status", "--runs-dir", str(tmp_path), "--profile", "smoke", "--json"]) == 0
    plan = {r["model"]: r for r in json.loads(capsys.readouterr().out)["plan"]}
    smol, gemma = plan[tiny], plan["tiny:gemma3-270m"]
    assert (smol["tuning steps"], smol["s a step"], smol["scored sentences"], smol["s a sentence"]) == (4, 2.0, 7, 0.5)
    assert smol["of steps"] > 4 and smol["of sentences"] > 7
    left = ((smol["of steps"] - 4) * 2.0 + (smol["of sentences"] - 7) * 0.5) / 3600
    assert smol["hours left"] == pytest.approx(left)
    assert (gemma["tuning steps"], gemma["s a step"], gemma["hours left"]) == (0, None, None)
    assert main(["status", "--runs-dir", str(tmp_path), "--profile", "smoke"]) == 0
    text = capsys.readouterr().out
    assert f"{tiny}: tuning steps 4/{smol['of steps']} (2.0 s a step), scored sentences 7/{smol['of sentences']} " \
           f"(0.5 s a sentence); left: about {left:.1f} h" in text
    assert "tiny:gemma3-270m: tuning steps 0/" in text and "no rate yet" in text

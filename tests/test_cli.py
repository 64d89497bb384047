"""The real ``kslottery`` command in a subprocess, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow   # builds/opens the book or runs the command in subprocesses

TINY = ["--model", "tiny:smollm2-135m", "--limit", "4", "--max-new-tokens", "4", "--quiet"]


def kslottery(*args, env=None):
    return subprocess.run([sys.executable, "-m", "kslottery.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


@pytest.mark.parametrize("verb", [[], ["evaluate"], ["models"], ["download-flores"]])
def test_help(verb):
    r = kslottery(*verb, "--help")
    assert r.returncode == 0 and "usage: kslottery" in r.stdout
    if verb == ["evaluate"]:
        assert "--stop-on-newline" in r.stdout and "--template TEMPLATE" in r.stdout


def test_evaluate_writes_a_run_and_reuses_it(runs_dir, flores_dir):
    first = kslottery("evaluate", *TINY, "--runs-dir", str(runs_dir))
    assert first.returncode == 0, first.stderr
    assert "first_line" in first.stdout and "EOS rate" in first.stdout and "tok:13a" in first.stdout
    (run,) = [p for p in runs_dir.iterdir() if p.name != ".locks"]   # .locks/: one lock file per run computed
    assert run.name.startswith("eval-") and sorted(p.name for p in run.iterdir()) == \
        ["DONE", "MANIFEST.json", "outputs.jsonl", "params.json", "record.json"]
    record = json.loads((run / "record.json").read_text())
    assert record["config"]["limit"] == 4 and record["data"]["n"] == 4
    assert set(record["scores"]) == {"whole", "first_line", "field_restart", "authors"}
    params = json.loads((run / "params.json").read_text())
    assert params["versions"]["transformers"] and params["params"]["data_sha256"] == record["data"]["sha256"]
    rows = [json.loads(line) for line in (run / "outputs.jsonl").read_text().splitlines()]
    assert [r["i"] for r in rows] == [0, 1, 2, 3] and all(r["hit_cap"] for r in rows)
    again = kslottery("evaluate", *TINY, "--runs-dir", str(runs_dir))
    assert again.returncode == 0 and "(reused)" in again.stdout
    assert len([p for p in runs_dir.iterdir() if p.name != ".locks"]) == 1


def test_interrupted_evaluation_resumes(runs_dir, flores_dir):
    from kslottery.method.evaluate import EvalConfig, evaluate
    from kslottery.method.runs import Run

    cfg = EvalConfig(model="tiny:smollm2-135m", limit=4, max_new_tokens=4, batch_size=2)
    full = evaluate(cfg, runs_dir=runs_dir / "a", progress=False)
    # Fake an interruption after one batch: keep the first two checkpointed rows in a .partial folder.
    from kslottery.method.data import load_flores
    from kslottery.method.evaluate import run_params
    run = Run("eval", run_params(cfg, load_flores(cfg.pair, cfg.split, limit=cfg.limit)), runs_dir / "b")
    run.work.mkdir(parents=True)
    with open(f"{full['path']}/outputs.jsonl") as f:
        rows = [json.loads(line) for line in f][:2]
    with open(run.work / "generations.partial.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps({k: r[k] for k in ("i", "text", "n_tokens", "stopped_eos", "stopped_newline",
                                                  "hit_cap")}) + "\n")
        f.write('{"i": 3, "te')   # a line cut mid-write
    resumed = evaluate(cfg, runs_dir=runs_dir / "b", progress=False)
    assert resumed["run"] == full["run"] and resumed["scores"] == full["scores"]
    assert not run.work.exists()


@pytest.mark.parametrize("args,env,match", [
    (["--pair", "eng_Latn-xxx_Latn"], {}, "unknown language code 'xxx_Latn'"),
    (["--template", "nope"], {}, "unknown prompt template 'nope'"),
    (["--model", "nope"], {}, "unknown model spec 'nope'"),
    ([], {"KSL_DATA_DIR": "/nonexistent"}, "data directory /nonexistent has no flores200/"),
    (["--num-beams", "4", "--drop-finished"], {}, "drop_finished applies to greedy decoding only"),
])
def test_bad_input_is_one_line_and_leaves_nothing(runs_dir, flores_dir, args, env, match):
    r = kslottery("evaluate", *TINY, *args, "--runs-dir", str(runs_dir), env=env)
    assert r.returncode == 2
    assert r.stderr.startswith("error: ") and match in r.stderr and r.stderr.count("\n") == 1
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_unwritable_runs_dir(tmp_path, flores_dir):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    r = kslottery("evaluate", *TINY, "--runs-dir", str(blocker / "runs"))
    assert r.returncode == 2 and "cannot write run directories under" in r.stderr and "--runs-dir" in r.stderr
    assert blocker.read_text() == "a file, not a folder"


def test_models_lists_presets():
    r = kslottery("models")
    assert r.returncode == 0 and "gemma3-270m" in r.stdout and "LlamaForCausalLM" in r.stdout


def test_drop_finished_is_its_own_run_with_the_same_scores(runs_dir, flores_dir):
    from dataclasses import replace

    from kslottery.method.data import load_flores
    from kslottery.method.evaluate import EvalConfig, evaluate, run_params

    # The real SmolLM2 stops at its first newline after a different number of tokens per sentence, so rows
    # really leave the batch at different steps (a tiny random model only ever hits the cap).
    cfg = EvalConfig(model="smollm2-135m", limit=4, max_new_tokens=40, batch_size=4, stop_on_newline=True)
    padded = evaluate(cfg, runs_dir=runs_dir, progress=False)
    dropped = evaluate(replace(cfg, drop_finished=True), runs_dir=runs_dir, progress=False)
    rows = [json.loads(line) for line in open(f"{padded['path']}/outputs.jsonl")]
    stopped = [r["n_tokens"] for r in rows if not r["hit_cap"]]
    assert stopped and len(set(r["n_tokens"] for r in rows)) > 1   # some rows finished before others
    assert padded["run"] != dropped["run"] and padded["scores"] == dropped["scores"]
    # runs made before the option existed keep their names: the default leaves it out of the hash
    assert "drop_finished" not in run_params(cfg, load_flores(cfg.pair, cfg.split, limit=cfg.limit))

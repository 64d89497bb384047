"""Bad input through the real ``kslottery`` command: exit 2, one line naming the problem and the fix, nothing
left in the runs directory; your own data in and out; SIGINT / SIGTERM during tuning checkpoints and resumes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TINY = "tiny:smollm2-135m"
FAST = ["--model", TINY, "--quiet"]


def kslottery(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "kslottery.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


@pytest.fixture(scope="module")
def embed_run(tmp_path_factory, flores_dir):
    """A finished embed-mode tune run of the tiny model (the donor for ks / transfer cases)."""
    from kslottery.method.tuning import TuneConfig, tune

    root = tmp_path_factory.mktemp("donor")
    rec = tune(TuneConfig(model=TINY, limit=8, batch_size=4, lr=1e-2), runs_dir=root, progress=False)
    return Path(rec["path"])


@pytest.fixture(scope="module")
def own_files(tmp_path_factory, flores_dir):
    """Six FLORES dev pairs written the three ways a user brings data: TSV, JSONL, two text files."""
    from kslottery.method.data import load_flores

    b = load_flores("eng_Latn-cat_Latn", "dev", limit=6)
    d = tmp_path_factory.mktemp("own")
    (d / "news.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in zip(b.src, b.tgt)))
    (d / "news.jsonl").write_text("".join(json.dumps({"src": s, "tgt": t}) + "\n" for s, t in zip(b.src, b.tgt)))
    (d / "news.en").write_text("\n".join(b.src) + "\n")
    (d / "news.ca").write_text("\n".join(b.tgt) + "\n")
    return d


# (verb and arguments, text the one-line error must contain); "{donor}" and "{own}" are filled in.
BAD = [
    (["tune", "--train-file", "/nonexistent/pairs.tsv"], "data file /nonexistent/pairs.tsv does not exist"),
    (["tune", "--train-file", "{own}/news.tsv", "--pair", "eng_Latn-xxx_Latn"], "no language name known for code 'xxx_Latn'"),
    (["tune", "--train-file", "{own}/news.tsv", "--source-file", "{own}/news.en", "--target-file", "{own}/news.ca"],
     "both --train-file and --source-file/--target-file given"),
    (["tune", "--source-file", "{own}/news.en"], "--source-file and --target-file go together"),
    (["tune", "--limit", "0"], "limit 0 is not a positive number of sentences"),
    (["tune", "--lr", "0"], "lr must be positive"),
    (["tune", "--batch-size", "0"], "batch_size must be at least 1"),
    (["tune", "--mode", "rows", "--ticket", "-1"], "ticket id -1 is negative"),
    (["tune", "--mode", "rows", "--ticket", "13,49152"], "ticket id 49152 is outside the vocabulary (49,152 rows)"),
    (["tune", "--mode", "rows", "--ticket", "a,b"], "ticket 'a,b' is neither a file nor comma-separated ids"),
    (["tune", "--mode", "rows", "--ticket", ","], "the ticket is empty"),
    (["tune", "--mode", "rows"], "rows mode needs a ticket"),
    (["evaluate", "--limit", "-5"], "limit -5 is not a positive number of sentences"),
    (["evaluate", "--limit", "0"], "limit 0 is not a positive number of sentences"),
    (["evaluate", "--test-file", "{own}/missing.tsv"], "data file {own}/missing.tsv does not exist"),
    (["evaluate", "--test-file", "{own}/news.tsv", "--pair", "eng_Latn-xxx_Latn"], "no language name known"),
    (["evaluate", "--tuned", "{own}"], "is not a finished tune or transfer run"),
    (["ks"], "no tune run given"),
    (["ks", "--tuned", "{donor}", "--alpha", "2"], "alpha 2.0 is not a significance level in (0, 1)"),
    (["ks", "--tuned", "{donor}", "--k", "0"], "k 0 is not a ticket size"),
    (["ks", "--tuned", "{donor}", "--method", "nope"], "unknown KS p-value method 'nope'"),
    (["transfer", "--ticket", "13"], "no tune run given"),
    (["transfer", "--tuned", "{donor}", "--ticket", "13,999999"], "ticket id 999999 is outside the vocabulary"),
    (["transfer", "--tuned", "{donor}", "--ticket", "-3"], "ticket id -3 is negative"),
    (["transfer", "--tuned", "{donor}", "--ticket", "x"], "ticket 'x' is neither a file nor comma-separated ids"),
    (["transfer", "--tuned", "{donor}", "--ticket", ""], "no ticket given"),
    (["transfer", "--tuned", "{donor}", "--ticket", "13", "--delta", "nope"], "unknown delta 'nope'"),
    (["models", "someone/some-model"], "the Hugging Face hub is not reachable from here"),
]


@pytest.mark.parametrize("args,match", BAD, ids=[" ".join(a) for a in (b[0] for b in BAD)])
def test_bad_input_is_one_line_before_any_work(args, match, runs_dir, embed_run, own_files, capsys, monkeypatch):
    """``cli.main`` in this process (one import of torch for all cases; test_cli runs the subprocess)."""
    import huggingface_hub.constants

    from kslottery.cli import main

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)   # what a user's machine has
    fill = {"donor": str(embed_run), "own": str(own_files)}
    args = [a.format(**fill) for a in args]
    extra = FAST if args[0] in ("tune", "evaluate") else []
    before = listing(embed_run)
    t0 = time.time()
    code = main([*args, *extra, "--runs-dir", str(runs_dir)] if args[0] != "models" else [*args, "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err[-2000:]
    assert err.startswith("error: ") and err.count("\n") == 1, err[-2000:]
    assert match.format(**fill) in err and "; " in err   # the problem; the fix
    assert listing(runs_dir) == [] and listing(embed_run) == before
    if args[0] == "models":   # no network: a quick answer, not huggingface_hub's 50 s of retries
        assert time.time() - t0 < 20


@pytest.mark.parametrize("verb", ["evaluate", "tune", "models"])
@pytest.mark.slow
def test_allow_pickle_is_offered_where_a_model_loads(verb):
    assert "--allow-pickle" in kslottery(verb, "--help").stdout


def test_quiet_silences_the_gguf_dequantization_bar():
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    from kslottery.method import models

    with models._gguf_progress(False):
        assert gguf_utils.tqdm(range(3)).disable
    assert not gguf_utils.tqdm(range(3), file=open(os.devnull, "w")).disable


@pytest.mark.slow
def test_evaluate_your_own_test_set(runs_dir, own_files):
    """The same six pairs as TSV, JSONL and two text files score identically; the split does not name the run."""
    from kslottery.method.data import load_flores

    common = [*FAST, "--max-new-tokens", "3", "--runs-dir", str(runs_dir)]
    tsv = kslottery("evaluate", "--test-file", str(own_files / "news.tsv"), *common)
    assert tsv.returncode == 0, tsv.stderr
    assert "news.tsv" in tsv.stdout.splitlines()[0]
    again = kslottery("evaluate", "--test-file", str(own_files / "news.tsv"), "--split", "dev", *common)
    assert again.returncode == 0 and "(reused)" in again.stdout
    jsonl = kslottery("evaluate", "--test-file", str(own_files / "news.jsonl"), *common)
    two = kslottery("evaluate", "--source-file", str(own_files / "news.en"), "--target-file",
                    str(own_files / "news.ca"), *common)
    records = [json.loads((runs_dir / name / "record.json").read_text())
               for name in sorted(p.name for p in runs_dir.iterdir() if p.name != ".locks")]
    assert jsonl.returncode == 0 and two.returncode == 0 and len(records) == 3
    flores = load_flores("eng_Latn-cat_Latn", "dev", limit=6)
    assert {r["data"]["sha256"] for r in records} == {flores.sha256}
    assert len({json.dumps(r["scores"], sort_keys=True) for r in records}) == 1
    params = json.loads((runs_dir / records[0]["run"] / "params.json").read_text())["params"]
    assert "split" not in params and "allow_pickle" not in params
    assert any(str(own_files / "news.tsv") in r["data"]["files"] for r in records)


@pytest.mark.slow
def test_tune_on_your_own_files_then_evaluate_the_tuned_model(runs_dir, own_files):
    r = kslottery("tune", "--source-file", str(own_files / "news.en"), "--target-file", str(own_files / "news.ca"),
                  "--batch-size", "2", *FAST, "--runs-dir", str(runs_dir))
    assert r.returncode == 0, r.stderr
    run = Path(r.stdout.strip().splitlines()[-1].split("run: ")[1])
    rec = json.loads((run / "record.json").read_text())
    assert rec["data"]["name"] == "news.en+news.ca" and rec["train"]["steps"] == 3
    e = kslottery("evaluate", "--test-file", str(own_files / "news.jsonl"), "--tuned", str(run), "--max-new-tokens",
                  "3", *FAST, "--runs-dir", str(runs_dir))
    assert e.returncode == 0, e.stderr


def test_split_leaves_the_name_only_when_a_file_is_given(own_files):
    from kslottery.method import data, evaluate, tuning

    file_cfg = tuning.TuneConfig(model=TINY, train_file=str(own_files / "news.tsv"))
    b = tuning.training_bitext(file_cfg)
    assert "split" not in tuning.run_params(file_cfg, b)
    flores_cfg = tuning.TuneConfig(model=TINY, limit=6)
    assert tuning.run_params(flores_cfg, tuning.training_bitext(flores_cfg))["split"] == "dev"
    e = evaluate.EvalConfig(model=TINY, limit=6)
    assert evaluate.run_params(e, data.load_flores(e.pair, e.split, 6))["split"] == "devtest"


SIGNAL_ARGS = ["tune", "--model", TINY, "--limit", "400", "--batch-size", "2", "--lr", "0.01", "--quiet"]
SIGNAL_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The tuning run both signals cut, run once without interruption: the rows the resumed runs must equal."""
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("whole")
    whole = kslottery(*SIGNAL_ARGS, "--runs-dir", str(root), env=SIGNAL_ENV)
    assert whole.returncode == 0, whole.stderr
    return load_file(next(root.glob("tune-*/rows.safetensors")))


@pytest.mark.slow
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_tuning_checkpoints_and_the_rerun_ends_bitwise_equal(tmp_path, flores_dir, signum, code,
                                                                              uninterrupted):
    from safetensors.torch import load_file

    args, env = SIGNAL_ARGS, SIGNAL_ENV
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "kslottery.cli", *args, "--runs-dir", str(cut)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
    deadline = time.time() + 120
    while time.time() < deadline:   # signal once a few steps are logged, long before the 200th
        logs = list(cut.glob("*.partial/train_log.jsonl"))
        if logs and len(logs[0].read_text().splitlines()) >= 5:
            break
        time.sleep(0.005)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert err.startswith("interrupted: ") and "checkpoint saved" in err
    (work,) = cut.glob("*.partial")
    state_step = int(err.split("after step ")[1].split(" ")[0])
    assert 5 <= state_step < 200 and (work / "ckpt" / "state.pt").exists()
    assert len((work / "train_log.jsonl").read_text().splitlines()) == state_step
    resumed = kslottery(*args, "--runs-dir", str(cut), env=env)
    assert resumed.returncode == 0, resumed.stderr
    a = uninterrupted
    b = load_file(next(cut.glob("tune-*/rows.safetensors")))
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    rec = json.loads(next(cut.glob("tune-*/record.json")).read_text())
    assert rec["train"]["resumed_at"] == state_step

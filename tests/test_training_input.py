"""Training input checked before training: targets cut away by --max-len are counted, reported and left out;
none left is one line (no ZeroDivisionError, no .partial run); a loss that rises over the run is a warning
naming the learning rate."""

import json

import pytest

TINY = "tiny:smollm2-135m"
FAST = ["--model", TINY, "--quiet"]


@pytest.fixture(scope="module")
def long_source(tmp_path_factory, flores_dir):
    """Three short FLORES pairs (61 to 74 tokens as tiny-model examples) and, first, one whose source alone is
    longer than --max-len 100 (eight sentences joined)."""
    from kslottery.method.data import load_flores

    b = load_flores("eng_Latn-cat_Latn", "dev", limit=8)
    d = tmp_path_factory.mktemp("long")
    pairs = [(" ".join(b.src), b.tgt[0]), *list(zip(b.src, b.tgt))[3:6]]
    (d / "pairs.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs))
    return d / "pairs.tsv"


# (arguments, exit code, what stderr says: the whole one-line error, or a warning in it)
CASES = [
    (["--limit", "4", "--batch-size", "1", "--max-len", "16"], 2,
     "error: none of the 4 training examples has a target token within --max-len 16 (the prompts alone fill it); "
     "raise --max-len (the shortest prompt is "),
    (["--train-file", "{long}", "--batch-size", "1", "--max-len", "100", "--max-steps", "4"], 0,
     "warning: --max-len 100 cut the target of "),
    (["--train-file", "{long}", "--batch-size", "1", "--max-len", "100", "--max-steps", "4"], 0,
     "(1 entirely: left out)"),
    (["--limit", "8", "--batch-size", "2", "--mode", "full", "--lr", "1", "--epochs", "3"], 0,
     "warning: the training loss rose over the run ("),
]


@pytest.mark.parametrize("args,code,says", CASES, ids=[" ".join(a) for a, _, _ in CASES])
def test_training_input_is_checked(args, code, says, long_source, runs_dir, capsys):
    from kslottery.cli import main

    rc = main(["tune", *[a.format(long=long_source) for a in args], *FAST, "--runs-dir", str(runs_dir)])
    err = capsys.readouterr().err
    assert rc == code, err[-2000:]
    assert says in err, err[-2000:]
    left = [p.name for p in runs_dir.iterdir() if not p.name.startswith(".locks")] if runs_dir.exists() else []
    assert not [n for n in left if n.endswith(".partial")]
    if code == 2:
        assert err.startswith("error: ") and err.count("\n") == 1 and left == []
    else:
        (run,) = left
        fit = json.loads((runs_dir / run / "record.json").read_text())["train"]["input"]
        if "--train-file" in args:
            assert fit == {"examples": 4, "no_target_left": 1, "target_truncated": 0}
        else:
            assert "at lr 1;" in err


def test_the_study_replays_the_examples_the_run_trained_on(long_source):
    """encode_all (what the budget and arms chapters replay) leaves out the same examples tune does."""
    from kslottery.method import models
    from kslottery.method.tuning import TuneConfig, check, encode_all

    cfg, bitext = check(TuneConfig(model=TINY, train_file=str(long_source), max_len=100))
    examples = encode_all(models.load_tokenizer(TINY), bitext, cfg)
    assert len(examples) == 3 and all(len(e["input_ids"]) <= 100 for e in examples)

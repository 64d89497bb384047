"""Tickets name their model, vocabulary, tokenizer and tune run; rows tuning and transfer refuse a ticket from
another model with one line, before any run is written; tickets from before those fields still load."""

import json
from pathlib import Path

import pytest

TINY = "tiny:smollm2-135m"


@pytest.fixture(scope="module")
def ks_run(tmp_path_factory, flores_dir):
    """A tiny embed-mode tune run and the KS tickets found on it."""
    from kslottery.method.discovery import DiscoveryConfig, discover
    from kslottery.method.tuning import TuneConfig, tune

    root = tmp_path_factory.mktemp("donor")
    tuned = tune(TuneConfig(model=TINY, limit=8, batch_size=4, lr=1e-2), runs_dir=root, progress=False)
    found = discover(DiscoveryConfig(tuned=tuned["path"], k=3), runs_dir=root)
    return Path(tuned["path"]), Path(found["path"]) / "ticket-topk-3.json"


def test_a_ticket_names_its_model_tokenizer_and_tune_run(ks_run):
    from kslottery.method import models
    from kslottery.method.ticket import tokenizer_fingerprint

    tune_path, ticket = ks_run
    t = json.loads(ticket.read_text())
    assert t["model"] == TINY and t["vocab_size"] == 49152 and t["tune_run"] == tune_path.name
    assert t["tokenizer_sha256"] == tokenizer_fingerprint(models.load_tokenizer(TINY))


def edited(ticket: Path, out: Path, **changes) -> Path:
    t = json.loads(ticket.read_text())
    for key, value in changes.items():
        if value is None:
            t.pop(key)   # a ticket written before the field existed
        else:
            t[key] = value
    out.write_text(json.dumps(t))
    return out


# (verb and arguments, edits to the ticket, exit code, what the error says)
CASES = [
    (["tune", "--mode", "rows"], {"model": "gemma3-270m"}, 2,
     "ticket foreign.json was discovered on 'gemma3-270m', not 'tiny:smollm2-135m'"),
    (["transfer"], {"model": "gemma3-270m"}, 2, "ticket foreign.json was discovered on 'gemma3-270m', not 'tiny:smollm2-135m'"),
    (["tune", "--mode", "rows"], {"vocab_size": 262144}, 2,
     "ticket foreign.json indexes a vocabulary of 262,144 rows, not 49,152"),
    (["transfer"], {"vocab_size": 262144}, 2, "ticket foreign.json indexes a vocabulary of 262,144 rows, not 49,152"),
    (["tune", "--mode", "rows"], {"tokenizer_sha256": "0" * 64}, 2,
     "ticket foreign.json was discovered with another tokenizer than 'tiny:smollm2-135m' has now"),
    (["transfer"], {"vocab_size": None, "tokenizer_sha256": None, "tune_run": None}, 0, ""),   # an older ticket
]


@pytest.mark.parametrize("args,changes,code,says", CASES, ids=[f"{a[0]}-{','.join(c)}" for a, c, _, _ in CASES])
def test_a_ticket_from_another_model_is_refused(args, changes, code, says, ks_run, tmp_path, capsys):
    from kslottery.cli import main

    tune_path, ticket = ks_run
    runs = tmp_path / "runs"
    foreign = edited(ticket, tmp_path / "foreign.json", **changes)
    extra = ["--model", TINY, "--quiet", "--limit", "4", "--batch-size", "2"] if args[0] == "tune" else \
        ["--tuned", str(tune_path)]
    rc = main([*args, "--ticket", str(foreign), *extra, "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert rc == code, err[-2000:]
    if code == 2:
        assert err.startswith(f"error: {says}; use a ticket that `kslottery ks` found on a tune run of {TINY}")
        assert err.count("\n") == 1
        assert not runs.exists() or [p.name for p in runs.iterdir() if not p.name.startswith(".locks")] == []
    else:
        assert [p.name for p in runs.iterdir() if p.name.startswith("transfer-")]

"""The budget sweep on the tiny model: snapshots are the shorter runs, and their tickets are KS tickets."""


import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from kslottery.method import archive, discovery, models, tuning
from kslottery.method.errors import KSLError
from kslottery.method.runs import left_out
from kslottery.method.ticket import ks_from_rows
from kslottery.study import budget

TINY = "tiny:smollm2-135m"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, flores_dir):
    root = tmp_path_factory.mktemp("sweep")
    base = dict(model=TINY, limit=16, batch_size=4, mode="embed")
    # One thread, as before the training loop became deterministic at any thread count (trainable.deterministic):
    # "a snapshot is the shorter run" is a bitwise claim.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    long = tuning.tune(tuning.TuneConfig(**base, lr=0.05, snapshots=(1, 2, 4)), runs_dir=root, progress=False)
    short = tuning.tune(tuning.TuneConfig(**base, lr=0.05, max_steps=2), runs_dir=root, progress=False)
    sgd = tuning.tune(tuning.TuneConfig(**base, lr=0.05, optimizer="sgd", snapshots=(4,)), runs_dir=root,
                      progress=False)
    torch.set_num_threads(threads)
    return root, long, short, sgd


def test_a_snapshot_is_the_shorter_run(sweep):
    _, long, short, _ = sweep
    snaps = budget.snapshot_rows(long["path"])
    assert sorted(snaps) == [1, 2, 4]
    final = load_file(f"{long['path']}/rows.safetensors")
    assert torch.equal(snaps[4]["after"], final["after"])           # the last snapshot is the run's result
    two = load_file(f"{short['path']}/rows.safetensors")            # a 2-step run: same batches, same updates
    where = {int(i): n for n, i in enumerate(snaps[2]["ids"].tolist())}
    idx = torch.tensor([where[int(i)] for i in two["ids"].tolist()])
    assert torch.equal(snaps[2]["after"][idx], two["after"])
    # rows the 2-step run left alone are exactly their before values in the snapshot
    rest = sorted(set(where) - set(two["ids"].tolist()))
    assert all(torch.equal(snaps[2]["after"][where[i]], snaps[2]["before"][where[i]]) for i in rest)


def test_snapshot_table_counts_the_tickets_discovery_writes(sweep, tmp_path):
    root, long, _, _ = sweep
    cfg = tuning.TuneConfig(model=TINY, limit=16, batch_size=4, mode="embed", lr=0.05, snapshots=(1, 2, 4))
    tok = models.load_tokenizer(TINY)
    examples = tuning.encode_all(tok, tuning.training_bitext(cfg), cfg)
    table = budget.snapshot_table(long["path"], examples, tuning.batch_order(len(examples), cfg))
    assert table["step"].tolist() == [1, 2, 4]
    assert (np.diff(table["rows_changed"]) >= 0).all()               # rows only join as batches reach them
    found = discovery.discover(discovery.DiscoveryConfig(tuned=long["path"]), runs_dir=tmp_path, tokenizer=tok)
    last = table.iloc[-1]
    for rule in ("alpha", "bonferroni", "bh"):
        assert last[f"{rule}_0.05"] == found["tickets"][f"{rule}-0.05"]["size"]
    assert last["rows_changed"] == found["n_changed"] and last["max_D"] == pytest.approx(found["max_statistic"])


def test_a_sweep_restored_without_its_snapshots_reads_its_ks_tests_from_their_run(sweep, tmp_path):
    root, long, _, _ = sweep
    cfg = tuning.TuneConfig(model=TINY, limit=16, batch_size=4, mode="embed", lr=0.05, snapshots=(1, 2, 4))
    examples = tuning.encode_all(models.load_tokenizer(TINY), tuning.training_bitext(cfg), cfg)
    batches = tuning.batch_order(len(examples), cfg)
    table = budget.snapshot_table(long["path"], examples, batches)
    stored = budget.snapshot_ks(long["path"])   # the snapks run the table read
    for step, rows in budget.snapshot_rows(long["path"]).items():
        fresh = ks_from_rows(rows, stored[step].statistic.numel())
        assert all(torch.equal(getattr(stored[step], f), getattr(fresh, f))
                   for f in ("statistic", "pvalue", "k", "changed"))
    archive.pack(root, tmp_path / "archive", max_mib=0.001)
    archive.restore(tmp_path / "archive", tmp_path / "runs")
    restored = tmp_path / "runs" / long["run"]
    assert "snapshots/step-1.safetensors" in left_out(restored)
    pd.testing.assert_frame_equal(budget.snapshot_table(restored, examples, batches), table)
    assert "snapshots/step-1.safetensors" in left_out(restored)   # read, not computed again
    counts, first = budget.row_exposure(examples, tuning.batch_order(len(examples), cfg))
    assert min(first.values()) == 1 and max(first.values()) <= 4
    head = examples[0]["input_ids"][0]           # the template's first token opens every example
    assert first[head] == 1 and counts[head] == len(examples)


def test_sgd_is_its_own_run_and_moves_rows_by_the_gradient(sweep):
    _, long, _, sgd = sweep
    assert sgd["run"] != long["run"] and sgd["config"]["optimizer"] == "sgd"
    a, s = load_file(f"{long['path']}/rows.safetensors"), load_file(f"{sgd['path']}/rows.safetensors")
    # Adam: every touched coordinate moves by about lr per step; SGD: by lr x gradient (tiny here)
    adam_move = (a["after"] - a["before"]).abs().mean()
    sgd_move = (s["after"] - s["before"]).abs().mean()
    assert adam_move > 10 * sgd_move


def test_smallest_budget_rule():
    t = pd.DataFrame({"lr": [1e-3, 1e-3, 5e-3, 5e-3, 2e-2], "step": [8, 64, 8, 16, 1],
                      "bh_0.05": [0, 14, 13, 40, 283], "rows_changed": [300, 900, 300, 500, 559]})
    assert budget.smallest_budget(t)["step"] == 8 and budget.smallest_budget(t)["lr"] == 5e-3   # 0.04 < 0.064
    assert budget.smallest_budget(t, at_least=100) is None
    # fair-v2.1: a ticket of more than half the changed rows leaves no room for its frequency-matched control
    assert budget.smallest_budget(t, at_most_share=1.0)["lr"] == 2e-2   # 0.02, the smallest, but 283 of 559 rows


def test_snapshots_need_a_row_mode():
    with pytest.raises(KSLError, match="snapshots are saved for embed and rows tuning only"):
        tuning.TuneConfig(mode="full", snapshots=(2,)).resolved()
    with pytest.raises(KSLError, match="unknown optimizer 'adam'"):
        tuning.TuneConfig(optimizer="adam").resolved()


def test_band_summary_says_where_a_rule_crosses_the_band():
    t = pd.DataFrame({"optimizer": "adamw", "lr": 5e-3, "step": [8, 16, 32, 64], "alpha_0.05": [9, 121, 956, 5444],
                      "bh_0.05": [1, 1, 5, 5099], "bonferroni_0.05": [1, 1, 1, 15]})
    s = budget.band_summary(t).set_index("rule")
    assert s.loc["bh", "in band"] == "none" and s.loc["bh", "last below"] == "5 at 32 steps"
    assert s.loc["bh", "first above"] == "5099 at 64 steps"
    assert s.loc["bonferroni", "in band"] == "64 steps: 15" and s.loc["alpha", "first above"] == "121 at 16 steps"

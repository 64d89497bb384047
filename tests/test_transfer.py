from collections import Counter

import pytest
import torch
from safetensors.torch import load_file

from kslottery.method import baselines, discovery, models, transfer, tuning
from kslottery.method.errors import KSLError
from kslottery.method.tuned import TunedRun


@pytest.fixture(scope="module")
def embed_run(tmp_path_factory, flores_dir):
    root = tmp_path_factory.mktemp("runs")
    rec = tuning.tune(tuning.TuneConfig(model="tiny:smollm2-135m", limit=16, batch_size=4, lr=1e-2, max_steps=3),
                      runs_dir=root, progress=False)
    return root, rec


def test_discovery_writes_tickets_for_every_rule(embed_run, tiny):
    root, rec = embed_run
    ks = discovery.discover(discovery.DiscoveryConfig(tuned=rec["path"], k=7), runs_dir=root, tokenizer=tiny.tokenizer)
    assert ks["n_rows"] == 49152 and ks["n_changed"] == rec["rows_changed"] and ks["d"] == 64
    assert set(ks["tickets"]) == {"alpha-0.05", "bonferroni-0.05", "bh-0.05", "topk-7"}
    t = ks["tickets"]["topk-7"]
    assert t["size"] == 7 and t["tokens"] == tiny.tokenizer.convert_ids_to_tokens(t["ids"])
    assert ks["tickets"]["bonferroni-0.05"]["size"] <= ks["tickets"]["bh-0.05"]["size"] <= ks["tickets"]["alpha-0.05"]["size"]
    again = discovery.discover(discovery.DiscoveryConfig(tuned=rec["path"], k=7), runs_dir=root)
    assert again["reused"] and again["run"] == ks["run"]


def test_transfer_pastes_only_ticket_rows(embed_run):
    root, rec = embed_run
    rows = load_file(f"{rec['path']}/rows.safetensors")
    ticket = rows["ids"][:5].tolist() + [48000]       # the last row was never touched by tuning
    out = transfer.transfer(transfer.TransferConfig(tuned=rec["path"], ticket=",".join(map(str, ticket))), runs_dir=root)
    assert out["rows_pasted"] == 5 and out["rows_not_changed_by_tuning"] == [48000]
    lm = models.load("tiny:smollm2-135m", progress=False)
    base = lm.model.get_input_embeddings().weight.detach().clone()
    TunedRun(out["path"]).apply(lm)
    w = lm.model.get_input_embeddings().weight.detach()
    assert (w != base).any(1).nonzero().flatten().tolist() == sorted(ticket[:5])
    assert torch.equal(w[rows["ids"][:5]], rows["after"][:5])


def test_norm_matched_and_scaled_deltas(embed_run):
    _, rec = embed_run
    rows = load_file(f"{rec['path']}/rows.safetensors")
    ids = rows["ids"][:4].tolist()
    learned = transfer.transferred_rows(rows, ids)
    d = learned["after"] - learned["before"]
    nm = transfer.transferred_rows(rows, ids, delta="norm-matched", seed=3)
    dn = nm["after"] - nm["before"]
    assert torch.allclose(dn.norm(dim=1), d.norm(dim=1), rtol=1e-4) and not torch.allclose(dn, d)
    half = transfer.transferred_rows(rows, ids, scale=0.5)
    assert torch.allclose(half["after"] - half["before"], 0.5 * d, atol=1e-7)
    with pytest.raises(KSLError, match="unknown delta"):
        transfer.transferred_rows(rows, ids, delta="bogus")


def test_reading_a_non_run_is_one_clear_error(tmp_path):
    with pytest.raises(KSLError, match="is not a finished tune or transfer run"):
        discovery.discover(discovery.DiscoveryConfig(tuned=str(tmp_path)))


COUNTS = Counter({10: 50, 11: 40, 12: 30, 13: 20, 14: 10, 15: 5, 16: 5, 17: 1})


def test_control_tickets():
    assert baselines.frequency_ticket(COUNTS, 3).ids == [10, 11, 12]
    a = baselines.random_ticket(COUNTS, 4, seed=1)
    assert a.ids == baselines.random_ticket(COUNTS, 4, seed=1).ids and set(a.ids) <= set(COUNTS)
    m = baselines.frequency_matched_ticket([10, 14], COUNTS, seed=0)
    assert len(m) == 2 and not set(m.ids) & {10, 14}
    assert baselines.single_row_ticket(13).ids == [13]
    with pytest.raises(KSLError, match="ticket size 9 is outside 1..8"):
        baselines.random_ticket(COUNTS, 9)


@pytest.mark.parametrize("reference,pool", [
    (10, {11, 12, 13, 14, 15}),    # rank 0: the next five ranks
    (13, {10, 11, 12, 14, 15}),    # rank 3: ranks 2, 4, 1, 5, then 0 before 6 (equal distance: smaller id)
    (17, {12, 13, 14, 15, 16}),    # the rarest: the five ranks above it
])
def test_frequency_matched_draws_from_the_five_nearest_ranks(reference, pool):
    # COUNTS ranks by frequency: 10 11 12 13 14 15 16 17 (15 and 16 tie at 5: smaller id first)
    picks = {baselines.frequency_matched_ticket([reference], COUNTS, seed=s).ids[0] for s in range(60)}
    assert picks == pool


import numpy as np
import pytest
import torch

from kslottery.method import ks, ticket
from kslottery.method.errors import KSLError


def result(D, p, changed=None):
    D, p = np.asarray(D, float), np.asarray(p, float)
    changed = np.ones(len(D), bool) if changed is None else np.asarray(changed)
    return ks.KSResult(statistic=torch.tensor(D), pvalue=torch.tensor(p), k=torch.tensor((D * 100).round()),
                       changed=torch.tensor(changed), d=100, method="auto")


# Six rows; row 5 did not change. Known answers computed by hand:
#   alpha 0.05         -> p < 0.05                    -> rows 0, 2, 3, 4   (ordered by D desc)
#   bonferroni (m = 5) -> p < 0.01                    -> rows 0, 2
#   BH (m = 5)         -> p_(i) <= i * 0.05 / 5: 0.001<=0.01, 0.004<=0.02, 0.03<=0.03, 0.049>0.04, 0.5>0.05
#                         -> the largest passing rank is 3 -> rows 0, 2, 3
D = [0.30, 0.05, 0.25, 0.20, 0.15, 0.00]
P = [0.001, 0.5, 0.004, 0.03, 0.049, 1.0]
CHANGED = [1, 1, 1, 1, 1, 0]


@pytest.mark.parametrize("rule,alpha,k,expected", [
    ("alpha", 0.05, None, [0, 2, 3, 4]),
    ("bonferroni", 0.05, None, [0, 2]),
    ("bh", 0.05, None, [0, 2, 3]),
    ("topk", None, 3, [0, 2, 3]),
    ("topk", None, 10, [0, 2, 3, 4, 1]),        # never more than the changed rows
    ("alpha", 0.0005, None, []),
])
def test_rules_on_known_inputs(rule, alpha, k, expected):
    got = ticket.select(result(D, P, CHANGED), rule, alpha=alpha or 0.05, k=k)
    assert got.tolist() == expected


def test_ties_break_by_p_then_id():
    r = result([0.2, 0.2, 0.2, 0.2], [0.01, 0.001, 0.01, 0.001])
    assert ticket.select(r, "topk", k=4).tolist() == [1, 3, 0, 2]


def test_ticket_record_roundtrip(tmp_path, tiny):
    r = result(D, P, CHANGED)
    t = ticket.make_ticket(r, "bh", alpha=0.05, tokenizer=tiny.tokenizer, model="tiny:smollm2-135m", data_sha256="ab")
    assert (t.ids, t.n_candidates, t.n_unchanged, t.n_rows) == ([0, 2, 3], 5, 1, 6)
    assert t.statistic == [0.30, 0.25, 0.20] and t.pvalue == [0.001, 0.004, 0.03]
    assert t.tokens == tiny.tokenizer.convert_ids_to_tokens([0, 2, 3])
    back = ticket.Ticket.load(t.save(tmp_path / "t.json"))
    assert back == t
    cfg = back.to_peft_config()
    assert list(cfg.token_indices) == [0, 2, 3]


def test_bad_selection_inputs(tmp_path, tiny):
    r = result(D, P, CHANGED)
    with pytest.raises(KSLError, match="unknown selection rule 'fdr'"):
        ticket.select(r, "fdr")
    with pytest.raises(KSLError, match="topk needs k >= 1"):
        ticket.select(r, "topk")
    with pytest.raises(KSLError, match=r"alpha must be in \(0, 1\)"):
        ticket.select(r, "alpha", alpha=5)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(KSLError, match="cannot read a ticket"):
        ticket.Ticket.load(tmp_path / "bad.json")


def test_a_discovery_record_reads_its_tickets_without_building_file_names(flores_dir, tmp_path):
    from kslottery.method.discovery import DiscoveryConfig, discover
    from kslottery.method.errors import KSLError
    from kslottery.method.ticket import Ticket
    from kslottery.method.tuning import TuneConfig, tune

    run = tune(TuneConfig(model="tiny:smollm2-135m", limit=8, batch_size=4, lr=1e-2), runs_dir=tmp_path,
               progress=False)
    for found in (discover(DiscoveryConfig(tuned=run["path"], k=5), runs_dir=tmp_path),
                  discover(DiscoveryConfig(tuned=run["path"], k=5), runs_dir=tmp_path)):   # computed, then reused
        t = found.ticket("topk-5")
        assert isinstance(t, Ticket) and t.ids == found.ids("topk-5") and len(t.ids) == 5
        assert found.ticket_file("topk-5").endswith("ticket-topk-5.json")
        with pytest.raises(KSLError, match="no ticket 'topk-18'"):
            found.ticket("topk-18")
    assert found["reused"]


@pytest.mark.parametrize("text, rule, level, key, label", [
    ("bh_0.05", "bh", 0.05, "bh-0.05", "Benjamini-Hochberg at 0.05"),
    ("bonferroni_0.01", "bonferroni", 0.01, "bonferroni-0.01", "Bonferroni at 0.01"),
    ("alpha_0.1", "alpha", 0.1, "alpha-0.1", "uncorrected at 0.1"),
    ("topk_18", "topk", 18, "topk-18", "top-k by D at 18"),
])
def test_a_rule_has_one_spelling_and_names_its_ticket(text, rule, level, key, label):
    r = ticket.Rule.parse(text)
    assert (r.rule, r.level, str(r), r.key, r.label) == (rule, level, text, key, label)


@pytest.mark.parametrize("text", ["bh-0.05", "bh_5", "fdr_0.05", "bh", "topk_0", "bh_x"])
def test_a_misspelt_rule_is_refused_with_the_spelling_to_use(text):
    with pytest.raises(KSLError, match=r"unknown ticket rule .*write RULE_LEVEL: alpha_0.05, bonferroni_0.05"):
        ticket.Rule.parse(text)

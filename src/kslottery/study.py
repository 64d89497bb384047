"""The study's experiments, one function per result the notebooks show.

Each function takes the notebook's parameters, runs (or reuses) hash-named runs through the library,
and returns a tidy ``pandas.DataFrame``; the notebooks only call these and plot.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path

import pandas as pd
from tqdm import TqdmWarning

# transformers' loading bars import tqdm.auto, which warns inside Jupyter without ipywidgets; and its 5.x
# deprecation notices (raised inside transformers and PEFT, not by this code) would drown the results.
warnings.filterwarnings("ignore", category=TqdmWarning)
warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|torch|peft)\.")

from . import data, evaluate, models, prompts, tuning
from .discovery import DiscoveryConfig, discover, read_tune_run
from .errors import KSLError
from .ticket import RULES, ks_from_rows, select


def check(notebook: str, **params) -> dict:
    """Validate a notebook's parameters (papermill only warns about unknown or mistyped ones)."""
    for name, value in params.items():
        if name in ("pairs", "templates", "seeds", "alphas", "sizes") and not isinstance(value, list):
            raise KSLError(f"{notebook}: parameter {name} must be a list, got {value!r}", "pass lists through YAML")
    for pair in params.get("pairs", []):
        for code in data.parse_pair(pair):
            prompts.language_name(code)
    for t in params.get("templates", []) + ([params["template"]] if "template" in params else []):
        prompts.get_template(t)
    for name in ("limit", "train_limit", "max_new_tokens", "batch_size", "k"):
        if name in params and params[name] is not None and (not isinstance(params[name], int) or params[name] < 1):
            raise KSLError(f"{notebook}: parameter {name} must be a positive integer, got {params[name]!r}",
                           "fix it in the profile YAML")
    return params


def _eval_rows(record: dict, **labels) -> list[dict]:
    rows = []
    for rule, s in record["scores"].items():
        rows.append({**labels, "rule": rule, "bleu": s["bleu"]["score"], "chrf++": s["chrf++"]["score"],
                     "spbleu": s["spbleu"]["score"], "mean_words": s["mean_words"],
                     "eos_rate": record["termination"]["eos_rate"], "cap_rate": record["termination"]["cap_rate"],
                     "run": record["run"]})
    return rows


def baseline_grid(model: str, pairs: list[str], templates: list[str], split: str = "devtest", limit: int = 200,
                  max_new_tokens: int = 128, batch_size: int = 32, progress: bool = True) -> pd.DataFrame:
    """The base model on every pair x template, scored under every extraction rule."""
    loaded = {}

    def lm():   # loaded only if some cell of the grid is not already a finished run
        if "lm" not in loaded:
            loaded["lm"] = models.load(model, progress=progress)
        return loaded["lm"]

    rows = []
    for pair in pairs:
        for template in templates:
            cfg = evaluate.EvalConfig(model=model, pair=pair, template=template, split=split, limit=limit,
                                      max_new_tokens=max_new_tokens, batch_size=batch_size)
            rows += _eval_rows(evaluate.evaluate(cfg, lm=lm, progress=progress), pair=pair, template=template)
    return pd.DataFrame(rows)


def tune_embed(model: str, pair: str, train_limit: int, lr: float, epochs: float, batch_size: int = 8,
               seed: int = 0, template: str = "explicit", max_steps: int | None = None,
               progress: bool = True) -> dict:
    cfg = tuning.TuneConfig(model=model, pair=pair, split="dev", limit=train_limit, template=template, mode="embed",
                            lr=lr, epochs=epochs, batch_size=batch_size, seed=seed, max_steps=max_steps)
    return tuning.tune(cfg, progress=progress)


def loss_curve(tune_path: str) -> pd.DataFrame:
    return pd.read_json(Path(tune_path) / "train_log.jsonl", lines=True)


def ks_rows(tune_path: str, template: str = "explicit") -> pd.DataFrame:
    """Every changed row: token, KS statistic and p, L2 shift, training frequency, in the prompt template."""
    from transformers import AutoTokenizer

    rec, rows = read_tune_run(tune_path)
    tok = AutoTokenizer.from_pretrained(rec["model"]["source"])
    res = ks_from_rows(rows, rec["model"]["vocab_size"])
    ids = rows["ids"].long()
    cfg = tuning.TuneConfig(**{k: v for k, v in rec["config"].items()})
    bitext = tuning.training_bitext(cfg)
    counts = Counter(t for e in tuning.encode_all(tok, bitext, cfg) for t in e["input_ids"])
    t = prompts.get_template(template)
    fixed = set(prompts.encode_prompt(tok, t.render("", bitext.src_lang, bitext.tgt_lang)))
    return pd.DataFrame({
        "id": ids.tolist(), "token": tok.convert_ids_to_tokens(ids.tolist()),
        "D": res.statistic[ids].tolist(), "p": res.pvalue[ids].tolist(),
        "l2_shift": (rows["after"] - rows["before"]).norm(dim=1).tolist(),
        "train_count": [counts.get(int(i), 0) for i in ids], "in_template": [int(i) in fixed for i in ids],
    }).sort_values(["D", "p", "id"], ascending=[False, True, True], ignore_index=True)


def ticket_sizes(tune_path: str, alphas: list[float]) -> pd.DataFrame:
    """Ticket size for every selection rule at every alpha."""
    rec, rows = read_tune_run(tune_path)
    res = ks_from_rows(rows, rec["model"]["vocab_size"])
    out = [{"rule": rule, "alpha": a, "size": len(select(res, rule, alpha=a))}
           for rule in RULES if rule != "topk" for a in alphas]
    return pd.DataFrame(out)


def tickets(tune_paths: dict[str, str], k: int, alpha: float = 0.05) -> dict[str, dict]:
    """KS discovery on each labelled tune run; returns the discovery records."""
    return {label: discover(DiscoveryConfig(tuned=path, alpha=alpha, k=k)) for label, path in tune_paths.items()}


def jaccard(sets: dict[str, list[int]]) -> pd.DataFrame:
    labels = list(sets)
    m = [[len(set(sets[a]) & set(sets[b])) / max(len(set(sets[a]) | set(sets[b])), 1) for b in labels] for a in labels]
    return pd.DataFrame(m, index=labels, columns=labels)


def certification(tune_path: str, sizes: list[int], random_draws: int, sigma: float, n0: int, n: int,
                  alpha: float, sentences: int, template: str = "explicit", split: str = "devtest",
                  progress: bool = True) -> pd.DataFrame:
    """Certified and empirical agreement between the embedding-tuned model and partial transfers of
    KS top-k tickets and random tickets of the same sizes, over the target positions of FLORES
    sentences (teacher-forced prompt + reference)."""
    import numpy as np
    import torch

    from . import baselines, certify
    from .transfer import transferred_rows

    rec, rows = read_tune_run(tune_path)
    lm = models.load(rec["model"]["spec"], untie_head=True, progress=progress)
    base = lm.model.get_input_embeddings().weight.detach().clone()
    tuned = base.clone()
    tuned[rows["ids"].long()] = rows["after"].to(base.dtype)
    with torch.no_grad():
        lm.model.get_input_embeddings().weight.copy_(tuned)
    partner = models.load(rec["model"]["spec"], untie_head=True, progress=False)

    bitext = data.load_flores(rec["config"]["pair"], split, limit=sentences)
    cfg = tuning.TuneConfig(**rec["config"])
    examples = [prompts.encode_example(lm.tokenizer, prompts.get_template(template), s, t,
                                       bitext.src_lang, bitext.tgt_lang) for s, t in zip(bitext.src, bitext.tgt)]
    seqs = [(torch.tensor(e["input_ids"]), np.array(e["labels"]) != prompts.IGNORE_INDEX) for e in examples]
    # The context at position t predicts token t+1: certify the positions whose next token is a target.
    certs = [certify.certify_sequence(lm.model, ids, sigma, n0, n, alpha) for ids, _ in seqs]
    masks = [np.append(target[1:], False) for _, target in seqs]

    ks = ks_from_rows(rows, rec["model"]["vocab_size"])
    counts = Counter(t for e in tuning.encode_all(lm.tokenizer, tuning.training_bitext(cfg), cfg) for t in e["input_ids"])
    tickets = [("all changed rows", rows["ids"].tolist())]
    for k in sizes:
        tickets.append((f"KS top-{k}", select(ks, "topk", k=k).tolist()))
        tickets += [(f"random-{k} #{d}", baselines.random_ticket(counts, k, seed=d).ids) for d in range(random_draws)]
    out = []
    for name, ids in tickets:
        moved = transferred_rows(rows, ids)
        partial = base.clone()
        partial[moved["ids"]] = moved["after"].to(base.dtype)
        with torch.no_grad():
            partner.model.get_input_embeddings().weight.copy_(partial)
        cert_ok, emp_ok, radius, gap = [], [], [], []
        for (ids_t, _), c, m in zip(seqs, certs, masks):
            norms = certify.perturbation_norms(ids_t, tuned, partial)
            cert_ok.append(certify.certified_agreement(c, norms)[m])
            emp_ok.append(certify.empirical_agreement(lm.model, partner.model, ids_t)[m])
            radius.append(c.radius[m])
            gap.append(norms[m])
        cert_ok, emp_ok = np.concatenate(cert_ok), np.concatenate(emp_ok)
        out.append({"ticket": name, "kind": name.split(" ")[0].split("-")[0], "size": len(ids),
                    "contexts": len(cert_ok), "certified_agreement": cert_ok.mean(),
                    "empirical_agreement": emp_ok.mean(),
                    "abstain_rate": float(np.mean(np.concatenate([c.abstain[m] for c, m in zip(certs, masks)]))),
                    "median_radius": float(np.median(np.concatenate(radius))),
                    "median_perturbation": float(np.median(np.concatenate(gap)))})
    return pd.DataFrame(out)


def _hyps(eval_record: dict, rule: str) -> list[str]:
    import json
    with open(Path(eval_record["path"]) / "outputs.jsonl") as f:
        return [json.loads(line)["hyp"][rule] for line in f]


def headline(model: str, pair: str, template: str, train_limit: int, epochs: float, batch_size: int,
             lr_embed: float, lr_full: float, lr_peft: float, lr_rows: float, k: int, seeds: list[int],
             random_draws: int, eval_limit: int, max_new_tokens: int, eval_batch_size: int = 32,
             arms: list[str] | None = None, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 18-token experiment: every arm trained (or transferred) on FLORES dev and scored on devtest.

    Returns (scores: one row per arm x seed x extraction rule, intervals: paired-bootstrap 95 % CIs of
    each arm's chrF++ gain over the base model under the whole-continuation and first-line rules)."""
    from . import baselines, metrics
    from .transfer import TransferConfig, transfer

    arms = arms or ["base", "embed", "full", "lora", "prefix", f"KS top-{k}", f"random-{k}", f"frequency-{k}",
                    f"transfer KS top-{k}"]
    common = dict(model=model, pair=pair, split="dev", limit=train_limit, template=template, epochs=epochs,
                  batch_size=batch_size)

    def tune(**kw):
        return tuning.tune(tuning.TuneConfig(**{**common, **kw}), progress=progress)

    def score(tuned=None):
        cfg = evaluate.EvalConfig(model=model, pair=pair, template=template, limit=eval_limit,
                                  max_new_tokens=max_new_tokens, batch_size=eval_batch_size, tuned=tuned)
        return evaluate.evaluate(cfg, progress=progress)

    embed = {s: tune(mode="embed", lr=lr_embed, seed=s) for s in seeds}
    found = discover(DiscoveryConfig(tuned=embed[seeds[0]]["path"], k=k))
    ticket_file = str(Path(found["path"]) / f"ticket-topk-{k}.json")
    counts = None
    plan = []   # (arm, seed, tune-or-transfer record or None)
    for arm in arms:
        if arm == "base":
            plan.append((arm, None, None))
        elif arm == "embed":
            plan += [(arm, s, embed[s]) for s in seeds]
        elif arm in ("full", "lora", "prefix"):
            lr = lr_full if arm == "full" else lr_peft
            plan += [(arm, s, tune(mode=arm, lr=lr, seed=s)) for s in seeds]
        elif arm == f"KS top-{k}":
            plan += [(arm, s, tune(mode="rows", ticket=ticket_file, lr=lr_rows, seed=s)) for s in seeds]
        elif arm in (f"random-{k}", f"frequency-{k}"):
            if counts is None:
                lm = models.load(model, progress=False)
                counts = Counter(t for e in tuning.encode_all(lm.tokenizer, tuning.training_bitext(
                    tuning.TuneConfig(**common)), tuning.TuneConfig(**common)) for t in e["input_ids"])
            if arm.startswith("random"):
                tickets_ = [(d, baselines.random_ticket(counts, k, seed=d)) for d in range(random_draws)]
            else:
                tickets_ = [(0, baselines.frequency_ticket(counts, k))]
            for d, t in tickets_:
                ids = ",".join(map(str, t.ids))
                plan.append((arm, d, tune(mode="rows", ticket=ids, lr=lr_rows, seed=seeds[0])))
        elif arm == f"transfer KS top-{k}":
            plan += [(arm, s, transfer(TransferConfig(tuned=embed[s]["path"], ticket=ticket_file))) for s in seeds]
        else:
            raise KSLError(f"unknown arm {arm!r}", f"use some of {', '.join(arms)}")
    rows, evals = [], {}
    for arm, seed, run in plan:
        rec = score(run["path"] if run else None)
        evals[(arm, seed)] = rec
        trainable = run.get("train", {}).get("n_trainable") if run else 0
        if run and "rows_pasted" in run:
            trainable = 0
        rows += [{**r, "seed": seed, "trainable_params": trainable} for r in _eval_rows(rec, arm=arm)]
    scores = pd.DataFrame(rows)
    base = evals[("base", None)] if ("base", None) in evals else None
    intervals = []
    if base is not None:
        refs = data.load_flores(pair, "devtest", limit=eval_limit).tgt
        for (arm, seed), rec in evals.items():
            if arm == "base":
                continue
            for rule in ("whole", "first_line"):
                ci = metrics.paired_bootstrap(_hyps(base, rule), _hyps(rec, rule), refs, data.parse_pair(pair)[1],
                                              metric="chrf++", n=1000, seed=0)
                intervals.append({"arm": arm, "seed": seed, "rule": rule, "gain": ci["delta"],
                                  "ci_low": ci["ci95"][0], "ci_high": ci["ci95"][1]})
    return scores, pd.DataFrame(intervals)

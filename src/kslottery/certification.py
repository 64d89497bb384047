"""The certification chapter's experiment: certified and empirical agreement between the embedding-tuned
model and partial transfers of KS and random tickets, per noise level (the certificate itself is
:mod:`kslottery.certify`).

    >>> table = measure("runs/tune-...", sizes=[1, 18], random_draws=3, sigmas=[0.01, 0.1], n0=16, n=64,
    ...                 alpha=0.01, sentences=6)                                            # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import data, models, prompts, tuning
from .tuned import TunedRun
from .ticket import ks_from_rows, select

CERT_TABLE_VERSION = 2


def measure(tune_path: str, sizes: list[int], random_draws: int, sigmas: list[float], n0: int, n: int,
                  alpha: float, sentences: int, gen_sentences: int = 0, gen_tokens: int = 64,
                  template: str = "explicit", split: str = "devtest", partial_lr: float | None = None,
                  progress: bool = True) -> pd.DataFrame:
    """Certified and empirical agreement between the embedding-tuned model and partial transfers of
    KS top-k tickets and random tickets of the same sizes, at every noise level in ``sigmas``.

    Contexts are the target positions of ``sentences`` FLORES sentences (teacher-forced prompt +
    reference). With ``gen_sentences`` > 0 each ticket also generates greedily for that many prompts:
    the share of generations identical to the tuned model's, and the chrF++ recovery
    (partial - base) / (tuned - base). With ``partial_lr``, every ticket is also *partially tuned* (its rows
    alone trained from the base model, same data and steps as the embedding run, at ``partial_lr``): the
    paper's object, whose perturbation E' - E_PT covers the ticket rows too (kind "... tuned").
    The table is stored in a hash-named ``cert-*`` run and reused."""

    from .runs import Run, write_json

    rec = TunedRun(tune_path).record
    params = dict(tuned=rec["run"], sizes=sizes, random_draws=random_draws, sigmas=sigmas, n0=n0, n=n, alpha=alpha,
                  sentences=sentences, gen_sentences=gen_sentences, gen_tokens=gen_tokens, template=template,
                  split=split)
    if partial_lr is not None:   # joins the name only when set: tables made before it keep theirs
        params["partial_lr"] = partial_lr
    # version 2 of the table added below_ceiling: tables of version 1 are not reused
    run = Run("cert", params, revisions={"table_version": CERT_TABLE_VERSION})
    if not run.done:
        work = run.start()
        table = _certification_table(tune_path, **{k: v for k, v in params.items() if k != "tuned"},
                                     work=work, progress=progress)
        write_json(work / "table.json", table.to_dict(orient="records"))
        run.finish({"config": params, "rows": len(table)})
    return pd.read_json(run.path / "table.json", orient="records")


def _certification_table(tune_path, sizes, random_draws, sigmas, n0, n, alpha, sentences, gen_sentences, gen_tokens,
                         template, split, progress, partial_lr=None, work: Path | None = None) -> pd.DataFrame:
    import numpy as np
    import torch
    from tqdm.auto import tqdm

    from . import baselines, certify, generate, metrics
    from .transfer import transferred_rows

    tuned_run = TunedRun(tune_path)
    rec, rows = tuned_run.record, tuned_run.rows()
    lm = models.load(rec["model"]["spec"], untie_head=True, progress=progress)
    tok = lm.tokenizer
    base = lm.model.get_input_embeddings().weight.detach().clone()
    tuned = base.clone()
    tuned[rows["ids"].long()] = rows["after"].to(base.dtype)
    with torch.no_grad():
        lm.model.get_input_embeddings().weight.copy_(tuned)
    partner = models.load(rec["model"]["spec"], untie_head=True, progress=False)
    if torch.cuda.is_available():   # the paper profile: both models on the GPU, the matrices stay on the CPU
        lm.model.cuda()
        partner.model.cuda()

    pair, tmpl = rec["config"]["pair"], prompts.get_template(template)
    bitext = data.load_flores(pair, split, limit=max(sentences, gen_sentences))
    examples = [prompts.encode_example(tok, tmpl, s, t, bitext.src_lang, bitext.tgt_lang)
                for s, t in zip(bitext.src[:sentences], bitext.tgt[:sentences])]
    seqs = [torch.tensor(e["input_ids"]) for e in examples]
    # The context at position t predicts token t+1: certify the positions whose next token is a target.
    masks = [np.append(np.array(e["labels"][1:]) != prompts.IGNORE_INDEX, False) for e in examples]
    lasts = [len(m) - int(np.argmax(m)) for m in masks]
    certs = {}
    for sigma in tqdm(sigmas, desc="certifying (sigma)", disable=not progress):
        # Each noise level is the expensive part: kept in the run's work folder, so an interrupted run resumes.
        saved = work / f"certs-sigma{sigma:g}.pt" if work is not None else None
        if saved is not None and saved.exists():
            certs[sigma] = [certify.Certificate(**c) for c in torch.load(saved, weights_only=False)]
            continue
        certs[sigma] = [certify.certify_sequence(lm.model, ids, sigma, n0, n, alpha, last=k) for ids, k in zip(seqs, lasts)]
        if saved is not None:
            torch.save([vars(c) for c in certs[sigma]], saved.with_suffix(".tmp"))
            saved.with_suffix(".tmp").replace(saved)
    masks = [m[len(m) - k:] for m, k in zip(masks, lasts)]

    cfg = tuning.TuneConfig(**rec["config"])
    counts = baselines.token_counts(tuning.encode_all(tok, tuning.training_bitext(cfg), cfg))
    ks = ks_from_rows(rows, rec["model"]["vocab_size"])
    tickets = [("base model (no rows)", "none", []), ("all changed rows", "all", rows["ids"].tolist())]
    for k in sizes:
        tickets.append((f"KS top-{k}", "KS", select(ks, "topk", k=k).tolist()))
        tickets += [(f"random-{k} #{d}", "random", baselines.random_ticket(counts, k, seed=d).ids)
                    for d in range(random_draws)]

    gen_prompts = [prompts.encode_prompt(tok, tmpl.render(s, bitext.src_lang, bitext.tgt_lang))
                   for s in bitext.src[:gen_sentences]]

    def greedy(model):
        conts = generate.generate(model, tok, gen_prompts, batch_size=max(gen_sentences, 1),
                                  max_new_tokens=gen_tokens, progress=False)
        return [c.text for c in conts]

    refs, tgt = bitext.tgt[:gen_sentences], bitext.tgt_lang
    chrf = lambda hyps: metrics.corpus_scores([metrics.first_line(h) for h in hyps], refs, tgt)["chrf++"]["score"]
    if gen_sentences:
        tuned_gen = greedy(lm.model)
        tuned_chrf = chrf(tuned_gen)
    out = []
    objects = [(name, kind, ids, None) for name, kind, ids in tickets]
    if partial_lr is not None:
        objects += [(f"{name} tuned", f"{kind} tuned", ids, partial_tuning(rec, ids, partial_lr, progress))
                    for name, kind, ids in tickets if kind in ("KS", "random")]
    for name, kind, ids, pt_rows in tqdm(objects, desc="tickets", disable=not progress):
        # partial transfer pastes the tuned rows of the ticket; partial tuning has its own rows for it
        moved = transferred_rows(rows, ids) if pt_rows is None else pt_rows
        partial = base.clone()
        partial[moved["ids"]] = moved["after"].to(base.dtype)
        with torch.no_grad():
            partner.model.get_input_embeddings().weight.copy_(partial.to(partner.model.device))
        norms = [certify.perturbation_norms(ids_t, tuned, partial)[len(ids_t) - k:] for ids_t, k in zip(seqs, lasts)]
        emp = np.concatenate([certify.empirical_agreement(lm.model, partner.model, ids_t)[len(ids_t) - k:][m]
                              for ids_t, k, m in zip(seqs, lasts, masks)])
        gaps = np.concatenate([g[m] for g, m in zip(norms, masks)])
        row = {"ticket": name, "kind": kind, "size": len(ids), "contexts": len(emp),
               "empirical_agreement": emp.mean(), "median_perturbation": float(np.median(gaps))}
        if gen_sentences:
            gen = greedy(partner.model)
            row["generation_agreement"] = float(np.mean([a == b for a, b in zip(gen, tuned_gen)]))
            row["chrf_first_line"] = chrf(gen)
        for sigma in sigmas:
            ok = np.concatenate([certify.certified_agreement(c, g)[m] for c, g, m in zip(certs[sigma], norms, masks)])
            radius = np.concatenate([c.radius[m] for c, m in zip(certs[sigma], masks)])
            abstain = np.concatenate([c.abstain[m] for c, m in zip(certs[sigma], masks)])
            # the most any model could have certified here: contexts whose perturbation is below the ceiling
            below = float((gaps < certify.max_radius(n, alpha, sigma)).mean())
            out.append({**row, "sigma": sigma, "certified_agreement": ok.mean(), "abstain_rate": abstain.mean(),
                        "median_radius": float(np.median(radius)), "below_ceiling": below})
    table = pd.DataFrame(out)
    if gen_sentences:
        base_chrf = table.loc[table["kind"] == "none", "chrf_first_line"].iloc[0]
        table["chrf_recovery"] = (table["chrf_first_line"] - base_chrf) / (tuned_chrf - base_chrf or float("nan"))
        table["tuned_chrf_first_line"] = tuned_chrf
    return table


def partial_tuning(embed_record: dict, ids: list[int], lr: float, progress: bool = False) -> dict:
    """The rows of the ticket ``ids`` trained alone from the base model with the embedding run's data,
    batches and steps (a rows-mode tune run, reused when it exists)."""
    from dataclasses import replace

    cfg = tuning.TuneConfig(**embed_record["config"])
    cfg = replace(cfg, mode="rows", ticket=tuple(int(i) for i in ids), lr=lr, snapshots=())
    return TunedRun(tuning.tune(cfg, progress=progress)["path"]).rows()

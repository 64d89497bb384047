"""The certification chapter's experiment: does the smoothed partially tuned model (the paper's object)
provably predict what the smoothed embedding-tuned model predicts, for the significance-defined ticket of
every seed and for same-size controls? (The certificate itself is :mod:`kslottery.method.certify`.)

Three stages, the first two before any noise is drawn:

1. :func:`perturbations`: per seed, object and target context, the norm of E'[x] - E_obj[x] (the prefix's
   rows of the embedding-tuned matrix minus the object's) and whether the unsmoothed argmaxes agree.
2. :func:`noise_levels`: the profile's fixed noise levels plus the one whose ceiling at ``n`` samples just
   covers a stated quantile of the KS ticket's partial-tuning perturbations (:func:`certify.max_radius`),
   so the radii the data need are certifiable in principle.
3. CERTIFY on the embedding-tuned model at every context and noise level (the expensive part, checkpointed
   per seed and noise level so an interrupted run resumes), joined with stage 1: a context is certified for
   an object where the smoothed model answers and the object's perturbation is below the radius.

The objects are arms of the registry (:mod:`kslottery.study.arms`), branches of the discovery budget's trunk, so they
reuse its runs.

    >>> r = experiment("gemma3-270m", "eng_Latn-cat_Latn", train_limit=512, batch_size=8, lr=1e-2, steps=8,
    ...                seeds=[0, 1, 2], sentences=24, positions=16, sigmas=[0.03], cover=0.5, n0=8, n=64,
    ...                cert_alpha=0.01)                                                     # doctest: +SKIP
    >>> rates(r["table"])                                                                   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..method import certify, data, models, prompts
from ..method.bootstrap import percentile_interval, resamples
from ..method.errors import KSLError
from ..method.runs import Run, RunRecord, releases_locks, write_json
from ..method.tuned import TunedRun
from .arms import REGISTRY, Arm, Trunk, arms, plan
from .recipe import Recipe

# Each object (an arm of the registry) is compared with the embedding-tuned model of its own seed. Controls take the
# size of the seed's own ticket; a same-size top-k by D is the ticket itself (every row's KS test has the same d,
# so p falls as D grows) and is not listed.
OBJECTS = ("Adam ticket", "most frequent rows", "frequency-matched rows", "random rows", "partial transfer, Adam ticket",
           "partial transfer, random rows")
COVERED = "Adam ticket"   # the object whose perturbations the chosen noise level must be able to cover


def _kind(arm: Arm) -> str:
    return "partial transfer" if arm.kind == "transfer" else "partial tuning"


def _contexts(tok, pair: str, template: str, sentences: int, positions: int) -> list[dict]:
    """Per devtest sentence: the prompt + reference ids up to the ``positions``-th target token, so the last
    ``positions`` contexts of the sequence are exactly those that predict a target token."""
    import torch

    tmpl, bitext = prompts.get_template(template), data.load_flores(pair, "devtest", limit=sentences)
    out = []
    for s, t in zip(bitext.src, bitext.tgt):
        e = prompts.encode_example(tok, tmpl, s, t, bitext.src_lang, bitext.tgt_lang)
        predicts_target = np.flatnonzero(np.array(e["labels"][1:]) != prompts.IGNORE_INDEX)[:positions]
        end = int(predicts_target[-1]) + 1
        out.append({"ids": torch.tensor(e["input_ids"][:end]), "last": len(predicts_target)})
    return out


def _matrix(base, run_path: str):
    m = base.clone()
    rows = TunedRun(run_path).rows()
    m[rows["ids"].long()] = rows["after"].to(m.dtype)
    return m


def _argmax(model, matrix, ctx: dict) -> np.ndarray:
    import torch

    with torch.no_grad():
        model.get_input_embeddings().weight.copy_(matrix)
        logits = model(ctx["ids"].unsqueeze(0), logits_to_keep=ctx["last"]).logits
    return logits[0].argmax(-1).numpy()


def perturbations(lm, trunk: Trunk, branches, contexts: list[dict]) -> pd.DataFrame:
    """One row per (seed, object, sentence, position): the perturbation norm ``norm`` between the seed's
    embedding-tuned matrix and the object's on the context's prefix, and ``agree``, whether the two unsmoothed
    models predict the same next token there. ``prediction`` is the embedding-tuned model's own."""
    import torch

    base = lm.model.get_input_embeddings().weight.detach().clone()
    out = []
    for seed in trunk.seeds["seeds"]:
        tuned = _matrix(base, trunk.embed(seed)["path"])
        own = [_argmax(lm.model, tuned, c) for c in contexts]
        for b in (b for b in branches if b.seed == seed):
            partial = _matrix(base, b.path)
            for i, c in enumerate(contexts):
                norms = certify.perturbation_norms(c["ids"], tuned, partial)[-c["last"]:]
                agree = _argmax(lm.model, partial, c) == own[i]
                out += [{"seed": seed, "object": b.arm, "kind": _kind(REGISTRY[b.arm]), "size": len(b.ticket),
                         "sentence": i, "position": p, "norm": float(norms[p]), "agree": bool(agree[p]),
                         "prediction": int(own[i][p])} for p in range(c["last"])]
    with torch.no_grad():
        lm.model.get_input_embeddings().weight.copy_(base)
    return pd.DataFrame(out)


def noise_level(norms, quantile: float, n: int, alpha: float) -> float:
    """The smallest noise level, rounded up to two significant digits, whose ceiling with ``n`` samples at
    ``alpha`` exceeds the ``quantile`` of ``norms``: below it, those perturbations cannot be certified."""
    need = float(np.quantile(norms, quantile)) / certify.max_radius(n, alpha, 1.0)
    if need <= 0:
        raise KSLError("the perturbations to cover are all zero", "certify an object that differs from the tuned model")
    digits = 1 - int(np.floor(np.log10(need)))
    return float(np.ceil(need * 10**digits) / 10**digits)


def noise_levels(contexts: pd.DataFrame, sigmas: list[float], cover: float | None, n: int, alpha: float) -> list[float]:
    """The fixed ``sigmas`` plus, with ``cover``, the level covering that quantile of the KS ticket's
    partial-tuning perturbations (stage 2: read from the norms, never from a certificate)."""
    levels = list(sigmas)
    if cover is not None:
        norms = contexts.loc[contexts["object"] == COVERED, "norm"]
        levels.append(noise_level(norms, cover, n, alpha))
    return sorted(set(levels))


def _certificates(lm, trunk: Trunk, contexts: list[dict], sigmas: list[float], n0: int, n: int, alpha: float,
                  work, progress: bool) -> pd.DataFrame:
    """CERTIFY on each seed's embedding-tuned model at every context and noise level; one checkpoint file
    per (seed, noise level) in ``work``."""
    import torch
    from tqdm.auto import tqdm

    base = lm.model.get_input_embeddings().weight.detach().clone()
    out = []
    jobs = [(s, sigma) for s in trunk.seeds["seeds"] for sigma in sigmas]
    for seed, sigma in tqdm(jobs, desc="certifying (seed, sigma)", disable=not progress):
        saved = work / f"certs-seed{seed}-sigma{sigma:g}.json"
        if not saved.exists():
            with torch.no_grad():
                lm.model.get_input_embeddings().weight.copy_(_matrix(base, trunk.embed(seed)["path"]))
            rows = []
            for i, c in enumerate(contexts):
                cert = certify.certify_sequence(lm.model, c["ids"], sigma, n0, n, alpha, last=c["last"], seed=i)
                rows += [{"seed": seed, "sigma": sigma, "sentence": i, "position": p, "radius": float(cert.radius[p]),
                          "abstain": bool(cert.abstain[p]), "smoothed": int(cert.prediction[p]),
                          "p_lower": float(cert.p_lower[p])} for p in range(c["last"])]
            pd.DataFrame(rows).to_json(saved.with_suffix(".tmp"), orient="records")
            saved.with_suffix(".tmp").replace(saved)
        out.append(pd.read_json(saved, orient="records"))
    with torch.no_grad():
        lm.model.get_input_embeddings().weight.copy_(base)
    return pd.concat(out, ignore_index=True)


def certified(contexts: pd.DataFrame, certs: pd.DataFrame, n: int, alpha: float) -> pd.DataFrame:
    """Stage 1 joined with the certificates: one row per (seed, object, sentence, position, sigma), with the
    ceiling, whether the norm lies below it, whether the context is certified, and whether the smoothed
    prediction is the unsmoothed embedding-tuned model's (``smoothed_is_model``: the smoothed classifier
    still computes what the model computes)."""
    t = contexts.merge(certs, on=["seed", "sentence", "position"], how="inner")
    t["ceiling"] = [certify.max_radius(n, alpha, s) for s in t["sigma"]]
    t["below_ceiling"] = t["norm"] < t["ceiling"]
    t["certified"] = (~t["abstain"]) & (t["norm"] < t["radius"])
    t["smoothed_is_model"] = t["smoothed"] == t["prediction"]
    return t


CONTEXTS, CERTIFICATES, NOISE_LEVELS = "contexts.json", "certificates.json", "noise_levels.json"


class CertRecord(RunRecord):
    """A finished cert run (this module owns the kind): its contexts with each object's perturbation, the
    certificates of the embedding-tuned model, and the noise levels they were drawn at."""

    def contexts(self) -> pd.DataFrame:
        return pd.read_json(Path(self["path"]) / CONTEXTS, orient="records")

    def certificates(self) -> pd.DataFrame:
        return pd.read_json(Path(self["path"]) / CERTIFICATES, orient="records")

    def noise_levels(self) -> list[float]:
        return json.loads((Path(self["path"]) / NOISE_LEVELS).read_text())


@releases_locks
def experiment(model: str, pair: str, *, train_limit: int, batch_size: int, lr: float, steps: int,
               seeds: list[int], sentences: int, positions: int, sigmas: list[float], n0: int, n: int,
               cert_alpha: float, cover: float | None = 0.5, template: str = "explicit", rule: str = "bh",
               alpha: float = 0.05, progress: bool = True, runs_dir=None) -> dict:
    """Every object of :data:`OBJECTS` at every seed (trained at the discovery budget, or reused),
    the perturbations, the noise levels they call for, and the certificates, stored in a hash-named
    ``cert-*`` run. Returns {"contexts", "sigmas", "table", "objects" (one row per seed x object), "run"}."""

    if positions < 1 or sentences < 1:
        raise KSLError(f"sentences={sentences}, positions={positions}", "certify at least one position of one sentence")
    proto = Recipe(model=model, pair=pair, train_limit=train_limit, eval_limit=1, template=template,
                     batch_size=batch_size, progress=progress)
    trunk = Trunk(proto, {"embed": lr, "rows": lr}, {"seeds": seeds, "secondary": seeds}, rule=rule, alpha=alpha,
                  options={"max_steps": steps})
    trunk.require_tickets()
    branches = plan(trunk, arms(*OBJECTS))
    objects = pd.DataFrame([{"seed": b.seed, "object": b.arm, "size": len(b.ticket), "run": b.run["run"],
                             "embedding run": trunk.embed(b.seed)["run"]} for b in branches])
    # the objects' names are stored in the run (contexts.json), so they are part of its name
    params = dict(objects=sorted(objects["run"]), object_names=list(OBJECTS),
                  tuned=sorted(objects["embedding run"].unique()), pair=pair, template=template, sentences=sentences,
                  positions=positions, sigmas=sorted(sigmas), cover=cover, n0=n0, n=n, cert_alpha=cert_alpha)
    run = Run("cert", params, runs_dir)
    if (rec := run.reuse(CertRecord)) is None:
        work = run.start()
        lm = models.load(model, untie_head=True, progress=progress)
        ctx = _contexts(lm.tokenizer, pair, template, sentences, positions)
        ctx_path = work / CONTEXTS
        if not ctx_path.exists():   # cheap, but the noise levels depend on it: computed once per run
            perturbations(lm, trunk, branches, ctx).to_json(ctx_path.with_suffix(".tmp"), orient="records")
            ctx_path.with_suffix(".tmp").replace(ctx_path)
        contexts = pd.read_json(ctx_path, orient="records")
        levels = noise_levels(contexts, sigmas, cover, n, cert_alpha)
        certs = _certificates(lm, trunk, ctx, levels, n0, n, cert_alpha, work, progress)
        certs.to_json(work / CERTIFICATES, orient="records")
        write_json(work / NOISE_LEVELS, levels)
        rows = lm.model.get_input_embeddings().weight.detach().float()
        # the scale the noise is added at: a typical raw embedding row's norm, and the rows' width
        rec = run.complete({"config": params, "noise_levels": levels, "contexts": len(contexts),
                            "row_norm_median": float(rows.norm(dim=1).median()), "hidden": int(rows.shape[1])},
                           CertRecord)
    contexts, levels, certs = rec.contexts(), rec.noise_levels(), rec.certificates()
    return {"contexts": contexts, "sigmas": levels, "table": certified(contexts, certs, n, cert_alpha),
            "objects": objects, "run": rec["run"], "row_norm_median": rec["row_norm_median"], "hidden": rec["hidden"]}


def rate_interval(df: pd.DataFrame, column: str, n: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """The mean of a 0/1 column and its 95 % interval from a two-level bootstrap: seeds, then sentences
    within each drawn seed (contexts of one sentence are correlated and move together)."""
    by = [g.groupby("sentence")[column].agg(["sum", "count"]).to_numpy(float) for _, g in df.groupby("seed")]
    boot = []
    for draw in resamples([len(b) for b in by], n, seed):
        hits, total = np.sum([c @ by[g] for g, c in draw], axis=0)
        boot.append(hits / total)
    low, high = percentile_interval(boot, 0.95)
    return float(df[column].mean()), float(low), float(high)


def rates(table: pd.DataFrame, n: int = 1000) -> pd.DataFrame:
    """Per object and noise level: the certified-agreement rate with its 95 % interval, the share of
    contexts below the ceiling (the most any model could certify), the abstention rate, how often the smoothed
    prediction is the model's own, the unsmoothed agreement with its interval, and the median perturbation."""
    out = []
    for (obj, sigma), g in table.groupby(["object", "sigma"], sort=False):
        rate, low, high = rate_interval(g, "certified", n)
        agree, alow, ahigh = rate_interval(g, "agree", n)
        out.append({"object": obj, "kind": g["kind"].iloc[0], "sigma": sigma, "seeds": g["seed"].nunique(),
                    "contexts": len(g), "median norm": float(g["norm"].median()), "ceiling": float(g["ceiling"].iloc[0]),
                    "below ceiling": float(g["below_ceiling"].mean()), "abstain": float(g["abstain"].mean()),
                    "smoothed = model": float(g["smoothed_is_model"].mean()), "certified": rate,
                    "certified ci95 low": low, "certified ci95 high": high, "certified ci95 width": high - low,
                    "unsmoothed agreement": agree, "agreement ci95 low": alow, "agreement ci95 high": ahigh})
    return pd.DataFrame(out)


def scaled(table: pd.DataFrame, factors=(0.0, 0.25, 0.5, 1.0, 2.0, 4.0)) -> pd.DataFrame:
    """The certified rate if every perturbation were ``factor`` times its measured norm (the certificates
    fixed): a check that can fail, since it must fall as the factor grows and reach 0 once every scaled norm
    is past the ceiling."""
    out = []
    for (obj, sigma), g in table.groupby(["object", "sigma"], sort=False):
        for f in factors:
            ok = (~g["abstain"]) & (f * g["norm"] < g["radius"])
            out.append({"object": obj, "sigma": sigma, "factor": f, "certified": float(ok.mean()),
                        "past the ceiling": float((f * g["norm"] >= g["ceiling"]).mean())})
    return pd.DataFrame(out)

"""The study's experiments, one function per result the notebooks show.

Each function takes the notebook's parameters, runs (or reuses) hash-named runs through the library,
and returns a tidy ``pandas.DataFrame``; the notebooks only call these and plot.
"""

from __future__ import annotations

import pandas as pd

from ..method import baselines, data, evaluate, metrics, models, prompts, tuning
from ..method.discovery import DiscoveryConfig, discover
from ..method.errors import KSLError
from ..method.ticket import (
    PAPER_TICKET_TEXT,
    PAPER_TICKETS,
    RULES,
    ks_from_rows,
    paper_ticket,
    paper_ticket_mapped,
    select,
)
from ..method.tuned import TunedRun
from .arms import Trunk, catalogue, plan
from .protocol import Protocol, tune_config

# Notebook parameters that are lists (papermill passes whatever the YAML holds).
LIST_PARAMS = ("pairs", "templates", "seeds", "method_seeds", "audit_seeds", "alphas", "sizes", "sigmas",
               "stability_pairs", "lrs", "sgd_lrs", "snapshots")


def check(notebook: str, **params) -> dict:
    """Validate a notebook's parameters (papermill only warns about unknown or mistyped ones)."""
    for name, value in params.items():
        if name in LIST_PARAMS and not isinstance(value, list):
            raise KSLError(f"{notebook}: parameter {name} must be a list, got {value!r}", "pass lists through YAML")
    for pair in params.get("pairs", []):
        for code in data.parse_pair(pair):
            prompts.language_name(code)
    for t in params.get("templates", []) + ([params["template"]] if "template" in params else []):
        prompts.get_template(t)
    for name in ("limit", "train_limit", "max_new_tokens", "batch_size", "k", "num_beams", "eval_limit"):
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
                  max_new_tokens: int = 128, batch_size: int = 32, drop_finished: bool = False,
                  progress: bool = True) -> pd.DataFrame:
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
                                      max_new_tokens=max_new_tokens, batch_size=batch_size,
                                      drop_finished=drop_finished)
            rows += _eval_rows(evaluate.evaluate(cfg, lm=lm, progress=progress), pair=pair, template=template)
    return pd.DataFrame(rows)


def tune_embed(model: str, pair: str, train_limit: int, lr: float, epochs: float, batch_size: int = 8,
               seed: int = 0, template: str = "explicit", max_steps: int | None = None, preset: str | None = None,
               mixed_precision: str = "no", progress: bool = True) -> dict:
    cfg = tune_config(preset, mixed_precision, model=model, pair=pair, split="dev", limit=train_limit,
                      template=template, mode="embed", lr=lr, epochs=epochs, batch_size=batch_size, seed=seed,
                      max_steps=max_steps)
    return tuning.tune(cfg, progress=progress)


def finetune(model: str, pairs: list[str], modes: dict[str, float], train_limit: int, epochs: float,
             batch_size: int = 8, seed: int = 0, template: str = "explicit", eval_limit: int = 0,
             max_new_tokens: int = 128, eval_batch_size: int = 32, drop_finished: bool = False,
             preset: str | None = None, mixed_precision: str = "no",
             progress: bool = True) -> tuple[pd.DataFrame, dict]:
    """Tune every pair with every mode (``modes``: mode -> learning rate) and, with ``eval_limit`` > 0,
    score each tuned model on devtest. Returns (one row per pair x mode, {label: loss curve})."""
    rows, curves = [], {}
    for pair in pairs:
        for mode, lr in modes.items():
            cfg = tune_config(preset, mixed_precision, model=model, pair=pair, split="dev", limit=train_limit,
                              template=template, mode=mode, lr=lr, epochs=epochs, batch_size=batch_size, seed=seed)
            rec = tuning.tune(cfg, progress=progress)
            curves[f"{pair} {mode}"] = loss_curve(rec["path"])
            row = {"pair": pair, "mode": mode, "lr": lr, "steps": rec["train"]["steps"],
                   "trainable_params": rec["train"]["n_trainable"], "final_loss": rec["train"]["final_loss"],
                   "rows_changed": rec.get("rows_changed"), "train_minutes": rec["wall_s"] / 60, "run": rec["run"]}
            if eval_limit:
                ev = evaluate.evaluate(evaluate.EvalConfig(model=model, pair=pair, template=template, limit=eval_limit,
                                                           max_new_tokens=max_new_tokens, tuned=rec["path"],
                                                           batch_size=eval_batch_size, drop_finished=drop_finished),
                                       progress=progress)
                for rule in ("whole", "first_line"):
                    row[f"chrf++ ({rule})"] = ev.chrf(rule)
                row["eos_rate"] = ev.eos_rate
                row["eval_run"] = ev["run"]
            rows.append(row)
    return pd.DataFrame(rows), curves


def loss_curve(tune_path: str) -> pd.DataFrame:
    return pd.DataFrame(TunedRun(tune_path).train_log())


def ks_rows(tune_path: str, template: str = "explicit") -> pd.DataFrame:
    """Every changed row: token, KS statistic and p, L2 shift, training frequency, in the prompt template."""
    run = TunedRun(tune_path)
    rec, rows, tok = run.record, run.rows(), run.tokenizer()
    res = ks_from_rows(rows, rec["model"]["vocab_size"])
    ids = rows["ids"].long()
    cfg = tuning.TuneConfig(**{k: v for k, v in rec["config"].items()})
    bitext = tuning.training_bitext(cfg)
    counts = baselines.token_counts(tuning.encode_all(tok, bitext, cfg))
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
    run = TunedRun(tune_path)
    rec, rows = run.record, run.rows()
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


def published_tickets() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's six tickets: (one row per language with its ids, Jaccard overlap between languages)."""

    known = {i: t for m in PAPER_TICKET_TEXT.values() for i, t in m.items()}
    rows = [{"language": lang, "size": len(ids), "ids": " ".join(map(str, ids)),
             "decoded": " ".join(repr(known[i]) if i in known else "?" for i in ids)} for lang, ids in PAPER_TICKETS.items()]
    return pd.DataFrame(rows), jaccard({lang: ids for lang, ids in PAPER_TICKETS.items()})


def paper_ticket_for(model: str, pair: str, source: str = "text") -> tuple[list[int], pd.DataFrame]:
    """The paper's ticket for ``pair`` as ids of ``model``'s vocabulary: ``ids`` uses the published LLaMA
    ids as they are (a LLaMA-1/2 tokenizer is required), ``text`` carries each token over by its text.
    Returns (ids, one row per published token: what it became and whether it occurs in each template)."""

    lang = data.parse_pair(pair)[1]
    tok = models.load_tokenizer(model)
    if source == "ids":
        t = paper_ticket(lang, tok)
        if tok.decode([13]) != "\n":
            raise KSLError(f"{model}'s id 13 is {tok.decode([13])!r}, not a newline: not a LLaMA-1/2 vocabulary",
                           "use ticket_source text for other models")
        ids, rows = list(t.ids), [{"published_id": i, "token": tok.convert_ids_to_tokens(i), "id": i} for i in t.ids]
    elif source == "text":
        t, mapping = paper_ticket_mapped(lang, tok)
        ids = list(t.ids)
        rows = [{"published_id": i, "text": repr(text), "token": mapping[text],
                 "id": tok.convert_tokens_to_ids(mapping[text]) if mapping[text] else None}
                for i, text in PAPER_TICKET_TEXT[lang].items()]
    else:
        raise KSLError(f"unknown ticket source {source!r}", "use ids (LLaMA vocabulary) or text")
    src, tgt = data.parse_pair(pair)
    df = pd.DataFrame(rows)
    for name in prompts.TEMPLATES:
        fixed = set(prompts.encode_prompt(tok, prompts.get_template(name).render("", src, tgt)))
        df[f"in {name}"] = [i in fixed if i is not None else False for i in df["id"]]
    return ids, df


def headline(model: str, pair: str, *, template: str, train_limit: int, epochs: float, batch_size: int,
             lr_embed: float, lr_rows: float, lr_full: float | None = None, lr_lora: float | None = None,
             lr_prefix: float | None = None, prefix_init: str = "random", k: int,
             seeds: list[int], random_draws: int, eval_limit: int, max_new_tokens: int,
             method_seeds: list[int] | None = None, eval_batch_size: int = 32,
             arms: list[str] | None = None, extra_tickets: dict[str, list[int]] | None = None,
             preset: str | None = None, mixed_precision: str = "no", num_beams: int = 1,
             drop_finished: bool = False, progress: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The 18-token experiment: every arm trained (or transferred) on FLORES dev and scored on devtest.

    ``seeds`` drive the headline arms (embedding tuning, the KS ticket, its transfer); ``method_seeds``
    (default: the same) the comparison methods full / LoRA / prefix, which cost most on a CPU.
    ``extra_tickets`` (name -> token ids) adds partial-tuning arms for given tickets (the paper's).
    Each seed's KS arm and transfer use the ticket of that seed's own embedding tuning.

    Returns (scores: one row per arm x seed x extraction rule, intervals: paired-bootstrap 95 % CIs of
    each arm's chrF++ gain over the base model under the whole-continuation and first-line rules)."""

    extra_tickets = extra_tickets or {}
    names = arms or ["base", "embed", "full", "lora", "prefix", f"KS top-{k}", *extra_tickets, f"random-{k}",
                     f"frequency-{k}", f"transfer KS top-{k}"]
    known = catalogue(k, prefix_init, fixed=tuple(extra_tickets))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise KSLError(f"unknown arm {unknown[0]!r}", f"use some of {', '.join(known)}")
    proto = Protocol(model=model, pair=pair, train_limit=train_limit, eval_limit=eval_limit, template=template,
                     epochs=epochs, batch_size=batch_size, max_new_tokens=max_new_tokens,
                     eval_batch_size=eval_batch_size, num_beams=num_beams, preset=preset,
                     mixed_precision=mixed_precision, drop_finished=drop_finished, progress=progress)
    lrs = {"embed": lr_embed, "rows": lr_rows, "full": lr_full, "lora": lr_lora, "prefix": lr_prefix}
    trunk = Trunk(proto, lrs, {"seeds": seeds, "method_seeds": method_seeds or seeds,
                               "draws": list(range(random_draws)), "frequency_draws": [0]},
                  rule="topk", k=k, fixed={n: list(ids) for n, ids in extra_tickets.items()})
    rows, evals = [], {}
    for b in plan(trunk, [known[n] for n in names]):
        rec = proto.score(b.path)
        evals[(b.arm, b.seed)] = rec
        trainable = 0 if b.run is None or "rows_pasted" in b.run else b.run.get("train", {}).get("n_trainable")
        rows += [{**r, "seed": b.seed, "trainable_params": trainable} for r in _eval_rows(rec, arm=b.arm)]
    scores = pd.DataFrame(rows)
    intervals = []
    if ("base", None) in evals:
        refs = data.load_flores(pair, "devtest", limit=eval_limit).tgt
        rules = ("whole", "first_line")
        base_hyps = {r: h for r, h in evaluate.hypotheses(evals[("base", None)]).items() if r in rules}
        for (arm, seed), rec in evals.items():
            if arm == "base":
                continue
            # one set of resamples per arm for both rules (the audit's decomposition, same numbers)
            dec = metrics.gain_decomposition(base_hyps, evaluate.hypotheses(rec), refs, data.parse_pair(pair)[1],
                                             metric="chrf++", n=1000, seed=0)
            intervals += [{"arm": arm, "seed": seed, "rule": rule, "gain": dec[rule]["gain"],
                           "ci_low": dec[rule]["ci95"][0], "ci_high": dec[rule]["ci95"][1]} for rule in rules]
    return scores, pd.DataFrame(intervals)

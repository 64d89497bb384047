"""Greedy scoring speed: HF ``generate`` (today's float32 path), the own loop with the float32 head, and
the own loop through the exact bf16 head (``exact_head``), in this process on the same prompts; the
physical limits of the vocabulary head beside them.

    python benchmarks/decoding.py [--model gemma3-270m] [--sentences 32] [--tokens 64] [--batch 32] [--threads N]

The first ``--sentences`` FLORES devtest prompts (en->ca, explicit template) are continued for up to
``--tokens`` tokens in batches of ``--batch``, as ``evaluate`` does by default (EOS stops a row; the
base models rarely emit it, so nearly every step is made). Reported per path: wall-clock seconds
and CPU seconds (this process; the machine is shared, and each batch runs every path in turn, so
other load falls on all alike), generated tokens/s, peak RSS (the largest of its batches; the model's own
weights included), how many continuations equal HF generate's, the exact head's counters. Limits:
the head's bytes per step over the measured memory bandwidth (a large copy), and its FLOPs per step
over the measured peak of a square matmul, for float32 and bfloat16. Parts: the first batch timed piece by piece
(the prompt prefill through the decoder body, then per decoding step the body, the float32 head and the exact
head on the same hidden states), and from them the most any head could give: the job's time with the head free,
against the float32 job (prefill + steps x (body + float32 head)). Writes
``benchmarks/results/decoding-<sentences>x<tokens>-<machine>.json`` and the same name under
``book/results/benchmarks/`` as a CSV table.
"""

import argparse
import csv
import time
from pathlib import Path

import torch
from common import machine, peak_gib, reset_peak, save

from kslottery.method import data, generate, models, prompts

BOOK_TABLES = Path(__file__).resolve().parents[1] / "book" / "results" / "benchmarks"


def bandwidth_gbs(mib: int = 512, repeats: int = 5) -> float:
    """Memory bandwidth of a large copy: bytes read plus bytes written per second (best of ``repeats``)."""
    a = torch.empty(mib * 2**18)
    b = torch.empty_like(a)
    b.copy_(a)
    best = min(_timed(lambda: b.copy_(a)) for _ in range(repeats))
    return 2 * a.numel() * 4 / best / 1e9


def peak_gflops(dtype: torch.dtype, n: int = 2048, repeats: int = 3) -> float:
    a = torch.randn(n, n).to(dtype)
    b = torch.randn(n, n).to(dtype)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(f) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--pair", default="eng_Latn-cat_Latn")
    ap.add_argument("--sentences", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=64, help="max new tokens per sentence")
    ap.add_argument("--batch", type=int, default=32, help="sentences per generation batch (evaluate's default)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--paths", default="hf_generate,loop_float32,exact_bf16")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = models.load(args.model, progress=False)
    bitext = data.load_flores(args.pair, "devtest", limit=args.sentences)
    tpl = prompts.get_template("explicit")
    ids = [prompts.encode_prompt(lm.tokenizer, tpl.render(s, bitext.src_lang, bitext.tgt_lang)) for s in bitext.src]
    out = {"machine": machine(), "model": args.model, "pair": args.pair, "sentences": args.sentences,
           "max_new_tokens": args.tokens, "batch_size": args.batch, "results": {}}
    paths = args.paths.split(",")
    # evaluate's batches (generate sorts prompts by length, then cuts them into batches); every path runs
    # each batch in turn, the order rotating, so load from other processes on the machine falls on all alike
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    batches = [order[i:i + args.batch] for i in range(0, len(order), args.batch)]
    conts = {name: [None] * len(ids) for name in paths}
    res = {name: {"seconds": 0.0, "cpu_seconds": 0.0, "peak_rss_gib": 0.0} for name in paths}
    stats = {name: {} for name in paths}
    for b, idx in enumerate(batches):
        for name in paths[b % len(paths):] + paths[:b % len(paths)]:
            reset_peak()
            t, c = time.perf_counter(), time.process_time()
            got = generate.generate(lm.model, lm.tokenizer, [ids[i] for i in idx], batch_size=args.batch,
                                    max_new_tokens=args.tokens, progress=False, own_loop=name == "loop_float32",
                                    exact_bf16=name == "exact_bf16", stats=stats[name])
            res[name]["seconds"] += time.perf_counter() - t
            res[name]["cpu_seconds"] += time.process_time() - c
            res[name]["peak_rss_gib"] = max(res[name]["peak_rss_gib"], peak_gib().get("peak_rss_gib", 0))
            for i, x in zip(idx, got):
                conts[name][i] = x
        print(f"batch {b + 1}/{len(batches)}", {n: round(r["cpu_seconds"], 1) for n, r in res.items()}, flush=True)
    for name in paths:
        n = sum(x.n_tokens for x in conts[name])
        r = res[name]
        out["results"][name] = {"seconds": round(r["seconds"], 2), "cpu_seconds": round(r["cpu_seconds"], 2),
                                "generated_tokens": n, "tokens_per_s": round(n / r["seconds"], 2),
                                "tokens_per_cpu_s": round(n / r["cpu_seconds"], 2), "peak_rss_gib": r["peak_rss_gib"],
                                **({"exact_head": stats[name]} if stats[name] else {})}
        print(name, out["results"][name], flush=True)
    base = out["results"].get("hf_generate")
    for name, r in out["results"].items():
        if base:
            r["speed_vs_hf_generate"] = round(base["seconds"] / r["seconds"], 2)
            r["cpu_speed_vs_hf_generate"] = round(base["cpu_seconds"] / r["cpu_seconds"], 2)
            r["identical_to_hf_generate"] = sum(a.to_dict() == b.to_dict()
                                                for a, b in zip(conts["hf_generate"], conts[name]))
    out["limits"] = limits(lm.model, args.batch)
    print("limits", out["limits"])
    out["parts"] = parts(lm.model, [ids[i] for i in batches[0]], args.tokens)
    print("parts", out["parts"])
    saved = save(f"decoding-{args.sentences}x{args.tokens}", out)   # one file per size: runs do not overwrite
    print("saved", saved)
    print("table", table(out, saved))


def limits(model, batch: int) -> dict:
    """Lower bounds on one decoding step's head, per dtype: bytes / bandwidth and FLOPs / peak."""
    v, k = model.lm_head.weight.shape
    bw = bandwidth_gbs()
    out = {"head": [v, k], "bandwidth_gb_s": round(bw, 1)}
    for name, dtype, size in (("float32", torch.float32, 4), ("bfloat16", torch.bfloat16, 2)):
        peak = peak_gflops(dtype)
        mem_s = v * k * size / (bw * 1e9)
        flop_s = 2 * batch * v * k / (peak * 1e9)
        out[name] = {"peak_gflop_s": round(peak, 1), "head_step_ms_memory": round(mem_s * 1e3, 1),
                     "head_step_ms_flops": round(flop_s * 1e3, 1),
                     "head_only_tokens_per_s": round(batch / max(mem_s, flop_s), 1)}
    return out


@torch.no_grad()
def parts(model, prompts: list[list[int]], tokens: int, steps: int = 16) -> dict:
    """One batch piece by piece, in ms: the prompt prefill (decoder body only: the head is needed at the last
    position, which the steps below time), then ``steps`` decoding steps, each timing the body, the float32 head
    with its argmax and the exact head on the same hidden state. The bounds scale the steps to ``tokens``."""
    from transformers import DynamicCache

    from kslottery.method import exact_head

    ids, mask = generate.left_padded(prompts, pad=0)   # generate's own padding (the pad id is masked out)
    width = ids.shape[1]
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    exact = exact_head.for_head(model.lm_head)
    t = time.perf_counter()
    hidden = model.model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                         use_cache=True).last_hidden_state[:, -1:]
    prefill = time.perf_counter() - t
    body = head32 = head16 = 0.0
    nxt = pos[:, -1:] + 1
    for _ in range(steps):
        t = time.perf_counter()
        tok = model.lm_head(hidden)[:, -1].argmax(-1)
        head32 += time.perf_counter() - t
        t = time.perf_counter()
        assert bool((exact.argmax(hidden) == tok).all())
        head16 += time.perf_counter() - t
        mask = torch.cat([mask, mask.new_ones(len(prompts), 1)], 1)
        t = time.perf_counter()
        hidden = model.model(input_ids=tok[:, None], attention_mask=mask, position_ids=nxt, past_key_values=cache,
                             use_cache=True).last_hidden_state
        body += time.perf_counter() - t
        nxt = nxt + 1
    ms = {"prefill_ms": prefill * 1e3, "body_step_ms": body / steps * 1e3, "float32_head_step_ms": head32 / steps * 1e3,
          "exact_head_step_ms": head16 / steps * 1e3}
    job = {k: ms["prefill_ms"] + tokens * (ms["body_step_ms"] + h) for k, h in
           (("float32", ms["float32_head_step_ms"]), ("exact", ms["exact_head_step_ms"]), ("free_head", 0.0))}
    return {"rows": len(prompts), "prompt_width": width, "steps_timed": steps, **{k: round(v, 1) for k, v in ms.items()},
            "speed_with_exact_head": round(job["float32"] / job["exact"], 2),
            "speed_with_a_free_head": round(job["float32"] / job["free_head"], 2)}


PATH_NAMES = {"hf_generate": "HF generate", "loop_float32": "own loop, float32 head",
              "exact_bf16": "own loop, exact bf16 head"}


def table(out: dict, saved: Path) -> Path:
    BOOK_TABLES.mkdir(parents=True, exist_ok=True)
    path = BOOK_TABLES / (saved.stem + ".csv")
    lim = out["limits"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "seconds", "tokens/s", "peak RSS (GiB)", "speed against HF generate (x)",
                    "identical to HF generate", "head-only limit (tokens/s)"])
        for name, r in out["results"].items():
            dtype = "bfloat16" if name == "exact_bf16" else "float32"
            w.writerow([PATH_NAMES.get(name, name), r["seconds"], r["tokens_per_s"], r.get("peak_rss_gib"),
                        r.get("speed_vs_hf_generate"), f"{r.get('identical_to_hf_generate')} of {out['sentences']}",
                        lim[dtype]["head_only_tokens_per_s"]])
    parts = out.get("parts")
    if parts:   # the first batch piece by piece: what share of the float32 job any head could save
        f32 = parts["prefill_ms"] + out["max_new_tokens"] * (parts["body_step_ms"] + parts["float32_head_step_ms"])
        with open(path.with_name(saved.stem + "-parts.csv"), "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["part of one batch", "ms", "share of the float32 job (%)"])
            for name, ms, times in (("prompt prefill (decoder body)", parts["prefill_ms"], 1),
                                    ("decoder body, per step", parts["body_step_ms"], out["max_new_tokens"]),
                                    ("float32 head, per step", parts["float32_head_step_ms"], out["max_new_tokens"]),
                                    ("exact bf16 head, per step", parts["exact_head_step_ms"], out["max_new_tokens"])):
                w.writerow([name, ms, round(100 * ms * times / f32, 1)])
            w.writerow(["speed of the job with the exact head (x)", "", parts["speed_with_exact_head"]])
            w.writerow(["speed of the job with a head that costs nothing (x)", "", parts["speed_with_a_free_head"]])
    return path


if __name__ == "__main__":
    main()

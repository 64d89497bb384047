"""Embedding-only training step on gemma3-270m: the project's loop against a naive loop.

    python benchmarks/embedding_step.py [--steps 4] [--model gemma3-270m]

Both loops run in this process on the same batches (8 pairs of FLORES dev en->ca, each cut to 64
tokens) through ``kslottery.method.tuning.train``:
- ours: a float32 delta on the rows seen in training, logits only at target positions;
- naive: the whole embedding as the trainable parameter (dense AdamW over every row) and full logits.
Reported: median seconds per optimizer step after the first (warm-up), tokens/s, peak RSS of each loop.
"""

import argparse
import statistics

from common import machine, peak_gib, reset_peak, save

from kslottery.method import data, models, tuning


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=4, help="optimizer steps per loop (the first is warm-up)")
    ap.add_argument("--model", default="gemma3-270m", help="model spec")
    args = ap.parse_args()
    out = {"machine": machine(), "model": args.model, "batch": "8 x 64 tokens", "results": {}}
    for name, sparse in (("naive", False), ("kslottery", True)):
        cfg = tuning.TuneConfig(model=args.model, limit=64, batch_size=8, max_len=64, lr=1e-3,
                                max_steps=args.steps, sparse_rows=sparse)
        lm = models.load(cfg.model, progress=False)
        examples = tuning.encode_all(lm.tokenizer, data.load_flores(cfg.pair, cfg.split, limit=cfg.limit), cfg)
        log = []
        reset_peak()
        tuning.train(lm, cfg, examples, progress=False, log=log)
        mem = peak_gib()
        step_s = statistics.median(e["step_s"] for e in log[1:])
        tokens = sum(len(examples[i]["input_ids"]) for i in tuning.batch_order(len(examples), cfg)[1])
        out["results"][name] = {"median_step_s": round(step_s, 3), "tokens_per_s": round(tokens / step_s, 1), **mem}
        print(name, out["results"][name], flush=True)
        del lm
    out["speedup"] = round(out["results"]["naive"]["median_step_s"] / out["results"]["kslottery"]["median_step_s"], 2)
    print("speedup", out["speedup"])
    print("saved", save("embedding_step", out))


if __name__ == "__main__":
    main()

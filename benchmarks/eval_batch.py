"""Scoring N prompts in batches of 32 against one batch of N (greedy, finished rows dropped), in this
process on the same prompts: the choice behind the default profile's ``eval_batch_size: 100``.

    python benchmarks/eval_batch.py [--tuned runs/tune-...] [--sentences 100] [--tokens 96] [--small 32]

On a CPU a decoding step is dominated by the output head (262k x 640 for Gemma 3), whose cost grows
less than linearly with the rows in the batch, so fewer, larger batches decode the same tokens in less
time. Reported per path: seconds, tokens/s, peak RSS; the ratio; how many continuations are identical
(a different batch takes other matmul shapes, so float noise can flip a near-tie).
"""

import argparse
import json
import time
from pathlib import Path

from common import machine, peak_gib, reset_peak, save

from kslottery.method import data, generate, models, prompts
from kslottery.method.tuned import TunedRun


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tuned", default=None, help="a finished runs/tune-* or runs/transfer-* directory "
                    "(none: the base model, which never stops: the worst case)")
    ap.add_argument("--model", default="gemma3-270m", help="model spec (a tuned run's own model wins)")
    ap.add_argument("--pair", default="eng_Latn-cat_Latn")
    ap.add_argument("--sentences", type=int, default=100, help="devtest prompts")
    ap.add_argument("--tokens", type=int, default=96, help="max new tokens")
    ap.add_argument("--small", type=int, default=32, help="the baseline's batch size")
    args = ap.parse_args()
    if args.tuned:
        p = json.loads((Path(args.tuned) / "params.json").read_text())["params"]
        args.model, args.pair = p["model"], p["pair"]
    lm = models.load(args.model, progress=False)
    if args.tuned:
        TunedRun(args.tuned).apply(lm)
    bitext = data.load_flores(args.pair, "devtest", limit=args.sentences)
    tpl = prompts.get_template("explicit")
    ids = [prompts.encode_prompt(lm.tokenizer, tpl.render(s, bitext.src_lang, bitext.tgt_lang)) for s in bitext.src]
    out = {"machine": machine(), "model": args.model, "tuned": args.tuned, "sentences": len(ids),
           "max_new_tokens": args.tokens, "results": {}}
    conts = {}
    for name, batch in ((f"batches_of_{args.small}", args.small), (f"one_batch_of_{len(ids)}", len(ids))):
        reset_peak()
        t = time.perf_counter()
        conts[name] = generate.generate(lm.model, lm.tokenizer, ids, batch_size=batch, max_new_tokens=args.tokens,
                                        progress=False, drop_finished=True)
        s = time.perf_counter() - t
        n = sum(c.n_tokens for c in conts[name])
        out["results"][name] = {"batch_size": batch, "seconds": round(s, 2), "generated_tokens": n,
                                "tokens_per_s": round(n / s, 1), **peak_gib()}
        print(name, out["results"][name], flush=True)
    small, big = (out["results"][k]["seconds"] for k in conts)
    out["speedup"] = round(small / big, 2)
    a, b = conts.values()
    out["identical"] = sum(x.text == y.text for x, y in zip(a, b))
    print("speedup", out["speedup"], "identical", out["identical"], "of", len(ids))
    print("saved", save("eval_batch", out))


if __name__ == "__main__":
    main()

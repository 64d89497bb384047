"""Greedy scoring of a tuned model: HF ``generate`` (a batch runs until its last row stops) against
dropping rows that stopped, in this process on the same prompts.

    python benchmarks/generation.py --tuned runs/tune-58a4d9f74306 [--sentences 32] [--tokens 96]

A tuned model (``--tuned``: any finished tune or transfer run; none: the base model, which rarely stops
and so gains nothing) continues the first ``--sentences`` FLORES devtest prompts of its pair in one
batch. Reported per path: seconds, generated tokens/s, peak RSS; the speed ratio; how many
continuations are token-identical (dropping rows changes the batch's matmul shapes, so float noise can
flip a near-tie).
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
    ap.add_argument("--tuned", default=None, help="a finished runs/tune-* or runs/transfer-* directory")
    ap.add_argument("--model", default="gemma3-270m", help="model spec (a tuned run's own model wins)")
    ap.add_argument("--pair", default="eng_Latn-cat_Latn")
    ap.add_argument("--template", default="explicit")
    ap.add_argument("--sentences", type=int, default=32, help="devtest prompts, one batch")
    ap.add_argument("--tokens", type=int, default=96, help="max new tokens")
    args = ap.parse_args()
    if args.tuned:
        p = json.loads((Path(args.tuned) / "params.json").read_text())["params"]
        args.model, args.pair, args.template = p["model"], p["pair"], p["template"].replace("sampled-paraphrases", "explicit")
    lm = models.load(args.model, progress=False)
    if args.tuned:
        TunedRun(args.tuned).apply(lm)
    bitext = data.load_flores(args.pair, "devtest", limit=args.sentences)
    tpl = prompts.get_template(args.template)
    ids = [prompts.encode_prompt(lm.tokenizer, tpl.render(s, bitext.src_lang, bitext.tgt_lang)) for s in bitext.src]
    out = {"machine": machine(), "model": args.model, "tuned": args.tuned, "sentences": args.sentences,
           "max_new_tokens": args.tokens, "results": {}}
    conts = {}
    for name, drop in (("hf_generate", False), ("drop_finished", True)):
        reset_peak()
        t = time.perf_counter()
        conts[name] = generate.generate(lm.model, lm.tokenizer, ids, batch_size=args.sentences,
                                        max_new_tokens=args.tokens, progress=False, drop_finished=drop)
        s = time.perf_counter() - t
        n = sum(c.n_tokens for c in conts[name])
        out["results"][name] = {"seconds": round(s, 2), "generated_tokens": n, "tokens_per_s": round(n / s, 1),
                                "eos_rate": round(sum(c.stopped_eos for c in conts[name]) / len(ids), 3), **peak_gib()}
        print(name, out["results"][name], flush=True)
    out["speedup"] = round(out["results"]["hf_generate"]["seconds"] / out["results"]["drop_finished"]["seconds"], 2)
    out["identical"] = sum(a.text == b.text for a, b in zip(conts["hf_generate"], conts["drop_finished"]))
    print("speedup", out["speedup"], "identical", out["identical"], "of", len(ids))
    print("saved", save("generation", out))


if __name__ == "__main__":
    main()

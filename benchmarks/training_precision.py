"""bf16 autocast training against float32, measured: step time, final training loss and held-out dev chrF++ of
the same run (same model, family, learning rate, seed and pairs) in each precision, for embedding tuning, row
tuning and full fine-tuning of Gemma 3 270M and SmolLM2-135M.

    python benchmarks/training_precision.py [--models gemma3-270m smollm2-135m] [--steps 64] [--runs-dir DIR]

A finished run is reused (its recorded time and, as no training happens, a meaningless peak): for speed and memory,
point ``--runs-dir`` at an empty folder on a quiet machine.

Every run is the fair test's recipe (FLORES dev[:512], batch 8, one epoch unless ``--steps`` stops it sooner,
constant lr, wd 0) at the middle of fair-v2's grid for its family (embedding 3e-4, rows 1e-2, full 1e-5); row
tuning trains the 18 tokens most frequent in the training inputs (a fixed ticket: no discovery needed). Dev
chrF++ on dev[512:612], as the fair test's learning-rate selection scores. The float32 runs are the ones the
default profile would train at those settings (same hash), so they are reused there. Reported per run:
seconds per step (wall, from the run's own record), final loss, dev chrF++, and peak RSS of the run, each run in
a process of its own (a process that ran others holds their models and its peak says little); the ratios bf16 /
float32 beside them. Writes ``benchmarks/results/training-precision-<machine>.json``.
"""

import argparse
import json
import os
import subprocess
import sys
import time

from common import machine, peak_gib, reset_peak, save

LRS = {"embed": 3e-4, "rows": 1e-2, "full": 1e-5}


def one(model: str, family: str, precision: str, steps: int | None, score: bool = True) -> dict:
    """One run (trained or reused) and its dev score, in this process; its peak RSS is this process's."""
    from kslottery.method import baselines, tuning
    from kslottery.study.recipe import Recipe

    recipe = Recipe(model=model, pair="eng_Latn-cat_Latn", train_limit=512, eval_limit=100, batch_size=8,
                    max_new_tokens=96, eval_batch_size=100, drop_finished=True, mixed_precision=precision,
                    progress=False)
    extra = {"max_steps": steps} if steps else {}
    if family == "rows":
        examples = tuning.training_examples(recipe.config(mode="embed", lr=LRS["embed"]))
        extra["ticket"] = tuple(baselines.frequency_ticket(baselines.token_counts(examples), 18).ids)
    reset_peak()
    start = time.time()
    run = recipe.tune(mode=family, lr=LRS[family], seed=0, **extra)
    took = time.time() - start
    dev = recipe.score(run["path"], split="dev", offset=512, limit=100).chrf("whole") if score else None
    train = run["train"]
    return {"model": model, "family": family, "precision": "bf16" if precision == "bf16" else "fp32",
            "lr": LRS[family], "steps": train["steps"], "wall_s": round(took, 1),
            "s_per_step": round(run.get("wall_s", took) / max(train["steps"], 1), 3),
            "final_loss": round(train["final_loss"], 4), "dev_chrf": round(dev, 2) if score else None, **peak_gib()}


def decide(quality: list[dict], speed: list[dict], most_gib: float = 12.0) -> dict:
    """The default profile's precision rule, applied: a family trains in bf16 when, on every model, its bf16 run is
    within 0.5 dev chrF++ and 2 % final loss of the float32 run (``quality``: the full runs), is faster per step
    and peaks under ``most_gib`` (``speed``: the short runs, each in a process of its own); else float32 ("no").
    Returns {family: {"precision", "why"}}."""
    def find(rows, model, family, precision):
        return next(r for r in rows if (r["model"], r["family"], r["precision"]) == (model, family, precision))

    out = {}
    for family in LRS:
        fails = []
        for model in dict.fromkeys(r["model"] for r in quality):
            q32, q16 = find(quality, model, family, "fp32"), find(quality, model, family, "bf16")
            s32, s16 = find(speed, model, family, "fp32"), find(speed, model, family, "bf16")
            if abs(q16["dev_chrf"] - q32["dev_chrf"]) > 0.5:
                fails.append(f"{model}: dev chrF++ {q16['dev_chrf']:.2f} vs {q32['dev_chrf']:.2f}")
            if abs(q16["final_loss"] - q32["final_loss"]) > 0.02 * q32["final_loss"]:
                fails.append(f"{model}: final loss {q16['final_loss']:.4f} vs {q32['final_loss']:.4f}")
            if s16["s_per_step"] >= s32["s_per_step"]:
                fails.append(f"{model}: {s16['s_per_step']:.2f} s a step vs {s32['s_per_step']:.2f}, not faster")
            if s16["peak_rss_gib"] >= most_gib:
                fails.append(f"{model}: peak RSS {s16['peak_rss_gib']:.1f} GiB")
        out[family] = {"precision": "no" if fails else "bf16", "why": "; ".join(fails) or "every condition holds"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    ap.add_argument("--steps", type=int, default=None, help="stop every run after this many steps (default: an epoch)")
    ap.add_argument("--runs-dir", default=None, help="where the runs go (default: $KSL_RUNS or runs/)")
    ap.add_argument("--speed-only", action="store_true",
                    help="no dev score: step time and peak memory only (with --steps and an empty --runs-dir, the "
                         "quick quiet-machine measurement; loss and chrF++ come from the full runs)")
    ap.add_argument("--decide", nargs=2, metavar=("QUALITY_JSON", "SPEED_JSON"),
                    help="apply the default profile's precision rule to a full run's and a --speed-only run's results")
    ap.add_argument("--one", nargs=3, metavar=("MODEL", "FAMILY", "PRECISION"),
                    help="run one (model, family, precision: no or bf16) in this process and print its row")
    args = ap.parse_args()
    if args.runs_dir:
        os.environ["KSL_RUNS"] = args.runs_dir
    if args.decide:
        quality, speed = (json.loads(open(p).read())["runs"] for p in args.decide)
        print(json.dumps(decide(quality, speed), indent=1))
        return
    if args.one:
        print(json.dumps(one(*args.one, args.steps, score=not args.speed_only)))
        return
    rows = []
    for model in args.models:
        for precision in ("no", "bf16"):
            for family in LRS:
                cmd = [sys.executable, __file__, "--one", model, family, precision]
                cmd += ["--steps", str(args.steps)] if args.steps else []
                cmd += ["--speed-only"] if args.speed_only else []
                cmd += ["--runs-dir", args.runs_dir] if args.runs_dir else []
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                rows.append(json.loads(out.strip().splitlines()[-1]))
                print(rows[-1], flush=True)
    for r in rows:
        if r["precision"] == "bf16":
            base = next(x for x in rows if x["precision"] == "fp32" and x["model"] == r["model"]
                        and x["family"] == r["family"])
            r["speed-up"] = round(base["s_per_step"] / r["s_per_step"], 2)
            r["loss - fp32"] = round(r["final_loss"] - base["final_loss"], 4)
            if r["dev_chrf"] is not None:
                r["dev chrF++ - fp32"] = round(r["dev_chrf"] - base["dev_chrf"], 2)
    name = "training-precision-speed" if args.speed_only else "training-precision"
    print(save(name, {"machine": machine(), "steps": args.steps, "runs": rows}))


if __name__ == "__main__":
    main()

"""How many torch threads a run should take on this machine: for each run kind, one process at N threads against
N one-thread processes side by side (what a local Ray instance does with ``cpus: 1`` a run), on the real model.

    python benchmarks/threads.py [--model gemma3-270m] [--threads 2] [--sentences 64] [--tokens 96] [--steps 8]
                                 [--repeats 2]
    python benchmarks/threads.py --table     # the book's table from the saved results, nothing rerun

- scoring: greedy decoding of ``--sentences`` held-out dev prompts (dev[900:], which no chapter reads) in one batch
  with drop_finished, as the study scores (64 x 96 tokens: the batch its cost estimate timed). Every process loads
  its model first and waits; all start together, and the group's time runs from that start to the last finish;
- training: ``--steps`` AdamW steps of embedding tuning on the fair test's 512 pairs (lr 1e-4). A step's time is
  the median of the run's own step log after the first two (a staggered model load leaves the first ones alone).

Throughput is work per second over the whole group (one process, or N side by side); the ratio is the group of
N one-thread processes against the one N-thread process, measured in the same invocation, ``--repeats`` times in
alternating order (every repeat is kept). Each process reports its
peak RSS, and the sum is beside it. The outputs (continuations' text; the trained rows' bytes) must be identical
at every thread count, which the report checks: a run computed by a one-thread worker is the run a two-thread
process computes, so runs from either path can mix in one runs folder.
"""

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import RESULTS, machine, peak_gib, save

BOOK = Path(__file__).resolve().parents[1] / "book" / "results" / "benchmarks"


def child(kind: str, threads: int, args) -> dict:
    """One process's share: the work, its seconds, its peak RSS and a digest of what it produced."""
    torch.set_num_threads(threads)
    from kslottery.method import data, generate, models, prompts, tuning

    if kind == "scoring":
        lm = models.load(args.model, progress=False)
        bt = data.load_flores("eng_Latn-cat_Latn", split="dev", offset=900, limit=args.sentences)
        tpl = prompts.get_template("explicit")
        ids = [prompts.encode_prompt(lm.tokenizer, tpl.render(s, bt.src_lang, bt.tgt_lang)) for s in bt.src]
        print("ready", flush=True)
        sys.stdin.readline()   # the parent starts every process of the group at once
        t0 = time.perf_counter()
        conts = generate.generate(lm.model, lm.tokenizer, ids, batch_size=len(ids), max_new_tokens=args.tokens,
                                  progress=False, drop_finished=True)
        seconds, work = time.perf_counter() - t0, len(ids)
        digest = hashlib.sha256(json.dumps([c.text for c in conts]).encode()).hexdigest()
    else:
        with tempfile.TemporaryDirectory(prefix="threads-") as tmp:
            cfg = tuning.TuneConfig(model=args.model, limit=512, max_steps=args.steps, lr=1e-4)
            rec = tuning.tune(cfg, runs_dir=tmp, progress=False)
            run = Path(rec["path"])
            log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if line.strip()]
            steady = sorted(e["step_s"] for e in log[2:]) or [e["step_s"] for e in log]
            seconds, work = steady[len(steady) // 2] * len(log), len(log)   # the median step, as if every step
            digest = hashlib.sha256((run / "rows.safetensors").read_bytes()).hexdigest()
    return {"threads": threads, "seconds": round(seconds, 2), "work": work, "digest": digest[:16], **peak_gib()}


def group(kind: str, procs: int, threads: int, args) -> dict:
    """``procs`` processes at ``threads`` threads each, started together; throughput over the group."""
    cmd = [sys.executable, __file__, "--child", kind, "--child-threads", str(threads), "--model", args.model,
           "--sentences", str(args.sentences), "--tokens", str(args.tokens), "--steps", str(args.steps)]
    running = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(procs)]
    if kind == "scoring":   # all loaded, then all at once: the group's clock runs from here to the last finish
        for p in running:
            if p.stdout.readline().strip() != "ready":
                sys.exit(f"a {kind} process at {threads} threads failed before it was ready")
        t0 = time.perf_counter()
        for p in running:
            p.stdin.write("go\n")
            p.stdin.flush()
    out = []
    for p in running:
        stdout, _ = p.communicate()
        if p.returncode:
            sys.exit(f"a {kind} process at {threads} threads failed (exit {p.returncode})")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    span = time.perf_counter() - t0 if kind == "scoring" else max(o["seconds"] for o in out)
    rate = sum(o["work"] for o in out) / span
    return {"processes": procs, "threads_each": threads, "per_process": out, "seconds": round(span, 2),
            "rate_per_s": round(rate, 4),
            "peak_rss_gib_sum": round(sum(o.get("peak_rss_gib", 0) for o in out), 2)}


def table(path: Path) -> Path:
    """The reproducibility page's table from a saved result: per run kind, both ways, rate, ratio, memory."""
    out = json.loads(path.read_text())
    m = out["machine"]
    where = f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}, {m['date']}"
    unit = {"scoring": "sentences/s", "training": "steps/s"}
    BOOK.mkdir(parents=True, exist_ok=True)
    dest = BOOK / f"{path.stem}.csv"
    with open(dest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run kind", "how", "rate (mean of repeats)", "against one process (x; each repeat)",
                    "peak RSS per process (GiB)", "peak RSS, sum (GiB)", "outputs identical", "machine"])
        for kind, k in out["kinds"].items():
            reps = k.get("repeats", [k])
            each = " / ".join(f"{r['ratio']:g}" for r in reps)
            for label, g, ratio in (("one process", k["one_process"], "1"), ("side by side", k["side_by_side"], each)):
                rate = sum(r[{"one process": "one_process", "side by side": "side_by_side"}[label]]["rate_per_s"]
                           for r in reps) / len(reps)
                how = (f"{g['processes']} process at {g['threads_each']} threads" if label == "one process"
                       else f"{g['processes']} processes at {g['threads_each']} thread side by side")
                w.writerow([kind, how, f"{rate:.3f} {unit[kind]}", ratio,
                            " / ".join(f"{o['peak_rss_gib']:.2f}" for o in g["per_process"]), g["peak_rss_gib_sum"],
                            k["identical_outputs"], where])
    return dest


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="gemma3-270m")
    ap.add_argument("--threads", type=int, default=2, help="N: the one process's threads, the side-by-side count")
    ap.add_argument("--sentences", type=int, default=64, help="prompts each scoring process decodes")
    ap.add_argument("--tokens", type=int, default=96, help="max new tokens")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps each training process takes")
    ap.add_argument("--repeats", type=int, default=2, help="times each comparison runs, in alternating order")
    ap.add_argument("--kinds", default="scoring,training")
    ap.add_argument("--table", action="store_true", help="write the book's table from the saved results and stop")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.child_threads, args)))
        return
    if args.table:
        print(f"-> {table(RESULTS / 'threads-cpu-2cores.json')}")
        return
    out = {"machine": {**machine(), "torch_threads": args.threads}, "args": vars(args), "kinds": {}}
    for kind in args.kinds.split(","):
        repeats = []
        for r in range(args.repeats):   # alternating order: neither way always runs on a cooler machine
            ways = [(1, args.threads), (args.threads, 1)][:: 1 if r % 2 == 0 else -1]
            got = {procs: group(kind, procs, threads, args) for procs, threads in ways}
            repeats.append({"one_process": got[1], "side_by_side": got[args.threads],
                            "ratio": round(got[args.threads]["rate_per_s"] / got[1]["rate_per_s"], 2)})
        digests = {o["digest"] for rep in repeats for g in ("one_process", "side_by_side") for o in rep[g]["per_process"]}
        ratios = sorted(rep["ratio"] for rep in repeats)
        out["kinds"][kind] = {**repeats[0], "repeats": repeats, "ratio": ratios[len(ratios) // 2],
                              "ratios": ratios, "identical_outputs": len(digests) == 1}
        print(f"{kind}: {args.threads} x 1 thread side by side = {ratios}x one process at {args.threads} threads; "
              f"outputs identical: {len(digests) == 1}", flush=True)
    path = save("threads", out)
    print(f"-> {path} and {table(path)}")


if __name__ == "__main__":
    main()

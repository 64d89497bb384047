"""One stage of the study computed serially (today's path: one run after another in this process, torch at its
default threads, and again at one thread) against the same stage on a local Ray instance with N workers (1 CPU and 1 torch thread
each), from empty runs folders: the wall-clock of each, their ratio, and peak memory.

    python benchmarks/ray_fanout.py [--model tiny:smollm2-135m] [--seeds 4] [--workers 2]

The stage is :func:`kslottery.study.arms.plan` over a trunk of ``--seeds`` seeds with three arms (the Adam
ticket, random rows, partial transfer of the Adam ticket) and the scores of every branch: every seed's embedding
tuning, its KS discovery, two rows tunings, a transfer, and 1 + 3 x seeds evaluations. Both paths must name the
same runs (checked). Ray's start (a local instance, seconds) is timed apart from the stage. Peak RSS: this
process (the driver) and the largest a worker recorded in a run it computed.
"""

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from common import machine, peak_gib, reset_peak, save

from kslottery.study import executor
from kslottery.study.arms import REGISTRY, Trunk, arms, plan
from kslottery.study.recipe import Recipe

BOOK = Path(__file__).resolve().parents[1] / "book" / "results" / "benchmarks"


def stage(args, root: Path) -> tuple[float, set, float]:
    """The stage into ``root``: its wall-clock, the runs it named, and the largest peak RSS a run recorded."""
    os.environ["KSL_RUNS"] = str(root)
    p = Recipe(model=args.model, pair="eng_Latn-cat_Latn", train_limit=args.train, eval_limit=args.sentences,
               batch_size=8, max_new_tokens=args.tokens, progress=False)
    trunk = Trunk(p, {"embed": 0.02, "rows": 0.02}, {"seeds": list(range(args.seeds)), "secondary": list(range(args.seeds))},
                  rule="bonferroni", options={"max_steps": args.steps})
    t0 = time.perf_counter()
    branches = plan(trunk, [REGISTRY["base"], *arms("Adam ticket", "random rows", "partial transfer, Adam ticket")])
    p.score_all([p.eval_config(b.path) for b in branches])
    wall = time.perf_counter() - t0
    names = {d.name for d in root.iterdir() if not d.name.startswith(".")}
    peaks = [json.loads((root / n / "record.json").read_text()).get("peak_rss_gib") or 0 for n in names]
    return wall, names, max(peaks)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="tiny:smollm2-135m")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--train", type=int, default=64, help="training pairs (batch 8)")
    ap.add_argument("--steps", type=int, default=8, help="optimizer steps of the discovery's embedding tuning")
    ap.add_argument("--sentences", type=int, default=8, help="devtest sentences each branch is scored on")
    ap.add_argument("--tokens", type=int, default=16, help="max new tokens")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    out = {"machine": machine(), "args": vars(args)}
    with tempfile.TemporaryDirectory(prefix="ray-fanout-") as tmp:
        os.environ["KSL_EXECUTOR"] = "serial"
        reset_peak()
        wall, serial_runs, worker_peak = stage(args, Path(tmp) / "serial")
        out["serial"] = {"seconds": round(wall, 1), "runs": len(serial_runs), **peak_gib(),
                         "torch_threads": out["machine"]["torch_threads"]}
        # the same serial path at one torch thread: what the workers run at, so the ratio is not only threading
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        wall, _, _ = stage(args, Path(tmp) / "serial-1thread")
        torch.set_num_threads(threads)
        out["serial_1thread"] = {"seconds": round(wall, 1)}
        os.environ.update(KSL_EXECUTOR="ray", KSL_WORKERS=str(args.workers))
        ex = executor.current()
        os.environ["KSL_RUNS"] = str(Path(tmp) / "ray")
        t0 = time.perf_counter()
        ex._connect()
        start = time.perf_counter() - t0
        reset_peak()
        wall, ray_runs, worker_peak = stage(args, Path(tmp) / "ray")
        assert ray_runs == serial_runs, "the two paths named different runs"
        out["ray"] = {"seconds": round(wall, 1), "ray_start_s": round(start, 1), "workers": args.workers,
                      "torch_threads_per_worker": 1, "driver": peak_gib(), "worker_peak_rss_gib": worker_peak}
    out["speedup"] = round(out["serial"]["seconds"] / out["ray"]["seconds"], 2)
    out["speedup_vs_serial_1thread"] = round(out["serial_1thread"]["seconds"] / out["ray"]["seconds"], 2)
    out["speedup_with_start"] = round(out["serial"]["seconds"] / (out["ray"]["seconds"] + out["ray"]["ray_start_s"]), 2)
    print(json.dumps(out, indent=1))
    path = save("ray_fanout", out)
    BOOK.mkdir(parents=True, exist_ok=True)
    table = BOOK / f"{path.stem}.csv"
    with open(table, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "seconds", "runs", "peak RSS (GiB)", "speed against serial (x)", "machine"])
        where = f"{out['machine']['cpu']}, {out['machine']['cores']} cores, {out['machine']['date']}"
        w.writerow([f"serial ({out['serial']['torch_threads']} torch threads)", out["serial"]["seconds"],
                    out["serial"]["runs"], out["serial"].get("peak_rss_gib"), 1.0, where])
        w.writerow(["serial (1 torch thread)", out["serial_1thread"]["seconds"], out["serial"]["runs"], None,
                    round(out["serial"]["seconds"] / out["serial_1thread"]["seconds"], 2), where])
        w.writerow([f"ray, {args.workers} workers x 1 thread (start {out['ray']['ray_start_s']} s not counted)",
                    out["ray"]["seconds"], len(ray_runs),
                    f"driver {out['ray']['driver'].get('peak_rss_gib')}, worker {worker_peak}", out["speedup"], where])
    print(f"-> {path} and {table}")


if __name__ == "__main__":
    main()

"""Paper-scale throughput on one GPU: a LLaMA-7B-shaped model built from its config (random weights:
speed and memory only, never quality).

    python benchmarks/gpu.py                      # on a CUDA machine, ~3-5 minutes on one H100/H200
    python benchmarks/gpu.py --tiny --device cpu  # the same code paths on a 2-layer model (CI smoke)

Measures, each with peak memory: embedding tuning (8 x 256 tokens, float32 row delta over bf16
weights, logits at target positions only), 18-row tuning, full fine-tuning (bf16, gradient
checkpointing), KS over the whole 32,000 x 4,096 embedding, and greedy generation of 64 new tokens at
batch 1 and 32. Each speed has a baseline run in the same process: embedding tuning with logits at
every position (the straightforward loss), SciPy's per-row KS test on 256 rows (scaled to the
vocabulary), generation at batch 1. Reference points from the platform notes (one H200, a straightforward
implementation): embedding tuning 15.0 k tokens/s, KS 21 ms, generation 1,444 tokens/s at batch 32.
"""

import argparse
import json
import time
from pathlib import Path

import torch
from common import machine, peak_gib, reset_peak, save

from kslottery.method.ks import ks_counts
from kslottery.method.trainable import RowDelta, TargetLoss

LLAMA_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=2048)
TINY = dict(vocab_size=32000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def build(shape, device, dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(LlamaConfig(**shape, tie_word_embeddings=False)).to(dtype)
    return model.eval()


def batch(model, device, b=8, t=256):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, model.config.vocab_size, (b, t), generator=g)
    labels = ids.clone()
    labels[:, : t // 2] = -100          # the first half is "prompt", as in translation examples
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device), "labels": labels.to(device)}


def timed_steps(step, device, steps):
    step()                              # warm-up (allocations, kernels)
    sync(device)
    reset_peak()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return (time.perf_counter() - t) / steps, peak_gib()


def train_rows(model, device, data, ids, steps, mixed, target_only=True):
    emb = model.get_input_embeddings()
    model.requires_grad_(False)
    model.set_input_embeddings(RowDelta(emb, ids.to(device)).to(device))
    loss_mod = TargetLoss(model, target_only=target_only)
    opt = torch.optim.AdamW([model.get_input_embeddings().delta], lr=1e-4, weight_decay=0.0)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed):
            loss = loss_mod(**data) / (data["labels"][:, 1:] != -100).sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    out = timed_steps(step, device, steps)
    model.set_input_embeddings(emb)
    return out


def train_full(model, device, data, steps):
    model.requires_grad_(True)
    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    model.train()
    loss_mod = TargetLoss(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.0)

    def step():
        loss = loss_mod(**data) / (data["labels"][:, 1:] != -100).sum()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    out = timed_steps(step, device, steps)
    opt = None   # frees the optimizer state before the next measurement
    model.requires_grad_(False)
    getattr(model, "activation_checkpointing_disable", model.gradient_checkpointing_disable)()
    model.eval()
    return out


@torch.no_grad()
def generation(model, device, b, new=64):
    from transformers import GenerationConfig

    ids = torch.randint(3, model.config.vocab_size, (b, 32), generator=torch.Generator().manual_seed(1)).to(device)
    cfg = GenerationConfig(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0, eos_token_id=2)
    return timed_steps(lambda: model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=cfg),
                       device, 1)


BOOK_TABLES = Path(__file__).resolve().parents[1] / "book" / "results" / "benchmarks"
LABELS = [  # result key, the row's label in the book, the baseline it is compared with
    ("embedding_tuning", "embedding tuning (float32 delta on every row, logits at target positions)",
     "embedding_tuning_all_logits_baseline"),
    ("rows18_tuning", "18-row tuning", "embedding_tuning"),
    ("full_finetuning", "full fine-tuning (bf16 AdamW, gradient checkpointing)", "embedding_tuning"),
    ("ks_full_vocab", "KS over the whole embedding", "ks_scipy_baseline"),
    ("generate_batch1", "greedy generation, 64 new tokens, batch 1", None),
    ("generate_batch32", "greedy generation, 64 new tokens, batch 32", "generate_batch1"),
]


def book_table(saved: Path) -> Path:
    """The book's table of a saved GPU benchmark (a CSV the reproducibility chapter includes), so no number
    of it is typed into the chapter: time, throughput and peak GPU memory of each step, and its time
    against the baseline measured in the same process (its speed divided by the baseline's)."""
    import csv

    try:
        res = json.loads(Path(saved).read_text())["results"]
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"error: cannot read a saved GPU benchmark from {saved} ({type(e).__name__}); "
                         "pass a benchmarks/results/gpu-*.json written by --save") from None
    BOOK_TABLES.mkdir(parents=True, exist_ok=True)
    out = BOOK_TABLES / (Path(saved).stem + ".csv")
    tmp = out.with_name(out.name + ".tmp")   # never a half-written table in the book
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "seconds", "tokens/s", "peak GPU memory (GiB)", "baseline", "speed against the baseline (x)"])
        for key, label, base in LABELS:
            if key not in res:
                continue
            r = res[key]
            ratio = ""
            if base and base in res:   # same work: time ratio; generation batches differ: throughput ratio
                b = res[base]
                ratio = round(r["tokens_per_s"] / b["tokens_per_s"] if "tokens_per_s" in r and "tokens_per_s" in b
                              else b["seconds"] / r["seconds"], 2)
            w.writerow([label, r["seconds"], r.get("tokens_per_s", ""), r.get("peak_cuda_gib", ""),
                        base or "", ratio])
    tmp.replace(out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="a 2-layer model of the same vocabulary (CPU smoke)")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per mode")
    ap.add_argument("--skip", action="append", default=[], help="skip a part: embed, rows, full, ks, generate")
    ap.add_argument("--save", action="store_true", help="write benchmarks/results/gpu-<device>.json and its book table")
    ap.add_argument("--table", metavar="JSON", help="only write the book's table of a saved result (no GPU needed)")
    args = ap.parse_args()
    if args.table:
        print("wrote", book_table(Path(args.table)))
        return None
    device = torch.device(args.device)
    shape = TINY if args.tiny else LLAMA_7B
    mixed = device.type == "cuda"
    out = {"machine": machine(), "shape": "tiny" if args.tiny else "llama-7b", "results": {}, "ratios": {}}
    model = build(shape, device, torch.bfloat16 if mixed else torch.float32)
    data = batch(model, device, t=256 if not args.tiny else 32)
    tokens = data["input_ids"].numel()

    def record(name, seconds, mem, unit_tokens=tokens):
        out["results"][name] = {"seconds": round(seconds, 4), "tokens_per_s": round(unit_tokens / seconds, 1), **mem}
        print(name, out["results"][name], flush=True)

    if "embed" not in args.skip:
        all_ids = torch.arange(model.config.vocab_size)
        record("embedding_tuning", *train_rows(model, device, data, all_ids, args.steps, mixed))
        record("embedding_tuning_all_logits_baseline",
               *train_rows(model, device, data, all_ids, args.steps, mixed, target_only=False))
        out["ratios"]["embedding_tuning_vs_all_logits"] = round(
            out["results"]["embedding_tuning_all_logits_baseline"]["seconds"] / out["results"]["embedding_tuning"]["seconds"], 2)
    if "rows" not in args.skip:
        record("rows18_tuning", *train_rows(model, device, data, torch.arange(13, 31), args.steps, mixed))
    if "ks" not in args.skip:
        before = model.get_input_embeddings().weight.detach().float()
        after = before + 1e-4 * torch.randn_like(before)
        s, mem = timed_steps(lambda: ks_counts(before, after), device, 3)
        out["results"]["ks_full_vocab"] = {"seconds": round(s, 4), "rows": before.shape[0], "d": before.shape[1], **mem}
        print("ks_full_vocab", out["results"]["ks_full_vocab"], flush=True)
        from scipy.stats import ks_2samp

        b, a = before[:256].cpu().numpy(), after[:256].cpu().numpy()
        t = time.perf_counter()
        for i in range(256):
            ks_2samp(b[i], a[i])
        per_row = (time.perf_counter() - t) / 256
        out["results"]["ks_scipy_baseline"] = {"seconds": round(per_row * before.shape[0], 4), "rows_timed": 256,
                                              "note": "per-row time on 256 rows x vocabulary"}
        if device.type == "cuda":      # the CUDA keys kernel must count exactly what the CPU merge counts
            k_gpu, _ = ks_counts(before[:4096], after[:4096])
            k_cpu, _ = ks_counts(before[:4096].cpu(), after[:4096].cpu())
            out["results"]["ks_cuda_equals_cpu_rows"] = int((k_gpu.cpu() == k_cpu).sum())
            print("ks_cuda_equals_cpu_rows", out["results"]["ks_cuda_equals_cpu_rows"], "of 4096", flush=True)
        out["ratios"]["ks_vs_scipy"] = round(out["results"]["ks_scipy_baseline"]["seconds"] / s, 1)
    if "generate" not in args.skip:
        for b in (1, 32):
            s, mem = generation(model, device, b)
            record(f"generate_batch{b}", s, mem, unit_tokens=64 * b)
        out["ratios"]["generate_batch32_vs_batch1_tokens_per_s"] = round(
            out["results"]["generate_batch32"]["tokens_per_s"] / out["results"]["generate_batch1"]["tokens_per_s"], 1)
    if "full" not in args.skip:
        record("full_finetuning", *train_full(model, device, data, args.steps))
    print("ratios", out["ratios"], flush=True)
    if args.save:
        saved = save("gpu", out)
        print("saved", saved, "and", book_table(saved))
    return out


if __name__ == "__main__":
    main()

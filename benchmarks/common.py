"""Shared by the benchmarks: machine description and peak resident memory per measured section."""

import json
import os
import platform
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    # two machines of one model name can differ in what decides the study's speeds: bfloat16 instructions
    flags = next((set(ln.split(":", 1)[1].split()) for ln in open("/proc/cpuinfo") if ln.startswith("flags")), set())
    return {"cpu": cpu, "cores": os.cpu_count(), "bf16_instructions": bool(flags & {"avx512_bf16", "amx_bf16"}),
            "torch_threads": torch.get_num_threads(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}


def reset_peak() -> None:
    """Reset the kernel's peak-RSS counter (VmHWM) so the next reading covers one section only."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> dict:
    out = {}
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            out["peak_rss_gib"] = round(int(line.split()[1]) / 2**20, 3)
    if torch.cuda.is_available():
        out["peak_cuda_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return out


def save(name: str, result: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    tag = (result["machine"]["cuda"] or "cpu").replace(" ", "-").lower()
    path = RESULTS / f"{name}-{tag}-{result['machine']['cores']}cores.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path

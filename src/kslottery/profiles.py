"""Run profiles: execute the study's notebooks with papermill, parameters from ``profiles/NAME.yaml``.

    kslottery run --profile smoke [--only baseline_and_prompts]

Executed notebooks land in ``book/results/<profile>/`` (written to a temporary name, renamed when the
notebook finished). The experiments inside reuse hash-named run directories, so a rerun after an
interruption redoes only what had not finished.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import yaml

from .errors import KSLError

ORDER = ["baseline_and_prompts", "finetune", "ks_ticket_discovery", "certification",
         "partial_tuning_18_tokens", "paper_tickets"]


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "profiles").is_dir() and (parent / "notebooks").is_dir():
            return parent
    return Path.cwd()


def load_profile(name: str, root: Path | None = None) -> dict:
    root = root or repo_root()
    path = root / "profiles" / f"{name}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in (root / "profiles").glob("*.yaml"))
        raise KSLError(f"unknown profile {name!r}", f"use one of {', '.join(have)}")
    prof = yaml.safe_load(path.read_text())
    unknown = set(prof.get("notebooks", {})) - set(ORDER)
    if unknown:
        raise KSLError(f"profile {name} names unknown notebooks {sorted(unknown)}", f"use {', '.join(ORDER)}")
    return prof


def notebook_parameters(prof: dict, notebook: str, profile: str) -> dict:
    return {"profile": profile, **prof.get("common", {}), **(prof["notebooks"].get(notebook) or {})}


def run_profile(profile: str, only: list[str] | None = None, root: Path | None = None,
                progress: bool = True) -> list[Path]:
    import papermill as pm

    root = root or repo_root()
    prof = load_profile(profile, root)
    todo = [nb for nb in ORDER if nb in prof["notebooks"] and (not only or nb in only)]
    if only and set(only) - set(todo):
        raise KSLError(f"profile {profile} has no notebook {sorted(set(only) - set(todo))}",
                       f"choose from {', '.join(todo) or '(none)'}")
    out_dir = root / "book" / "results" / profile
    out_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("KSL_RUNS", str(root / "runs"))
    done = []
    for nb in todo:
        src = root / "notebooks" / f"{nb}.ipynb"
        params = notebook_parameters(prof, nb, profile)
        declared = pm.inspect_notebook(str(src))
        unknown = set(params) - set(declared)
        if unknown:
            raise KSLError(f"profile {profile} passes {sorted(unknown)} to {nb}, which has no such parameter",
                           f"use the notebook's parameters: {', '.join(declared)}")
        # Executed outside the book's source tree until finished, so a book build never sees a half notebook.
        tmp = root / ".ksl-partial" / f"{profile}-{nb}.ipynb"
        tmp.parent.mkdir(exist_ok=True)
        t0 = time.time()
        print(f"[{profile}] {nb} ...", flush=True)
        pm.execute_notebook(str(src), str(tmp), parameters=params, cwd=str(root / "notebooks"),
                            progress_bar=progress, kernel_name="python3")
        final = out_dir / f"{nb}.ipynb"
        tmp.replace(final)
        print(f"[{profile}] {nb} done in {time.time() - t0:.0f} s -> {final.relative_to(root)}", flush=True)
        done.append(final)
    return done

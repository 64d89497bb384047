"""The ``kslottery`` command. Every verb has ``--help``; bad input prints one ``error:`` line, exit 2."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import typing

from .method.errors import Interrupted, KSLError, disk_full, no_space


def _none_or(kind):
    def parse(text: str):
        return None if text.lower() in ("none", "all", "") else kind(text)
    parse.__name__ = kind.__name__
    return parse


def _int_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def add_config_args(parser: argparse.ArgumentParser, cls) -> None:
    """One flag per dataclass field, with the field's help text and default."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        help_ = f"{f.metadata.get('help', '')} (default: {f.default})"
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=help_)
            continue
        args = typing.get_args(kind)
        if typing.get_origin(kind) is tuple:   # e.g. --snapshots 8,16,32
            parser.add_argument(flag, type=_int_list, default=f.default, help=help_, metavar="N,N,...")
            continue
        base = next((a for a in args if a is not type(None)), kind) if args else kind
        parser.add_argument(flag, type=_none_or(base) if type(None) in args else base, default=f.default,
                            help=help_, metavar=f.name.upper())


def config_from_args(cls, ns: argparse.Namespace):
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})


def cmd_evaluate(ns) -> int:
    from .method.evaluate import EvalConfig, evaluate, format_table

    record = evaluate(config_from_args(EvalConfig, ns), runs_dir=ns.runs_dir, progress=not ns.quiet)
    print(format_table(record))
    print(f"record: {record['path']}/record.json")
    return 0


def cmd_tune(ns) -> int:
    from .method.tuning import TuneConfig, is_main_process, tune

    rec = tune(config_from_args(TuneConfig, ns), runs_dir=ns.runs_dir, progress=not ns.quiet)
    if not is_main_process():   # under torchrun / accelerate launch, rank 0 reports for all
        return 0
    t = rec["train"]
    print(f"{rec['run']}{'  (reused)' if rec.get('reused') else ''}: mode {rec['config']['mode']}, "
          f"{t['steps']} steps, final loss {t['final_loss']:.4f}, {t['n_trainable']:,} trainable parameters, "
          f"{t['tokens_per_s']:.0f} tokens/s" + (f", {rec['rows_changed']:,} rows changed" if "rows_changed" in rec else ""))
    print(f"run: {rec['path']}")
    return 0


def cmd_ks(ns) -> int:
    from .method.discovery import DiscoveryConfig, discover

    rec = discover(config_from_args(DiscoveryConfig, ns), runs_dir=ns.runs_dir)
    print(f"{rec['run']}{'  (reused)' if rec.get('reused') else ''}: {rec['n_changed']:,} of {rec['n_rows']:,} rows "
          f"changed (d = {rec['d']}); max D {rec['max_statistic']:.4f}, min p {rec['min_pvalue']:.3g}")
    for name, t in rec["tickets"].items():
        shown = " ".join(repr(tok) for tok in t["tokens"][:24]) + (" ..." if t["size"] > 24 else "")
        print(f"  {name:<18} {t['size']:>6} rows  {shown}")
    print(f"tickets: {rec['path']}/ticket-*.json")
    return 0


def cmd_transfer(ns) -> int:
    from .method.transfer import TransferConfig, transfer

    rec = transfer(config_from_args(TransferConfig, ns), runs_dir=ns.runs_dir)
    print(f"{rec['run']}{'  (reused)' if rec.get('reused') else ''}: pasted {rec['rows_pasted']} rows "
          f"({rec['config']['delta']}, x{rec['config']['scale']}) from {rec['tune_run']}; "
          f"{len(rec['rows_not_changed_by_tuning'])} ticket rows were not changed by tuning")
    print(f"evaluate it with: kslottery evaluate --model {rec['model']['spec']} --tuned {rec['path']}")
    return 0


def cmd_run(ns) -> int:
    from .report.profiles import run_profile

    run_profile(ns.profile, only=ns.only or None, progress=not ns.quiet, executor=ns.executor, address=ns.address,
                workers=ns.workers)
    return 0


def cmd_status(ns) -> int:
    from .method.runs import runs_root
    from .method.status import describe, status

    root = runs_root(ns.runs_dir)
    if not root.is_dir():
        raise KSLError(f"no runs folder at {root}", "pass --runs-dir, or set KSL_RUNS to the folder a profile runs into")
    s = status(root)
    if ns.profile:   # how far the profile's fair test got against its plan
        from .report.profiles import load_profile
        from .study.cost import progress, progress_lines
        from .study.design import Design

        table = progress(Design.from_profile(load_profile(ns.profile)), root)
        s["plan"] = table.astype(object).where(table.notna(), None).to_dict("records")   # JSON has no NaN
    if ns.json:
        print(json.dumps(s, indent=1))
    else:
        print(describe(s) + "".join(f"\n{line}" for line in progress_lines(table)) if ns.profile else describe(s))
    return 0


def cmd_archive(ns) -> int:
    from .method import archive
    from .method.runs import runs_root

    root = runs_root(ns.runs_dir)
    if ns.action == "pack":
        print(json.dumps(archive.pack(root, ns.archive, ns.max_mib or archive.MAX_MIB)))
    else:
        print(json.dumps(archive.restore(ns.archive, root)))
    return 0


def cmd_book(ns) -> int:
    from .report.profile_book import build

    html = build(ns.profile)
    print(f"open {html / 'index.html'}")
    return 0


def cmd_summary(ns) -> int:
    from .report.summary import summary

    print(summary(ns.profile), end="")
    return 0


def cmd_models(ns) -> int:
    from .method import models

    if ns.spec is None:
        for p in models.PRESETS.values():
            print(f"{p.name:<14} {p.architecture:<20} {p.distribution:<26} {p.help}")
        return 0
    lm = models.load(ns.spec, untie_head=ns.untie, allow_pickle=ns.allow_pickle, progress=not ns.quiet)
    print(json.dumps(lm.info.to_dict(), indent=1) if ns.json else lm.info.summary())
    return 0


def cmd_download_flores(ns) -> int:
    from .method.data import download_flores

    path = download_flores(ns.dest, url=ns.url)
    print(f"FLORES-200 is in {path}/flores200; set KSL_DATA_DIR={path}")
    return 0


def _add_study_commands(sub) -> None:
    """The commands that act on a whole profile: run its notebooks, build its book, see where its runs stand."""
    r = sub.add_parser("run", help="execute the study's notebooks for a profile (papermill)",
                       description="Execute the notebooks of profiles/PROFILE.yaml with papermill into "
                       "book/results/PROFILE/. Finished runs are reused, so an interrupted profile resumes.")
    r.add_argument("--profile", required=True, help="a profile name, looked up as profiles/NAME.yaml in the current "
                   "folder, then in the checkout (smoke, default, paper), or a path to a profile YAML file")
    from .report.profiles import ORDER
    r.add_argument("--only", action="append", metavar="NOTEBOOK",
                   help=f"run only this notebook (repeatable, or comma-separated), in the study's order: {', '.join(ORDER)}")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument("--executor", choices=("serial", "ray"), default=None,
                   help="serial (the default: one run after another) or ray: each stage's independent runs as Ray "
                   "tasks, with the profile's resources: per run kind (needs the ray extra)")
    r.add_argument("--address", default=None, help="with --executor ray: a Ray cluster to join (e.g. HEAD:6379 or "
                   "auto); without it one local Ray instance starts for the run, and every notebook's kernel joins it")
    r.add_argument("--workers", type=int, default=None, help="with --executor ray: the CPUs of the local instance "
                   "(default: all), or on a cluster the most tasks in flight at once")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser("book", help="build a small book of one profile's executed pages (e.g. your own profile)",
                       description="Build the pages `kslottery run --profile PROFILE` wrote into "
                       "book/results/PROFILE/ as a book of their own, in _build/profile-PROFILE/ (the study's book, "
                       "`make book`, shows the default and smoke profiles).")
    b.add_argument("--profile", required=True, help="a profile name or a path to a profile YAML file")
    b.set_defaults(func=cmd_book)

    st = sub.add_parser("status", help="where a long run stands: finished runs, unfinished ones and how far they got",
                        description="List the runs folder: finished runs per kind with the compute they recorded, and "
                        "every unfinished run (.partial) with its last optimizer step, how long ago it last wrote, and "
                        "whether a live process is computing it. Reads only; starts nothing.")
    st.add_argument("--runs-dir", default=None, help="where run directories live (default: $KSL_RUNS or ./runs)")
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    st.add_argument("--profile", default=None, help="also compare the finished runs with this profile's fair-test "
                    "plan: tuning steps and scored sentences done of those planned, and the hours left at the rates "
                    "its runs recorded")
    st.set_defaults(func=cmd_status)

    a = sub.add_parser("archive", help="keep finished runs without their weights in a folder git can hold, or restore "
                       "them", description="pack: copy every finished run of the runs folder that the archive lacks "
                       "into it, leaving out each tune run's files over --max-mib (weights: read only to compute "
                       "another run), listed with their sha256 in LEFT_OUT.json. restore: copy the archived runs the "
                       "runs folder lacks into it; a restored tune run whose weights are read computes them again "
                       "under the same name. A study longer than one sitting survives a lost runs folder this way.")
    a.add_argument("action", choices=("pack", "restore"))
    a.add_argument("--archive", default="archive", help="the archive folder (default: ./archive)")
    a.add_argument("--runs-dir", default=None, help="where run directories live (default: $KSL_RUNS or ./runs)")
    a.add_argument("--max-mib", type=float, default=None, help="pack: leave out tune-run files larger than this "
                   "(default: 2)")
    a.set_defaults(func=cmd_archive)

    su = sub.add_parser("summary", help="what a profile's published pages found: verdicts, comparisons, lrs, cost",
                        description="Print, from book/results/PROFILE/ (what `kslottery run` published), the verdict "
                        "of each claim, the fair test's comparisons with both 95 %% intervals and their outcomes, the "
                        "learning rate chosen for each arm family, the exposure control per seed, and the commits, "
                        "compute and peak memory of the pages. Reads only; needs no runs folder.")
    su.add_argument("--profile", required=True, help="a profile whose pages were executed (smoke, default, ...)")
    su.set_defaults(func=cmd_summary)


def build_parser() -> argparse.ArgumentParser:
    from .method.data import FLORES_URL
    from .method.evaluate import EvalConfig

    p = argparse.ArgumentParser(prog="kslottery", description="Reproduce and audit KS-Lottery "
                                "(certified lottery tickets for multilingual LMs).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    e = sub.add_parser("evaluate", help="score a model on FLORES under every extraction rule",
                       description="Generate translations for a FLORES pair and score them (BLEU, chrF++, "
                       "spBLEU where available) under every extraction rule, with EOS and cap rates. "
                       "The result lands in a run directory named by a hash of the parameters; the same "
                       "command again is answered from it.")
    add_config_args(e, EvalConfig)

    from .method.discovery import DiscoveryConfig
    from .method.transfer import TransferConfig
    from .method.tuning import TuneConfig

    t = sub.add_parser("tune", help="tune a model: embed, full, lora, prefix or rows (partial tuning)",
                       description="Train on FLORES (or a TSV) with one Accelerate loop; checkpoints resume an "
                       "interrupted run. embed/rows write the changed rows (and rows a PEFT TrainableTokens "
                       "adapter); lora/prefix a PEFT adapter; full the whole model. Several processes: "
                       "`accelerate launch -m kslottery.cli tune ...` or `torchrun ... -m kslottery.cli tune ...`.")
    add_config_args(t, TuneConfig)
    k = sub.add_parser("ks", help="KS ticket discovery on an embed-mode tune run",
                       description="Two-sample KS test on every embedding row before vs after tuning; writes "
                       "tickets under the alpha, bonferroni and bh rules at ALPHA and the topk rule at K.")
    add_config_args(k, DiscoveryConfig)
    x = sub.add_parser("transfer", help="partial transfer: paste a ticket's tuned rows into the base model",
                       description="Paste the ticket rows of an embed-mode tune run into the base model "
                       "(or a norm-matched random delta, or a scaled one), as a run to evaluate with --tuned.")
    add_config_args(x, TransferConfig)
    for parser, func in ((e, cmd_evaluate), (t, cmd_tune), (k, cmd_ks), (x, cmd_transfer)):
        parser.add_argument("--runs-dir", default=None, help="where run directories live (default: $KSL_RUNS or ./runs)")
        parser.add_argument("--no-wait", action="store_true", help="when another process is computing the same "
                            "run, exit (status 2, naming it) instead of waiting to reuse it (or set KSL_NO_WAIT=1)")
        parser.set_defaults(func=func)
    for parser in (e, t):
        parser.add_argument("--quiet", action="store_true", help="no progress bars")

    _add_study_commands(sub)

    m = sub.add_parser("models", help="list presets, or load a model spec and describe it",
                       description="Without SPEC: list the presets. With SPEC: load it (dequantizing and "
                       "caching a preset on first use) and print vocabulary, hidden size, parameters, tying.")
    m.add_argument("spec", nargs="?", help="model spec (preset, tiny:<preset>, directory, .gguf, hub id)")
    m.add_argument("--untie", action="store_true", help="untie the output head (frozen copy) before describing")
    m.add_argument("--json", action="store_true", help="print the description as JSON")
    m.add_argument("--allow-pickle", action="store_true", help="let a local model directory load pickle weights "
                   "(*.bin, *.pt), which can run code: only for files you trust")
    m.add_argument("--quiet", action="store_true", help="no progress bars")
    m.set_defaults(func=cmd_models)

    d = sub.add_parser("download-flores", help="download the official FLORES-200 tarball (needs the network)",
                       description="Download and unpack FLORES-200 dev/devtest into DEST/flores200.")
    d.add_argument("dest", help="folder to hold flores200/")
    d.add_argument("--url", default=FLORES_URL, help="tarball URL (default: the official release)")
    d.set_defaults(func=cmd_download_flores)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    if getattr(ns, "no_wait", False):   # read where the run's lock is taken (method.runs.Run.claim)
        os.environ["KSL_NO_WAIT"] = "1"
    try:
        return ns.func(ns)
    except KSLError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted: rerun the same command to resume", file=sys.stderr)
        return 130
    except OSError as e:   # a write the disk had no room for, wherever it happened: one line, not a traceback
        if not no_space(e):
            raise
        print(f"error: {disk_full(e.filename or getattr(ns, 'runs_dir', None) or 'the runs directory')}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Run profiles: execute the study's notebooks with papermill, parameters from ``profiles/NAME.yaml``.

    kslottery run --profile smoke [--only baseline_and_prompts]
    kslottery run --profile path/to/mine.yaml          # a profile of your own (see profile_schema)

Executed notebooks land in ``book/results/<profile>/`` (written to a temporary name, renamed when the
notebook finished). The experiments inside reuse hash-named run directories, so a rerun after an
interruption redoes only what had not finished.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import time
from pathlib import Path

from ..method import sittings
from ..method.errors import KSLError
from ..method.runs import finished, git_commit, machine, runs_root, versions, write_json
from ..study.executor import environ, environment
from ..study.results import repo_root
from .profile_lock import profile_lock
from .profile_schema import ORDER, Profile, check_parameters, find_profile, open_profile, read_profile
from .tables import publish
from .timeline import design_timeline, timeline_lines

__all__ = ["ORDER", "load_profile", "notebook_parameters", "run_profile"]


def load_profile(spec: str, root: Path | None = None) -> dict:
    """The profile named ``spec`` (or the file it is a path to), checked against the schema."""
    return read_profile(find_profile(spec, root or repo_root()))


def notebook_parameters(prof: dict, notebook: str, profile: str) -> dict:
    """What papermill passes to ``notebook`` (as :meth:`Profile.parameters`)."""
    return {"profile": profile, **(prof.get("common") or {}), **(prof["notebooks"].get(notebook) or {})}


def plan(spec: str, only: list[str] | None, root: Path) -> tuple[str, dict, list[str]]:
    """Everything checked before a folder is created or a kernel starts: the profile's name (its file's
    stem), the profile, and the notebooks to run, each with parameters its parameters cell declares."""
    prof, todo = checked(spec, only, root)
    return prof.name, prof.settings, todo


def checked(spec: str, only: list[str] | None, root: Path) -> tuple[Profile, list[str]]:
    """:func:`plan`, with the profile as :class:`~kslottery.report.profile_schema.Profile` (name, home)."""
    prof = open_profile(spec, root)
    only = [name.strip() for item in (only or []) for name in item.split(",") if name.strip()]   # a,b or repeated
    available = [nb for nb in ORDER if nb in prof.notebooks]
    todo = [nb for nb in available if not only or nb in only]
    if only and set(only) - set(todo):
        raise KSLError(f"profile {prof.name} has no notebook {sorted(set(only) - set(todo))}",
                       f"choose from {', '.join(available)}")
    for nb in todo:
        check_parameters(prof.parameters(nb), root / "notebooks" / f"{nb}.ipynb", prof.path)
    return prof, todo


RECORDER_TAG = "ksl-run-recorder"


def with_recorder(src: Path, dst: Path, log: Path, profile_file: Path | None = None) -> None:
    """A copy of the notebook whose first cell tells the kernel where to record the runs it uses (an argument
    of :func:`kslottery.report.kernel.setup`, not an environment variable), and which quiets third-party warnings."""
    import nbformat

    nb = nbformat.read(src, as_version=4)
    args = repr(str(log)) + (f", {str(profile_file.resolve())!r}" if profile_file is not None else "")
    cell = nbformat.v4.new_code_cell(f"from kslottery.report.kernel import setup\nsetup({args})")
    cell.metadata["tags"] = [RECORDER_TAG, "remove-cell"]
    nb.cells.insert(0, cell)
    nbformat.write(nb, dst)


PLUMBING_TITLE = "[Plumbing test] "
PLUMBING_BANNER = ("```{{admonition}} Plumbing test on a tiny random model: not results\n:class: warning plumbing\n"
                   "This page comes from the `{profile}` profile: {description}. It shows that the notebook runs end "
                   "to end; its numbers, figures and verdict words carry no information about KS-Lottery. The "
                   "results are the [default profile's pages](../../results.md).\n```")
BANNER_TAG, RERUN_TAG = "ksl-plumbing-banner", "ksl-rerun"


def is_plumbing(prof: dict) -> bool:
    """A profile whose file declares ``plumbing: true`` (the smoke profile): its pages are quarantined."""
    return bool(prof.get("plumbing"))


def rerun_note(profile: str, notebook: str, entry: dict | None) -> str:
    """The "how to rerun this page" admonition: the command, and what the page cost from its provenance."""
    lines = ["```{admonition} How to rerun this page", ":class: dropdown tip",
             f"`kslottery run --profile {profile} --only {notebook}` re-executes this page and writes it back here "
             f"(`kslottery run --profile {profile}`: every page of the profile); finished runs under `runs/` are reused."]
    if entry:
        where = entry.get("machine") and _describe(entry["machine"])
        lines.append(f"Its last execution took {entry['execution_s'] / 60:.1f} min; from scratch its runs cost "
                     f"{entry['compute_s'] / 60:.1f} min of compute" + (f" on {where}" if where else "") +
                     f" (commit `{_short(entry.get('git_commit'))}`; [provenance](provenance.md)).")
    return "\n".join(lines + ["```"])


def label_page(nb, profile: str, prof: dict, notebook: str, entry: dict | None = None):
    """The page as the book shows it (idempotent, outputs untouched): for a plumbing profile, the title prefixed
    with "[Plumbing test] ", a warning banner right under it and the page kept out of the book's search
    (notebook metadata ``nosearch``, read by Sphinx); for every profile, the how-to-rerun admonition."""
    import nbformat

    nb.cells = [c for c in nb.cells if not {BANNER_TAG, RERUN_TAG} & set(c.metadata.get("tags", []))]
    at = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("# ")), None)
    if at is None:
        return nb
    head, _, rest = nb.cells[at].source.partition("\n")
    added = []
    if is_plumbing(prof):
        if not head.startswith("# " + PLUMBING_TITLE):
            head = "# " + PLUMBING_TITLE + head[2:]
        added.append((BANNER_TAG, PLUMBING_BANNER.format(profile=profile, description=prof.get("description", ""))))
        nb.metadata["nosearch"] = True
    added.append((RERUN_TAG, rerun_note(profile, notebook, entry)))
    nb.cells[at].source = head
    cells = []   # fixed cell ids: labelling a page again changes nothing
    for tag, text in added:
        cells.append(nbformat.v4.new_markdown_cell(text, id=tag, metadata={"tags": [tag]}))
    if rest.strip():
        title_id = nb.cells[at].get("id") or "title"
        cells.append(nbformat.v4.new_markdown_cell(rest.lstrip("\n"), id=f"{title_id[:50]}-text"))
    nb.cells[at + 1:at + 1] = cells
    return nb


def without_recorder(executed: Path, dst: Path, profile: str | None = None, prof: dict | None = None,
                     entry: dict | None = None) -> None:
    """The executed notebook as published: the runner's own first cell removed, the profile's parameters
    (papermill's injected cell) collapsed like every other input (the provenance page lists them too), and
    figure names prefixed with the profile, since every profile publishes the same notebooks into one book
    and a figure's name is a label the whole book shares; then labelled by :func:`label_page` (``prof``, the
    profile's settings, and ``entry``, the notebook's provenance)."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    nb.cells = [c for c in nb.cells if RECORDER_TAG not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            cell.metadata["tags"] = tags + ["hide-input"]
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        if profile and figure.get("name") and not figure["name"].startswith(f"{profile}-"):
            figure["name"] = f"{profile}-{figure['name']}"
    if profile and prof is not None:
        label_page(nb, profile, prof, dst.stem, entry)
    tmp = dst.with_name(dst.name + ".tmp")
    nbformat.write(nb, tmp)
    tmp.replace(dst)


def relabel(profile: str, root: Path | None = None) -> list[Path]:
    """Label a profile's executed pages again (banner, title, rerun note) without executing anything: for pages
    executed before the labels existed. Outputs are untouched."""
    import nbformat

    root = root or repo_root()
    prof, out_dir = load_profile(profile, root), root / "book" / "results" / profile
    prov_path = out_dir / "provenance.json"
    prov = current(json.loads(prov_path.read_text()) if prov_path.exists() else {}, prof)
    done = []
    for nb_name in ORDER:
        path = out_dir / f"{nb_name}.ipynb"
        if path.exists():
            nb = nbformat.read(path, as_version=4)
            nbformat.write(label_page(nb, profile, prof, nb_name, prov.get(nb_name)), path)
            done.append(path)
    if prov:
        (out_dir / "provenance.md").write_text(provenance_page(profile, prov, prof))
        done.append(out_dir / "provenance.md")
    return done


def run_profile(spec: str, only: list[str] | None = None, root: Path | None = None, progress: bool = True,
                executor: str | None = None, address: str | None = None, workers: int | None = None) -> list[Path]:
    """Execute the profile's notebooks into ``book/results/<name>/`` of its home (the checkout for the
    package's own profiles, else the folder the user works in), one run of a profile at a time; ``executor``
    ("ray", with a cluster ``address`` or a local instance of ``workers`` CPUs) reaches each kernel through its
    environment (:func:`kslottery.study.executor.environment`)."""
    root = root or repo_root()
    prof, todo = checked(spec, only, root)
    os.environ.setdefault("KSL_RUNS", str(root / "runs"))
    with environ(environment(executor, address, workers, prof.resources)), profile_lock(prof) as partial:
        return [_execute_notebook(prof, nb, root, partial, progress) for nb in todo]


class _KernelDeathNoise(logging.Filter):
    """A dead kernel is said once, by this module (a one-line error, or the Ctrl-C line): not again by nbclient's
    log ("Kernel died while waiting for execute reply") and by asyncio ("Task exception was never retrieved")
    when Ctrl-C stopped papermill while it waited on the kernel, which happens on some interrupts and not others."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not (record.getMessage().startswith("Kernel died") or type(exc).__name__ == "DeadKernelError")


_QUIET = _KernelDeathNoise()


def _execute_notebook(prof: Profile, nb: str, root: Path, partial: Path, progress: bool) -> Path:
    import papermill as pm
    from nbclient.exceptions import DeadKernelError

    for name in ("papermill", "asyncio"):
        if _QUIET not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_QUIET)

    profile, out_dir = prof.name, prof.pages
    src = root / "notebooks" / f"{nb}.ipynb"
    params = prof.parameters(nb)
    # Executed outside the book's source tree until finished, so a book build never sees a half notebook.
    tmp = partial / f"{nb}.ipynb"
    t0 = time.time()
    commit = git_commit()   # the code the notebook runs: a commit made while it runs is not its commit
    print(f"[{profile}] {nb} ...", flush=True)
    log = tmp.with_suffix(".runs")
    log.unlink(missing_ok=True)
    staged = tmp.with_suffix(".in.ipynb")
    with_recorder(src, staged, log, prof.path)
    # The kernel's log says, on every notebook, that it talks to papermill over TCP without encryption (both
    # ends are this machine's loopback), and on Ctrl-C a ZMQ traceback from the socket papermill closed: only
    # critical messages are shown. A cell's error reaches the user through papermill, not this log.
    try:
        pm.execute_notebook(str(staged), str(tmp), parameters=params, cwd=str(root / "notebooks"),
                            progress_bar=progress, kernel_name="python3",
                            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except BaseException as e:   # a failed or interrupted notebook leaves nothing half-written behind
        for path in (staged, tmp, log):
            path.unlink(missing_ok=True)
        if isinstance(e, DeadKernelError):
            raise KSLError(f"the kernel running notebook {nb} died (out of memory? the system log says)",
                           "lower the profile's batch sizes or free memory, then rerun the same command: "
                           "finished runs are reused") from None
        raise
    staged.unlink(missing_ok=True)
    final = out_dir / f"{nb}.ipynb"
    used = list(dict.fromkeys(log.read_text().split())) if log.exists() else []
    log.unlink(missing_ok=True)
    # The kernel is a child of this process: its peak resident memory, once it has exited.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    out_dir.mkdir(parents=True, exist_ok=True)   # only now: a notebook that failed leaves no empty folder
    fixed = design_timeline(prof.path) if nb == "fair_test" else None   # are the fair test's verdicts confirmatory?
    record_provenance(out_dir, profile, nb, params, time.time() - t0, used, peak, commit=commit, prof=prof.settings,
                      design_fixed=fixed)
    entry = json.loads((out_dir / "provenance.json").read_text())[nb]
    without_recorder(tmp, final, profile, prof.settings, entry)   # the page names its own cost (rerun note)
    tmp.unlink(missing_ok=True)
    publish(profile, nb, prof.home)   # the notebook's tables into the book, so a clean clone rebuilds it
    print(f"[{profile}] {nb} done in {time.time() - t0:.0f} s -> {final}", flush=True)
    return final


def record_provenance(out_dir: Path, profile: str, notebook: str, params: dict, seconds: float,
                      used: list[str], peak_rss_gib: float | None = None, commit: str | None = None,
                      prof: dict | None = None, design_fixed: dict | None = None) -> None:
    """Keep ``provenance.json`` and the book page ``provenance.md`` of a profile up to date: per notebook
    its parameters, when it ran, its own wall-clock, the runs it used with the compute they cost, and the
    commit it was executed at (``commit``, read when it started; default: now)."""

    path = out_dir / "provenance.json"
    prov = json.loads(path.read_text()) if path.exists() else {}
    walls, signatures = {}, set()
    for name in used:
        if (run := finished(name)) is not None:
            r = run[1]
            walls[name] = sittings.wall_s(runs_root() / name, run[0], r)
            if r.get("peak_rss_gib") is not None:
                peak_rss_gib = max(peak_rss_gib or 0.0, r["peak_rss_gib"])
            for per_rule in r.get("scores", {}).values():
                signatures |= {f"{m}: {v['signature']}" for m, v in per_rule.items()
                               if isinstance(v, dict) and v.get("signature")}
    prov[notebook] = {"parameters": params, "finished": time.strftime("%Y-%m-%d %H:%M"), "execution_s": round(seconds),
                      "runs": used, "compute_s": round(sum(walls.values())), "run_wall_s": walls,
                      "signatures": sorted(signatures),
                      "peak_rss_gib": None if peak_rss_gib is None else round(peak_rss_gib, 2),
                      "git_commit": commit or git_commit(), "versions": versions(),
                      "machine": machine(), **({"design_fixed": design_fixed} if design_fixed else {})}
    prov = current(prov, prof)
    for entry in prov.values():   # every notebook, so a page written by a newer runner describes old runs too
        entry["run_machines"] = _runs_by(entry.get("runs", []), lambda s: s.get("machine") and _describe(s["machine"]))
        entry["run_commits"] = _runs_by(entry.get("runs", []), lambda s: s.get("git_commit") and _short(s["git_commit"]))
    write_json(path, prov)
    (out_dir / "provenance.md").write_text(provenance_page(profile, prov, prof))


def current(prov: dict, prof: dict | None) -> dict:
    """The provenance of the notebooks the profile runs now. A notebook it no longer runs (a chapter its design
    retired) is not one of its pages: its entry would put an old commit and old runs' compute into the profile's
    one execution."""
    return prov if prof is None else {nb: e for nb, e in prov.items() if nb in prof.get("notebooks", {})}


def _describe(m: dict) -> str:
    return (f"{m['processor']}, {m['cpus']} CPUs, {m['torch_threads']} torch threads, GPU: {m['cuda'] or 'none'} "
            f"({m['platform']})")


def _runs_by(used: list[str], key) -> dict[str, list[str]]:
    """The runs grouped by ``key`` of each sitting a run recorded (its machine, its commit; a resumed run: each)."""
    out: dict[str, list[str]] = {}
    for name in used:
        for k in dict.fromkeys(filter(None, map(key, sittings.of(run[0])))) if (run := finished(name)) else ():
            out.setdefault(k, []).append(name)
    return out


def _short(commit: str | None) -> str:
    if not commit:
        return "unknown"
    return commit[:12] + ("-dirty" if commit.endswith("-dirty") else "")


def commit_warning(prov: dict, order: list[str]) -> list[str]:
    """A visible warning when the pages were not all executed at one clean commit (empty when they were)."""
    commits = {nb: prov[nb].get("git_commit") for nb in order}
    distinct = sorted({_short(c) for c in commits.values()})
    dirty = [nb for nb, c in commits.items() if not c or c.endswith("-dirty")]
    if len(distinct) <= 1 and not dirty:
        return []
    text = (f"These pages were executed at {len(distinct)} commits ({', '.join(f'`{c}`' for c in distinct)})"
            + (f"; {', '.join(dirty)} from a tree with uncommitted code changes" if dirty else "")
            + ". A page shows what the code of its own commit computed; the profile as a whole is not one "
              "clean execution until it is re-run at a single commit.")
    return ["```{warning}", text, "```", ""]


def totals(prov: dict) -> dict:
    """Commits, distinct runs, their compute and the largest peak RSS over a profile's pages."""
    order = [nb for nb in ORDER if nb in prov]
    # Notebooks share runs (the headline's arms are the audit's): the total counts each run once.
    walls = {name: w for nb in order for name, w in prov[nb].get("run_wall_s", {}).items()}
    rss = [prov[nb]["peak_rss_gib"] for nb in order if prov[nb].get("peak_rss_gib") is not None]
    return {"notebooks": len(order), "commits": sorted({_short(prov[nb].get("git_commit")) for nb in order}),
            "runs": len(walls), "compute_s": sum(walls.values()), "peak_rss_gib": max(rss, default=None)}


PROVENANCE_CAPTION = ("Each notebook of the profile: when it last finished, the wall-clock of that execution, its peak "
                      "memory, the runs it used and the compute they cost, and the commit it was executed at")


def provenance_page(profile: str, prov: dict, prof: dict | None = None) -> str:
    """The provenance page; a plumbing profile's (``prof``, its settings) is labelled like its other pages."""
    order = [nb for nb in ORDER if nb in prov]
    plumbing = prof is not None and is_plumbing(prof)
    banner = ["---", "nosearch: true", "---", ""] if plumbing else []
    lines = banner + [f"# {PLUMBING_TITLE if plumbing else ''}Provenance: profile `{profile}`", "",
             f"Written by `kslottery run --profile {profile}` after each notebook. *Execution* is the wall-clock",
             "of the notebook's last execution (short when it reused finished runs); *compute* sums the",
             "wall-clock recorded by every run it used, i.e. what it costs from scratch on the machine named.", "",
             "*Peak RSS* is the largest resident memory recorded by the runs it used and by its last execution.", "",
             # a captioned table (MyST's table directive), like every table of the book's results pages
             f"```{{table}} {PROVENANCE_CAPTION}", f":name: provenance-{profile}", "",
             "| notebook | finished | execution | peak RSS | runs used | compute | git commit |",
             "|---|---|---|---|---|---|---|"]
    total = totals(prov)["compute_s"]
    for nb in order:
        e = prov[nb]
        rss = "—" if e.get("peak_rss_gib") is None else f"{e['peak_rss_gib']:.1f} GiB"
        lines.append(f"| {nb} | {e['finished']} | {e['execution_s'] / 60:.1f} min | {rss} | {len(e['runs'])} | "
                     f"{e['compute_s'] / 60:.1f} min | `{_short(e['git_commit'])}` |")
    lines.append(f"| **all** (each shared run once) | | | | | **{total / 3600:.2f} h** | |")
    lines.append("```")
    at = len(banner) + 2
    lines[at:at] = commit_warning(prov, order)
    if plumbing:
        lines[at:at] = [PLUMBING_BANNER.format(profile=profile, description=prof.get("description", "")), ""]
    last = prov[order[-1]] if order else {}
    if last:
        # the compute above was spent where each run ran, which need not be where the notebook last ran
        executed = sorted({_describe(prov[nb]["machine"]) for nb in order})
        lines += ["", "Notebooks executed on: " + "; ".join(executed) + "."]
        # a run is computed once and reused: where and at which commit it was computed need not be the pages'
        for field, what in (("run_machines", "Runs computed on"), ("run_commits", "Runs computed at commits")):
            by: dict[str, set] = {}
            for nb in order:
                for k, names in prov[nb].get(field, {}).items():
                    by.setdefault(k, set()).update(names)
            if by:
                shown = {d: f"`{d}`" if field == "run_commits" else d for d in by}
                counted = [f"{shown[d]} ({len(n)} run{'' if len(n) == 1 else 's'})" for d, n in sorted(by.items())]
                lines += ["", f"{what}: " + "; ".join(counted) + "."]
        lines += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in last["versions"].items()) + "."]
    for nb in (nb for nb in order if prov[nb].get("design_fixed")):
        lines += ["", *timeline_lines(prov[nb]["design_fixed"], f"design-fixed-{profile}")]
    sigs = sorted({sig for nb in order for sig in prov[nb].get("signatures", [])})
    if sigs:
        lines += ["", "sacrebleu signatures of every score:", ""] + [f"- `{sig}`" for sig in sigs]
    for nb in order:
        params = "\n".join(f"{k}: {json.dumps(v)}" for k, v in prov[nb]["parameters"].items())
        lines += ["", f"## {nb}", "", "```yaml", params, "```", "", "Runs: " +
                  (", ".join(f"`{r}`" for r in prov[nb]["runs"]) or "none")]
    return "\n".join(lines) + "\n"

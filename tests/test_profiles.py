import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kslottery.method.errors import KSLError
from kslottery.report import profiles
from kslottery.study import results


@pytest.mark.parametrize("name", ["smoke", "default", "paper"])
def test_profiles_parse_and_match_notebook_parameters(name):
    import papermill as pm

    prof = profiles.load_profile(name)
    for nb in prof["notebooks"]:
        declared = pm.inspect_notebook(str(results.repo_root() / "notebooks" / f"{nb}.ipynb"))
        assert set(profiles.notebook_parameters(prof, nb, name)) <= set(declared), nb
    # the schema (names, and types against each notebook's defaults) accepts the study's own profiles
    assert profiles.plan(name, None, results.repo_root())[2] == [nb for nb in profiles.ORDER if nb in prof["notebooks"]]


def test_unknown_profile_and_notebook(tmp_path):
    with pytest.raises(KSLError, match=r"unknown profile 'huge' \(looked for huge.yaml in .*; use one of default, "
                       "paper, smoke, or pass --profile path/to/huge.yaml"):
        profiles.load_profile("huge")
    with pytest.raises(KSLError, match=r"has no notebook \['nope'\]; choose from baseline_and_prompts, budget_sweep"):
        profiles.run_profile("smoke", only=["six_pairs,nope"])


def test_unknown_parameter_is_refused_before_running(tmp_path):
    root = tmp_path
    (root / "profiles").mkdir()
    (root / "notebooks").mkdir()
    src = results.repo_root() / "notebooks" / "baseline_and_prompts.ipynb"
    (root / "notebooks" / src.name).write_bytes(src.read_bytes())
    (root / "profiles" / "bad.yaml").write_text(yaml.safe_dump(
        {"common": {"model": "tiny:smollm2-135m"}, "notebooks": {"baseline_and_prompts": {"temperature": 0.7}}}))
    with pytest.raises(KSLError, match=r"passes \['temperature'\] to baseline_and_prompts"):
        profiles.run_profile("bad", root=root)
    assert not (root / "book" / "results" / "bad").exists()   # checked before the folder is made


def test_run_help():
    r = subprocess.run([sys.executable, "-m", "kslottery.cli", "run", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "--profile" in r.stdout


def test_provenance_page_sums_the_compute_of_the_runs_a_notebook_used(tmp_path, monkeypatch):
    from kslottery.method.runs import Run, record_runs_to, write_manifest

    monkeypatch.setenv("KSL_RUNS", str(tmp_path / "runs"))
    log = tmp_path / "used.runs"
    record_runs_to(log)
    names = []
    for i, wall in enumerate([90.0, 30.0]):
        run = Run("eval", {"i": i})
        run.start()
        path = run.finish({"x": i})
        rec = path / "record.json"
        rec.write_text(rec.read_text().replace(f'"wall_s": {json.loads(rec.read_text())["wall_s"]}', f'"wall_s": {wall}'))
        write_manifest(path)   # the run as if it had taken that long (its manifest matches again)
        names.append(run.name)
    record_runs_to(None)
    Run("eval", {"i": 99})                  # named after recording stopped: not in the log
    used = log.read_text().split()
    assert used == names
    out = tmp_path / "book"
    out.mkdir()
    profiles.record_provenance(out, "default", "certification", {"model": "gemma3-270m", "sizes": [1, 18]}, 12.3, used)
    profiles.record_provenance(out, "default", "baseline_and_prompts", {"limit": 100}, 60.0, used[:1])
    page = (out / "provenance.md").read_text()
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["certification"]["compute_s"] == 120 and prov["certification"]["runs"] == names
    # notebooks appear in the study's order, with the total of all compute
    assert page.index("| baseline_and_prompts |") < page.index("| certification |")
    assert "| certification |" in page and " GiB | 2 | 2.0 min |" in page and "**0.03 h**" in page
    assert prov["certification"]["peak_rss_gib"] > 0
    # the run both notebooks used counts once in the total: 120 s, not 210 s
    assert 'sizes: [1, 18]' in page
    # the table is captioned and named like every table of the results pages (MyST's table directive)
    table = page[page.index("```{table}"):]
    assert table.startswith(f"```{{table}} {profiles.PROVENANCE_CAPTION}\n:name: provenance-default\n\n| notebook |")
    assert table.index("| **all** (each shared run once) |") < table.index("\n```\n")
    # each run states the machine that computed it, e.g. one computed on a GPU machine and reused here
    params = tmp_path / "runs" / names[1] / "params.json"
    p = json.loads(params.read_text())
    gpu = {"machine": {**p["machine"], "cpus": 16, "cuda": "NVIDIA H200"}, "git_commit": "0123456789abcdef0123"}
    params.write_text(json.dumps({**p, **gpu, "sittings": [{**s, **gpu} for s in p["sittings"]]}))
    write_manifest(params.parent)
    profiles.record_provenance(out, "default", "baseline_and_prompts", {"limit": 100}, 60.0, used[:1])
    page = (out / "provenance.md").read_text()
    runs_line = next(line for line in page.splitlines() if line.startswith("Runs computed on:"))
    assert "16 CPUs, " in runs_line and "GPU: NVIDIA H200" in runs_line and runs_line.count("(1 run)") == 2
    # ... and the commit it was computed at, which need not be the pages' own
    commits = next(line for line in page.splitlines() if line.startswith("Runs computed at commits:"))
    assert "`0123456789ab` (1 run)" in commits and commits.count("(1 run)") == 2
    executed = next(line for line in page.splitlines() if line.startswith("Notebooks executed on:"))
    assert f"{os.cpu_count()} CPUs" in executed
    # a chapter the profile's design retired leaves its provenance: one execution, one commit, its own runs only
    prov = json.loads((out / "provenance.json").read_text())
    prov["certification"]["git_commit"] = "7aba696b1b83be87034e941b3cf1c1d87ac54f2a"
    (out / "provenance.json").write_text(json.dumps(prov))
    profiles.record_provenance(out, "default", "baseline_and_prompts", {"limit": 100}, 60.0, used[:1],
                               prof={"notebooks": {"baseline_and_prompts": {}}})
    assert list(json.loads((out / "provenance.json").read_text())) == ["baseline_and_prompts"]
    page = (out / "provenance.md").read_text()
    assert "| certification |" not in page and "7aba696" not in page
    assert profiles.totals(json.loads((out / "provenance.json").read_text()))["compute_s"] == 90


def test_the_runner_records_runs_through_its_own_cell_and_publishes_without_it(tmp_path):
    import nbformat

    src = tmp_path / "nb.ipynb"
    injected = nbformat.v4.new_code_cell("# Parameters\nlimit = 4", metadata={"tags": ["injected-parameters"]})
    figure = nbformat.v4.new_code_cell("fig = 1", metadata={"mystnb": {"figure": {"name": "fig-x", "caption": "c"}}})
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), injected, figure]), src)
    staged, log = tmp_path / "staged.ipynb", tmp_path / "nb.runs"
    profiles.with_recorder(src, staged, log)
    first = nbformat.read(staged, as_version=4).cells[0]
    assert f"setup({str(log)!r})" in first.source and "remove-cell" in first.metadata["tags"]
    exec(first.source, {})                 # what the kernel runs first
    from kslottery.method.runs import Run, record_runs_to
    try:
        name = Run("eval", {"probe": 1}, tmp_path / "runs").name
    finally:
        record_runs_to(None)
    assert log.read_text().split() == [name]
    published = tmp_path / "published.ipynb"
    profiles.without_recorder(staged, published, "smoke")
    cells = nbformat.read(published, as_version=4).cells
    assert [c.source for c in cells] == ["x = 1", "# Parameters\nlimit = 4", "fig = 1"]
    assert cells[1].metadata["tags"] == ["injected-parameters", "hide-input"]   # collapsed like every input
    # both profiles publish the same notebook into one book: a figure's label must differ between them
    assert cells[2].metadata["mystnb"]["figure"]["name"] == "smoke-fig-x"


def test_refactors_keep_the_smoke_run_names(flores_dir):
    """Options added later (own data files, decoding paths) must not rename the runs the smoke profile made:
    the names its provenance recorded are recomputed from the prompts chapter's parameters."""
    from pathlib import Path

    from kslottery.method import data, evaluate
    from kslottery.method.runs import Run

    prov = json.loads((Path(__file__).resolve().parents[1] / "book/results/smoke/provenance.json").read_text())
    p = prov["baseline_and_prompts"]["parameters"]
    recorded = set(prov["baseline_and_prompts"]["runs"])
    names = set()
    for pair in p["pairs"]:
        for template in p["templates"]:
            e = evaluate.EvalConfig(model=p["model"], pair=pair, template=template, limit=p["limit"],
                                    max_new_tokens=p["max_new_tokens"], batch_size=p.get("batch_size", 32),
                                    drop_finished=p.get("drop_finished", False))
            names.add(Run("eval", evaluate.run_params(e, data.load_flores(pair, "devtest", p["limit"]))).name)
    assert names == recorded


def test_provenance_page_warns_when_pages_come_from_several_or_dirty_commits():
    from kslottery.report.profiles import provenance_page

    def entry(commit):
        m = {"processor": "x86_64", "cpus": 2, "torch_threads": 2, "cuda": None, "platform": "Linux"}
        return {"parameters": {}, "finished": "2026-11-30 15:00", "execution_s": 60, "runs": [], "compute_s": 60,
                "git_commit": commit, "versions": {"torch": "2.13.0"}, "machine": m}

    one = provenance_page("default", {"six_pairs": entry("a" * 40), "certification": entry("a" * 40)})
    assert "{warning}" not in one
    mixed = provenance_page("default", {"six_pairs": entry("a" * 40), "certification": entry("b" * 40 + "-dirty")})
    assert "```{warning}" in mixed and "executed at 2 commits" in mixed and "certification from a tree" in mixed


def test_revision_markers_join_a_run_name_only_when_given(tmp_path):
    from kslottery.method.runs import Run

    params = {"tuned": "tune-0123", "n": 64}
    plain, revised = Run("cert", params, tmp_path), Run("cert", params, tmp_path, revisions={"table_version": 2})
    assert plain.name == Run("cert", dict(params), tmp_path, revisions={}).name
    # the marker names the run exactly as the hand-patched parameters once did (cached runs keep their names)
    assert revised.name == Run("cert", {**params, "table_version": 2}, tmp_path).name != plain.name
    with pytest.raises(ValueError, match="clash"):
        Run("cert", params, tmp_path, revisions={"n": 128})


def _page(title_cell: str):
    import nbformat

    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_markdown_cell(title_cell),
                                           nbformat.v4.new_code_cell("y = 2")])


def test_a_plumbing_profile_labels_its_pages_and_a_results_profile_does_not():
    from kslottery.report import profiles

    smoke = profiles.load_profile("smoke")
    assert profiles.is_plumbing(smoke) and not profiles.is_plumbing(profiles.load_profile("default"))
    entry = {"execution_s": 90, "compute_s": 600, "git_commit": "0123456789abcdef", "machine": None}
    nb = profiles.label_page(_page("# The budget sweep\n\nIntro text."), "smoke", smoke, "budget_sweep", entry)
    sources = [c.source for c in nb.cells]
    assert sources[1] == "# [Plumbing test] The budget sweep"
    assert "Plumbing test on a tiny random model: not results" in sources[2] and ":class: warning plumbing" in sources[2]
    assert "kslottery run --profile smoke --only budget_sweep" in sources[3] and "10.0 min of compute" in sources[3]
    assert sources[4] == "Intro text." and sources[5] == "y = 2" and nb.metadata["nosearch"] is True
    again = profiles.label_page(nb, "smoke", smoke, "budget_sweep", entry)   # idempotent
    assert [c.source for c in again.cells] == sources
    plain = profiles.label_page(_page("# The budget sweep\n\nIntro text."), "default", profiles.load_profile("default"),
                                "budget_sweep", None)
    assert plain.cells[1].source == "# The budget sweep" and "nosearch" not in plain.metadata
    assert not any("Plumbing" in c.source for c in plain.cells)
    assert "kslottery run --profile default --only budget_sweep" in plain.cells[2].source


def test_every_published_smoke_page_carries_its_banner():
    """The executed smoke pages in the book (relabelled by profiles.relabel, or written by the runner)."""
    import nbformat

    from kslottery.report import profiles

    pages = sorted((Path(__file__).resolve().parents[1] / "book/results/smoke").glob("*.ipynb"))
    assert pages
    for page in pages:
        nb = nbformat.read(page, as_version=4)
        tags = [t for c in nb.cells for t in c.metadata.get("tags", [])]
        assert profiles.BANNER_TAG in tags and nb.metadata.get("nosearch"), page.name


def test_the_runner_publishes_a_labelled_page_that_names_its_cost(tmp_path, monkeypatch):
    """run_profile end to end with papermill stubbed: provenance first, then the page with its banner and
    rerun note (the page cites the cost provenance just recorded)."""
    import nbformat
    import papermill

    (tmp_path / "profiles").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "profiles" / "tiny.yaml").write_text(
        "description: a test\nplumbing: true\nnotebooks:\n  six_pairs:\n    limit: 2\n")
    params = nbformat.v4.new_code_cell("profile = 'x'\nlimit = 1", metadata={"tags": ["parameters"]})
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Six pairs\n\nText."), params],
                                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                     "language": "python"}}),
                   tmp_path / "notebooks" / "six_pairs.ipynb")
    monkeypatch.setenv("KSL_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda src, dst, **kw: nbformat.write(nbformat.read(src, as_version=4), dst))
    [page] = profiles.run_profile("tiny", root=tmp_path, progress=False)
    cells = nbformat.read(page, as_version=4).cells
    assert cells[0].source == "# [Plumbing test] Six pairs"
    assert profiles.BANNER_TAG in cells[1].metadata["tags"] and "a test" in cells[1].source
    assert "kslottery run --profile tiny --only six_pairs" in cells[2].source and "min of compute" in cells[2].source
    assert "[Plumbing test] Provenance" in (page.parent / "provenance.md").read_text()


# Profiles a user writes, through `kslottery run --profile FILE`: (the file's text, the one-line error). Every
# check happens before a folder is created or a kernel starts.
GOOD = "common:\n  model: tiny:smollm2-135m\nnotebooks:\n  baseline_and_prompts:\n    limit: 4\n"
BAD_PROFILES = [
    (GOOD.replace("common:", "comon:"),
     "has unknown key ['comon']; use description, common, notebooks, plumbing, protocol, resources (notebooks is required)"),
    ("common:\n  model: tiny:smollm2-135m\n", "has no notebooks key; add notebooks: with one or more of"),
    ("notebooks: [baseline_and_prompts]\n", "notebooks is a list, not a mapping; write notebooks: as a mapping"),
    (GOOD.replace("baseline_and_prompts:", "baseline_and_prompt:"), "names unknown notebook 'baseline_and_prompt'"),
    (GOOD.replace("limit:", "limt:"), "passes ['limt'] to baseline_and_prompts, which has no such parameter; use the "
     "notebook's parameters: profile, model,"),
    (GOOD.replace("  model:", "  modle:"), "passes ['modle'] to baseline_and_prompts"),
    (GOOD.replace("limit: 4", "limit: four"), "baseline_and_prompts.limit is a string ('four'), but the notebook's "
     "default is a number (4); give limit as a number"),
    (GOOD.replace("limit: 4", "templates: explicit"), "baseline_and_prompts.templates is a string ('explicit'), but "
     "the notebook's default is a list"),
    (GOOD + "  six_pairs: 3\n", "notebooks.six_pairs is a number, not a mapping"),
    ("notebooks:\n  baseline_and_prompts: {limit: 4\n", "is not valid YAML (line 3); fix the YAML syntax"),
    ("- a list\n", "is not a mapping of keys; write description, common, notebooks, plumbing, protocol, resources at the "
     "top level"),
    # the Ray executor's resources per run kind (kslottery.study.executor): checked like the rest, never evaluated
    (GOOD + "resources:\n  tune: {cpus: 0}\n", "resources.tune.cpus is 0; give a whole number of CPUs, at least 1"),
    (GOOD + "resources:\n  train: {cpus: 1}\n", "resources names unknown run kinds ['train']; use tune, eval, transfer"),
    (GOOD + "resources:\n  eval: {gpus: '__import__(\"os\")'}\n", "resources.eval.gpus is '__import__"),
]


def _run_cli(args, capsys):
    from kslottery.cli import main

    code = main(["run", *args, "--quiet"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("text,says", BAD_PROFILES, ids=[s[:40] for _, s in BAD_PROFILES])
def test_a_profile_a_user_wrote_is_checked_before_anything_runs(text, says, tmp_path, capsys):
    path = tmp_path / "mine-issue29.yaml"
    path.write_text(text)
    code, err = _run_cli(["--profile", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: profile {path}") and says in err, err
    root = results.repo_root()
    assert not (root / "book" / "results" / "mine-issue29").exists()
    assert not list((root / ".ksl-partial").glob("mine-issue29*"))


def test_a_profile_is_found_where_the_user_works(tmp_path, monkeypatch, capsys):
    """A name is looked up in ./profiles, then in the checkout; a path is used as given; an unknown name says
    where it looked."""
    root = results.repo_root()
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine-issue29.yaml").write_text(GOOD)
    (tmp_path / "elsewhere.yml").write_text(GOOD.replace("limit: 4", "limit: 2"))
    monkeypatch.chdir(tmp_path)
    name, prof, todo = profiles.plan("mine-issue29", None, root)
    assert (name, todo, prof["notebooks"]["baseline_and_prompts"]) == ("mine-issue29", ["baseline_and_prompts"],
                                                                        {"limit": 4})
    assert profiles.plan("smoke", None, root)[0] == "smoke"   # the checkout's profiles stay reachable
    assert profiles.plan(str(tmp_path / "elsewhere.yml"), None, root)[1]["notebooks"]["baseline_and_prompts"] == \
        {"limit": 2}
    code, err = _run_cli(["--profile", "nope-issue29"], capsys)
    assert code == 2 and err == (f"error: unknown profile 'nope-issue29' (looked for nope-issue29.yaml in "
                                 f"{tmp_path.resolve()}/profiles and {root.resolve()}/profiles); use one of default, "
                                 "mine-issue29, paper, smoke, or pass --profile path/to/nope-issue29.yaml\n")
    code, err = _run_cli(["--profile", "gone/mine.yaml"], capsys)
    assert code == 2 and err == "error: profile file gone/mine.yaml does not exist; check the path, or pass a " \
                                "profile NAME\n"
    assert not (root / "book" / "results" / "nope-issue29").exists()


def test_the_readme_example_profile_is_valid(tmp_path, monkeypatch):
    """The profile the README shows a user passes the schema, so copying it is a working start."""
    import re

    text = (results.repo_root() / "README.md").read_text()
    example = re.search(r"```yaml\n(# profiles/mine.yaml.*?)```", text, re.S).group(1)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(example.replace("/path/to/hf-model-dir", "tiny:smollm2-135m"))
    monkeypatch.chdir(tmp_path)
    assert profiles.plan("mine", None, results.repo_root())[2] == ["baseline_and_prompts", "budget_sweep"]


def test_a_profiles_protocol_block_is_checked_when_the_profile_is_read(tmp_path):
    from kslottery.method.errors import KSLError
    from kslottery.report.profile_schema import read_profile

    path = tmp_path / "mine.yaml"
    path.write_text("protocol:\n  seed: [0]\nnotebooks:\n  fair_test: {}\n")
    with pytest.raises(KSLError, match=r"unknown protocol keys \['seed'\]"):
        read_profile(path)
    path.write_text("protocol:\n  seeds: [0, 1]\n  secondary_seeds: [0, 1]\n  full_seeds: [0]\nnotebooks:\n  fair_test: {}\n")
    assert read_profile(path)["protocol"]["seeds"] == [0, 1]


@pytest.mark.parametrize("sweep, problem", [
    ("lrs: [0.001, 0.002]", r"budget_sweep.lrs is \[0.001, 0.002\] but the protocol's adam_lrs is \(0.005, 0.01\)"),
    ("snapshots: [1, 64]", r"budget_sweep.snapshots is \[1, 64\] but the protocol's sweep_snapshots is \(1, 2\)"),
    ("choice_rule: alpha_0.05", r"choice_rule is 'alpha_0.05' but the protocol's discovery_rule is 'bh_0.05'"),
    ("lrs: [0.005, 0.01]", None),
])
def test_the_budget_sweep_runs_what_the_protocol_states(tmp_path, sweep, problem):
    """The sweep chooses every discovery budget: a profile whose sweep runs other rates, snapshots or rule than
    its protocol states is refused in one line (the default profile once swept 1e-3 and 2e-3, which its protocol
    had cut)."""
    from kslottery.method.errors import KSLError
    from kslottery.report.profile_schema import read_profile

    path = tmp_path / "mine.yaml"
    path.write_text("protocol:\n  adam_lrs: [0.005, 0.01]\n  sweep_snapshots: [1, 2]\n  sgd_lrs: []\n"
                    f"notebooks:\n  budget_sweep:\n    {sweep}\n  fair_test: {{}}\n")
    if problem is None:
        assert read_profile(path)["notebooks"]["budget_sweep"]["lrs"] == [0.005, 0.01]
    else:
        with pytest.raises(KSLError, match=problem):
            read_profile(path)


@pytest.mark.slow
def test_a_profile_a_user_wrote_runs_and_builds_its_own_book(tmp_path, monkeypatch):
    """End to end from a temporary project: the user's profile file, `kslottery run` on it (the real notebook,
    the tiny model), then `kslottery book` on it: a book whose landing page names the profile and whose page is
    the executed notebook."""
    import shutil

    from kslottery.report import profile_book

    root = tmp_path / "project"
    for folder in ("notebooks", "book/_vendor"):
        (root / folder).mkdir(parents=True)
    shutil.copy(results.repo_root() / "notebooks" / "baseline_and_prompts.ipynb", root / "notebooks")
    for folder in ("_vendor", "_ext"):   # the study's styles and Sphinx extensions, which its config names
        shutil.copytree(results.repo_root() / "book" / folder, root / "book" / folder, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(results.repo_root() / "_config.yml", root)
    (root / "profiles").mkdir()
    (root / "profiles" / "mine.yaml").write_text(
        "description: my own check\ncommon:\n  model: tiny:smollm2-135m\nnotebooks:\n  baseline_and_prompts:\n"
        "    pairs: [eng_Latn-cat_Latn]\n    templates: [explicit]\n    limit: 2\n    max_new_tokens: 4\n")
    monkeypatch.setenv("KSL_RUNS", str(tmp_path / "runs"))
    with pytest.raises(KSLError, match="has no executed pages"):
        profile_book.build("mine", root=root)
    profiles.run_profile("mine", root=root, progress=False)
    html = profile_book.build("mine", root=root)
    index = (html / "index.html").read_text()
    assert "Profile" in index and "mine" in index and "my own check" in index
    assert (html / "results" / "mine" / "baseline_and_prompts.html").exists()
    assert (html / "results" / "mine" / "provenance.html").exists()
    # the tables the page links to are published beside it
    assert (html / "results" / "mine" / "tables" / "baseline_and_prompts" / "grid.csv").exists()

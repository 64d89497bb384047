"""Issue 44: data never runs code, and no run is half true. Each probe of the issue, as a hostile user would
write it: the exit code, the one-line message (problem; fix), that no code ran (a marker file stays absent)
and that nothing half-written remains."""

import base64
import json
from pathlib import Path

import pytest

from kslottery.cli import main
from kslottery.study import results

ROOT = results.repo_root()
MARKER = "MARKER-issue44"
# The probe of issue 44, item 1: a !!binary element closes papermill's quote and runs a shell command.
PAYLOAD = base64.b64encode(f'"+str(__import__("os").system("touch {MARKER}"))+"'.encode()).decode()
BASE = "common:\n  model: tiny:smollm2-135m\nnotebooks:\n  baseline_and_prompts:\n"
LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + BASE + "    limit: 4\n"

PROFILES = [   # (file name, text, what the one line says)
    ("probe.yaml", BASE + f"    pairs: [!!binary {PAYLOAD}]\n",
     "line 5 has the YAML tag !!binary, which profiles refuse (a profile is data: strings, numbers, booleans, null, "
     "lists and mappings; a tagged value can reach the notebook's code as something other than data); remove !!binary"),
    ("apply.yaml", BASE + f'    limit: !!python/object/apply:os.system ["touch {MARKER}"]\n',
     "line 5 has the YAML tag !!python/object/apply:os.system, which profiles refuse"),
    ("custom.yaml", BASE + "    limit: !mine 4\n", "line 5 has the YAML tag !mine, which profiles refuse"),
    ("alias.yaml", "common: &c\n  model: tiny:smollm2-135m\nnotebooks:\n  baseline_and_prompts: *c\n",
     "line 4 uses the YAML alias *c, which profiles do not accept (aliases can expand a small file into an enormous "
     "parameters cell); write the value out instead of *c"),
    ("laughs.yaml", LAUGHS, "line 2 uses the YAML alias *a, which profiles do not accept"),
    ("date.yaml", "description: 2024-01-01\n" + BASE + "    limit: 4\n", "line 1 has the YAML tag !!timestamp"),
    ("limit0.yaml", BASE + "    limit: 0\n",
     ": baseline_and_prompts.limit is 0, not a count of at least 1; give limit 1 or more"),
    ("badpair.yaml", BASE + "    pairs: [eng_Latn]\n",
     ": baseline_and_prompts.pairs: language pair 'eng_Latn' is not of the form SRC-TGT; write it like eng_Latn-cat_Latn"),
    ("nolang.yaml", BASE + "    pairs: [eng_Latn-cat_Cyrl]\n",
     ": baseline_and_prompts.pairs: FLORES-200 has no language 'cat_Cyrl'; use one of:"),
    ("template.yaml", BASE + "    templates: [explict]\n",
     ": baseline_and_prompts.templates is 'explict', not a prompt template; use one of explicit,"),
    ("nanrate.yaml", BASE.replace("baseline_and_prompts", "budget_sweep") + "    lrs: [.nan]\n",
     ": notebooks.budget_sweep.lrs[0] is nan, not a finite number"),
    ("negrate.yaml", BASE.replace("baseline_and_prompts", "budget_sweep") + "    lrs: [-0.01]\n",
     ": budget_sweep.lrs is -0.01, not a finite number > 0; give lrs a positive number"),
    ("budget.yaml", BASE.replace("baseline_and_prompts", "fair_test") + "    sgd_budget: [30.0, 0]\n",
     ": fair_test.sgd_budget is [30.0, 0], not a budget [lr, steps]"),
    ("intkey.yaml", BASE + "    4: 4\n", ": key 4 under notebooks.baseline_and_prompts is not a string"),
    ("...yaml", BASE + "    limit: 4\n", "has the name '..', not a plain name of a-z, 0-9, _ and -; rename the file"),
    ("Mine.yaml", BASE + "    limit: 4\n", "has the name 'Mine', not a plain name"),
    ("default.yaml", BASE + "    limit: 4\n",
     "takes the name 'default', which the package keeps for its own profiles/default.yaml; rename the file, "
     "e.g. my-default.yaml"),
]


def _tree(folder: Path) -> set:
    return {p.relative_to(folder) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.mark.parametrize("name,text,says", PROFILES, ids=[p[0] for p in PROFILES])
def test_a_hostile_profile_is_one_line_and_runs_nothing(name, text, says, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "elsewhere").mkdir()
    path = tmp_path / "elsewhere" / name
    path.write_text(text)
    before = _tree(ROOT / "book" / "results"), _tree(ROOT / ".ksl-partial")
    code = main(["run", "--profile", str(path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: profile {path}") and says in err, err
    assert not (tmp_path / MARKER).exists() and not (ROOT / "notebooks" / MARKER).exists()   # no code ran
    assert _tree(tmp_path) == {Path("elsewhere"), Path("elsewhere") / name}      # nothing written where the user works
    assert (_tree(ROOT / "book" / "results"), _tree(ROOT / ".ksl-partial")) == before   # nor in the checkout


def test_the_binary_probe_is_code_without_the_schema():
    """Why the loader refuses tags: what yaml.safe_load gives papermill for the probe is not a literal."""
    import ast

    import yaml
    from papermill.translators import PythonTranslator

    params = yaml.safe_load(PROFILES[0][1])["notebooks"]["baseline_and_prompts"]
    assert isinstance(params["pairs"][0], bytes)
    cell = PythonTranslator.codify(params)
    assert "__import__" in cell
    with pytest.raises(ValueError):
        ast.literal_eval(cell.split(" = ", 1)[1].strip())   # a call, i.e. code the kernel would run


def test_the_smallest_alias_bomb_stays_small():
    assert len(LAUGHS) < 600   # 9**9 leaves once expanded: refused before composing


def _stub_papermill(monkeypatch):
    import nbformat
    import papermill

    monkeypatch.setattr(papermill, "execute_notebook",
                        lambda src, dst, **kw: nbformat.write(nbformat.read(src, as_version=4), dst))


def test_a_users_profile_writes_where_the_user_works(tmp_path, monkeypatch):
    """Pages and provenance under ./book/results/<name>/ of the user's folder, never into the checkout."""
    from kslottery.report import profiles

    _stub_papermill(monkeypatch)
    monkeypatch.setenv("KSL_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine-issue44.yaml").write_text(BASE + "    limit: 2\n")
    before = _tree(ROOT / "book" / "results")
    [page] = profiles.run_profile("mine-issue44", progress=False)
    assert page == tmp_path / "book" / "results" / "mine-issue44" / "baseline_and_prompts.ipynb" and page.exists()
    assert json.loads((page.parent / "provenance.json").read_text())["baseline_and_prompts"]["parameters"]["limit"] == 2
    assert _tree(ROOT / "book" / "results") == before
    assert not list((tmp_path / ".ksl-partial" / "run-mine-issue44").iterdir())   # nothing half-written


def test_two_runs_of_one_profile_at_once_are_refused(tmp_path, monkeypatch, capsys):
    from filelock import FileLock

    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(BASE + "    limit: 2\n")
    (tmp_path / ".ksl-partial").mkdir()
    held = FileLock(tmp_path / ".ksl-partial" / "run-mine.lock")
    with held:   # another `kslottery run --profile mine`
        code = main(["run", "--profile", "mine", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err == (f"error: profile mine is already running (another process holds "
                                 f"{tmp_path.resolve()}/.ksl-partial/run-mine.lock); wait for that run to finish, "
                                 "or stop it, then rerun\n")
    assert not (tmp_path / "book").exists()


def test_a_file_where_the_partial_folder_belongs_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(BASE + "    limit: 2\n")
    (tmp_path / ".ksl-partial").write_text("not a folder")
    assert main(["run", "--profile", "mine", "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: {tmp_path.resolve()}/.ksl-partial is a file, where the runner keeps "
                                       f"unfinished pages; remove or rename {tmp_path.resolve()}/.ksl-partial, then "
                                       "rerun\n")

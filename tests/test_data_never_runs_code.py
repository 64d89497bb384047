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
    ("rule.yaml", BASE.replace("baseline_and_prompts", "budget_sweep") + "    choice_rule: bonferoni_0.05\n",
     ": budget_sweep.choice_rule is 'bonferoni_0.05', not a rule like bonferroni_0.05; write <rule>_<alpha>"),
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


# A model folder is data too (issue 44, items 2 and 8): (how to damage a good folder, the one line).
EVIL = ('import pathlib\npathlib.Path(__file__).parent.parent.joinpath("' + MARKER + '").touch()\n'
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'evil'\n"
        "class EvilModel(LlamaForCausalLM):\n    config_class = EvilConfig\n")


def _remote(folder: Path, config: str = "config.json") -> None:
    c = json.loads((folder / config).read_text())
    auto = {"AutoConfig": "evil.EvilConfig", "AutoModelForCausalLM": "evil.EvilModel", "AutoTokenizer": ["evil.T", None]}
    (folder / config).write_text(json.dumps({**c, "model_type": "evil", "auto_map": auto}))
    (folder / "evil.py").write_text(EVIL)


def _no_tokenizer(folder: Path) -> None:
    for p in folder.glob("tokenizer*"):
        p.unlink()


MODEL_DIRS = [
    ("remote", _remote, "{d}/config.json names custom code (auto_map), which kslottery never runs; use a model whose "
     "architecture transformers ships"),
    ("remote-tokenizer", lambda d: _remote(d, "tokenizer_config.json"), "{d}/tokenizer_config.json names custom code"),
    ("no-tokenizer", _no_tokenizer, "{d} has no tokenizer (tokenizer.json, tokenizer.model, vocab.json, spiece.model, "
     "sentencepiece.bpe.model); copy the tokenizer files"),
    ("stray-safetensors", lambda d: (d / "extra.safetensors").write_bytes(b"\xff" * 1000),
     "{d}/extra.safetensors is not a safetensors file (damaged, truncated or a stray file); remove it, or download"),
    ("truncated-weights", lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:6]),
     "{d}/model.safetensors is not a safetensors file"),
    ("bad-config", lambda d: (d / "config.json").write_text("{"), "{d}/config.json is not valid JSON; restore the file"),
    ("no-config", lambda d: (d / "config.json").unlink(), "{d} has no config.json; give a Hugging Face model directory"),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny):
    good = tmp_path_factory.mktemp("model") / "good"
    tiny.model.save_pretrained(good)
    tiny.tokenizer.save_pretrained(good)
    return good


@pytest.mark.parametrize("name,damage,says", MODEL_DIRS, ids=[m[0] for m in MODEL_DIRS])
def test_a_damaged_or_code_bearing_model_folder_is_one_line(name, damage, says, model_dir, tmp_path, monkeypatch,
                                                             capsys):
    import io
    import shutil

    folder = tmp_path / "models" / name
    shutil.copytree(model_dir, folder)
    damage(folder)
    before = _tree(folder)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))   # a prompt would read "y"; none is asked
    code = main(["models", str(folder), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: " + says.format(d=folder)), err
    assert not (tmp_path / MARKER).exists() and _tree(folder) == before


def test_echo_y_does_not_run_a_model_folders_code(model_dir, tmp_path):
    """The probe exactly: `echo y | kslottery models DIR` on a folder whose config.json names custom code."""
    import shutil
    import subprocess
    import sys

    folder = tmp_path / "models" / "evil"
    shutil.copytree(model_dir, folder)
    _remote(folder)
    r = subprocess.run([sys.executable, "-m", "kslottery.cli", "models", str(folder)], input="y\n",
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr == (f"error: {folder}/config.json names custom code (auto_map), which kslottery never runs; use a "
                        "model whose architecture transformers ships, or remove auto_map if the architecture is a "
                        "standard one\n")
    assert not (tmp_path / "models" / MARKER).exists()


def test_a_garbage_gguf_is_one_line(tmp_path, capsys):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"not a gguf" * 100)
    assert main(["models", str(path), "--quiet"]) == 2
    assert capsys.readouterr().err == (f"error: {path} is not a GGUF file (it does not start with the GGUF magic "
                                       "bytes); check the file, or download it again\n")


def test_every_transformers_load_refuses_remote_code_explicitly():
    """trust_remote_code=False at every from_pretrained / from_config of the package (PEFT adapters excepted:
    they load weights into a model already built)."""
    import re

    src = Path(__file__).resolve().parents[1] / "src" / "kslottery"
    calls = [(p.name, m.group(0)) for p in src.rglob("*.py") for m in
             re.finditer(r"Auto\w+\.from_(?:pretrained|config)\((?:[^()]|\([^()]*\))*\)", p.read_text())]
    assert calls and all("trust_remote_code=False" in call for _, call in calls), calls


# Finished means finished (issue 44, item 4): (verb and arguments, the one line); {donor} is a finished embed run,
# {eval}, {ks} and {undone} run directories of the wrong kind or without DONE.
TINY = ["--model", "tiny:smollm2-135m", "--quiet"]
NOT_DONE = [
    (["tune", "--lr", "inf", *TINY], "lr must be positive and finite (got inf); pass a positive --lr"),
    (["tune", "--lr", "nan", *TINY], "lr must be positive and finite (got nan)"),
    (["tune", "--weight-decay", "nan", *TINY], "weight_decay be >= 0; pass values in range"),
    (["tune", "--weight-decay", "inf", *TINY], "weight_decay be >= 0"),
    (["transfer", "--tuned", "{donor}", "--ticket", "13", "--scale", "nan"],
     "scale nan is not a finite number; pass --scale like 0.5, 1 or 2"),
    (["transfer", "--tuned", "{donor}", "--ticket", "13", "--scale", "inf"], "scale inf is not a finite number"),
    (["evaluate", "--tuned", "{eval}", *TINY], "{eval} is not a finished tune or transfer run (an eval run); give a "
     "runs/tune-* or runs/transfer-* directory"),
    (["evaluate", "--tuned", "{ks}", *TINY], "{ks} is not a finished tune or transfer run (a ks run)"),
    (["ks", "--tuned", "{undone}"], "{undone} is not a finished tune or transfer run (no DONE); delete or move it, "
     "then rerun the tune command that makes it"),
    (["ks", "--tuned", "{partial}"], "{partial} is not a finished tune or transfer run (no DONE); rerun the tune "
     "command that makes it (it resumes), then give {undone}\n"),
    (["transfer", "--tuned", "{undone}", "--ticket", "13"], "(no DONE)"),
    (["evaluate", "--tuned", "{file}", *TINY], "{file} is not a finished tune or transfer run (not a directory)"),
]


@pytest.fixture(scope="module")
def donor(tmp_path_factory, flores_dir):
    import shutil

    from kslottery.method.tuning import TuneConfig, tune

    root = tmp_path_factory.mktemp("donor")
    path = Path(tune(TuneConfig(model="tiny:smollm2-135m", limit=8, batch_size=4, lr=1e-2), runs_dir=root,
                     progress=False)["path"])
    others = tmp_path_factory.mktemp("others")
    for kind in ("eval", "ks"):
        shutil.copytree(path, others / f"{kind}-0123456789ab")
    shutil.copytree(path, others / "tune-0123456789ab")
    (others / "tune-0123456789ab" / "DONE").unlink()
    shutil.copytree(others / "tune-0123456789ab", others / "tune-0123456789ab.partial")
    (others / "tune-ba9876543210").write_text("a file where a run directory should be")
    return {"donor": str(path), "eval": str(others / "eval-0123456789ab"), "ks": str(others / "ks-0123456789ab"),
            "undone": str(others / "tune-0123456789ab"), "file": str(others / "tune-ba9876543210"),
            "partial": str(others / "tune-0123456789ab.partial")}


@pytest.mark.parametrize("args,says", NOT_DONE, ids=[" ".join(a[:3]) for a, _ in NOT_DONE])
def test_a_run_that_is_not_finished_or_not_finite_is_one_line(args, says, donor, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main([a.format(**donor) for a in args] + ["--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and says.format(**donor) in err, err
    assert _tree(runs) <= {Path(".locks")}   # no run, no .partial


@pytest.mark.parametrize("what", ["tensor", "loss"])
def test_a_run_that_computed_nan_is_never_done(what, tmp_path):
    """The net under every verb: finish() refuses a run whose tensors or loss are not finite, and keeps nothing."""
    import re

    import torch
    from safetensors.torch import save_file

    from kslottery.method.errors import KSLError
    from kslottery.method.runs import Run

    run = Run("tune", {"probe": what}, tmp_path)
    assert run.claim()
    work = run.start()
    save_file({"after": torch.tensor([1.0, float("nan") if what == "tensor" else 2.0])}, work / "rows.safetensors")
    record = {"train": {"final_loss": float("nan") if what == "loss" else 1.0}}
    says = "rows.safetensors holds 1 values that are nan or inf (in after)" if what == "tensor" else \
        "its final loss is nan"
    with pytest.raises(KSLError, match=re.escape(f"computed values that are not finite ({says}); nothing was kept; give")):
        run.finish(record)
    assert not run.work.exists() and not run.path.exists()
    assert run.claim()   # the lock was let go: a rerun may compute it
    run.release()


# A damaged place for a run (issue 44, items 5 and 8): (how the runs folder is damaged, the one line); {run} is the
# path of the donor's run in a copy of its runs folder, {root} that folder. The same tune command again must not
# compute anything, and must say what to delete.
def _undone(run: Path) -> None:
    (run / "DONE").unlink()


def _file_for_run(run: Path) -> None:
    import shutil

    shutil.rmtree(run)
    run.write_text("not a run")


def _locks_file(run: Path) -> None:
    import shutil

    shutil.rmtree(run)
    shutil.rmtree(run.parent / ".locks", ignore_errors=True)
    (run.parent / ".locks").write_text("not a folder")


def _partial_file(run: Path) -> None:
    import shutil

    shutil.rmtree(run)
    run.with_name(run.name + ".partial").write_text("not a folder")


PLACES = [
    (_undone, "error: {run} is a run directory without DONE (a run that never finished, or a copy); delete or move "
     "{run}, then rerun to compute it anew\n"),
    (_file_for_run, "error: {run} is a file, where run {name} belongs; delete or move {run}, then rerun\n"),
    (_locks_file, "error: {root}/.locks is a file, where the runs' lock folder belongs; delete or move {root}/.locks, "
     "then rerun\n"),
    (_partial_file, "error: {run}.partial is a file, where run {name}'s work folder belongs; delete or move "
     "{run}.partial, then rerun\n"),
]


@pytest.mark.parametrize("damage,says", PLACES, ids=[d.__name__ for d, _ in PLACES])
def test_a_damaged_place_for_a_run_is_one_line_before_computing(damage, says, donor, tmp_path, capsys):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(Path(donor["donor"]).parent, root)
    run = root / Path(donor["donor"]).name
    damage(run)
    before = _tree(root)
    code = main(["tune", "--model", "tiny:smollm2-135m", "--limit", "8", "--batch-size", "4", "--lr", "0.01", "--quiet",
                 "--runs-dir", str(root)])
    err = capsys.readouterr().err
    assert code == 2 and err == says.format(run=run, root=root, name=run.name), err
    assert _tree(root) - before <= {Path(".locks"), Path(".locks") / f"{run.name}.lock"}   # nothing computed


def test_a_truncated_checkpoint_names_its_fix(tmp_path):
    import torch

    from kslottery.method import checkpoints
    from kslottery.method.errors import KSLError

    p = torch.nn.Parameter(torch.ones(4, 3))
    opt = torch.optim.AdamW([p], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
    work = tmp_path / "tune-0123456789ab.partial"
    work.mkdir()
    checkpoints.save(work, [p], opt, sched, 3)
    assert checkpoints.resume(work, [p], opt, sched, True) == 3
    f = work / "ckpt" / "params.safetensors"
    f.write_bytes(f.read_bytes()[:20])
    with pytest.raises(KSLError) as e:
        checkpoints.resume(work, [p], opt, sched, True)
    assert str(e.value) == (f"the checkpoint {work}/ckpt of the unfinished run {work.name} is damaged (SafetensorError); "
                            f"delete {work}/ckpt to restart the run from step 0 (or {work} to start over), then rerun")


# Files a user passes are data (issue 44, item 8): (file name, its text, verb and arguments, the one line).
OWN_FILES = [
    ("ticket.json", json.dumps({"ids": [13, "263"], "rule": "topk"}), ["transfer", "--tuned", "{donor}", "--ticket", "{f}"],
     "ticket {f} holds an id that is not an integer ('263'); give a ticket JSON written by `kslottery ks`"),
    ("ticket.json", json.dumps({"ids": [13, 2.5], "rule": "topk"}), ["transfer", "--tuned", "{donor}", "--ticket", "{f}"],
     "ticket {f} holds an id that is not an integer (2.5)"),
    ("ticket.json", json.dumps({"ids": 13, "rule": "topk"}), ["transfer", "--tuned", "{donor}", "--ticket", "{f}"],
     "ticket {f} holds an id that is not an integer (13)"),
    ("news.jsonl", '{"src": "Hello.", "tgt": "Hola."}\n{"src": 5, "tgt": "Cinc."}\n',
     ["evaluate", "--test-file", "{f}", *TINY], "{f}: line 2: src is int 5, not a string; write each sentence as a "
     "JSON string"),
    ("news.jsonl", '{"src": "Hello.", "tgt": ["Hola."]}\n', ["tune", "--train-file", "{f}", *TINY],
     "{f}: line 1: tgt is list [\"Hola.\"], not a string"),
]


@pytest.mark.parametrize("name,text,args,says", OWN_FILES, ids=[f"{a[0]}-{n}-{i}" for i, (n, _, a, _) in
                                                                 enumerate(OWN_FILES)])
def test_a_users_file_of_the_wrong_shape_is_one_line(name, text, args, says, donor, tmp_path, capsys):
    f = tmp_path / name
    f.write_text(text)
    runs = tmp_path / "runs"
    code = main([a.format(f=f, **donor) for a in args] + ["--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and says.format(f=f) in err, err
    assert _tree(runs) <= {Path(".locks")}


@pytest.mark.parametrize("file,text", [("record.json", '{"wall_s": 12'), ("record.json", "[1, 2]"),
                                       ("params.json", "\x00\x01")])
def test_status_reports_a_damaged_record_instead_of_a_traceback(file, text, donor, tmp_path, capsys):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(Path(donor["donor"]).parent, root)
    run = root / Path(donor["donor"]).name
    if file == "params.json":   # an unfinished run's params, as status reads them
        run = run.rename(run.with_name(run.name + ".partial"))
        (run / "DONE").unlink()
    (run / file).write_text(text)
    assert main(["status", "--runs-dir", str(root)]) == 0
    out = capsys.readouterr().out
    name = run.name.removesuffix(".partial")
    assert f"damaged: {run.name}  its {file} cannot be read (delete {run.name} and rerun the command that made it)" \
        in out, out
    assert (f"unfinished: {name}" in out) == (file == "params.json")


SLEEPER = """import nbformat
cells = [nbformat.v4.new_code_cell("profile = 'x'\\nlimit = 1", metadata={"tags": ["parameters"]}),
         nbformat.v4.new_code_cell("import pathlib, time\\npathlib.Path('started').touch()\\ntime.sleep(120)")]
ks = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
nbformat.write(nbformat.v4.new_notebook(cells=cells, metadata=ks), "notebooks/baseline_and_prompts.ipynb")
"""
RUNNER = """import sys
from pathlib import Path
from kslottery.report import profiles
profiles.repo_root = lambda: Path.cwd()
from kslottery.cli import main
sys.exit(main(["run", "--profile", "mine", "--quiet"]))
"""


@pytest.mark.slow
def test_ctrl_c_during_a_profile_is_one_line_and_leaves_nothing_half_written(tmp_path):
    """A real kernel, interrupted inside a cell: the clean message alone (no ZMQ traceback from the kernel's
    log), exit 130, and neither a page nor a half-executed notebook left behind."""
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text("notebooks:\n  baseline_and_prompts:\n    limit: 2\n")
    subprocess.run([sys.executable, "-c", SLEEPER], cwd=tmp_path, check=True)
    # A user's Ctrl-C reaches a process whose SIGINT is at its default. Inside the whole suite something leaves the
    # test process ignoring SIGINT, and a child inherits that (Python then installs no KeyboardInterrupt handler):
    # the runner starts as a shell would start it.
    p = subprocess.Popen([sys.executable, "-c", RUNNER], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    t0 = time.time()
    while not (tmp_path / "notebooks" / "started").exists() and time.time() - t0 < 120:
        time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and err == "interrupted: rerun the same command to resume\n", err
    assert list((tmp_path / ".ksl-partial" / "run-mine").iterdir()) == []
    assert not (tmp_path / "book").exists()


@pytest.mark.slow
def test_a_kernel_that_dies_is_one_line_and_leaves_nothing_half_written(tmp_path):
    """A notebook whose kernel is killed (what the out-of-memory killer does): one error line, not nbclient's log,
    asyncio's and a DeadKernelError traceback."""
    import subprocess
    import sys

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text("notebooks:\n  baseline_and_prompts:\n    limit: 2\n")
    subprocess.run([sys.executable, "-c", SLEEPER.replace("time.sleep(120)", "import os; os.kill(os.getpid(), 9)")],
                   cwd=tmp_path, check=True)
    p = subprocess.run([sys.executable, "-c", RUNNER], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("error: the kernel running notebook baseline_and_prompts died"), p.stderr
    assert list((tmp_path / ".ksl-partial" / "run-mine").iterdir()) == []
    assert not (tmp_path / "book").exists()


def test_a_prompt_longer_than_the_context_is_said_once_before_generation(tiny, capsys):
    """Issue 44, item 8: a 1 MB source line made a 200,001-token prompt on an 8,192-token model, silently."""
    import types

    from kslottery.method import prompts
    from kslottery.method.context import context_length

    assert context_length(tiny.model) == 8192
    small = types.SimpleNamespace(config=types.SimpleNamespace(max_position_embeddings=16))
    ids = [[1] * 8, [1] * 40, [1] * 12, [1] * 15]
    assert prompts.warn_long_prompts(ids, small, 4) == [1, 3]
    assert capsys.readouterr().err == ("warning: 2 prompts (sentence 1 and others, up to 40 tokens) plus 4 new tokens "
                                       "exceed the model's context of 16 tokens; generation will be slow and its "
                                       "output unreliable: shorten or split those source lines\n")
    assert prompts.warn_long_prompts(ids[:1], small, 4) == [] and capsys.readouterr().err == ""
    assert prompts.warn_long_prompts(ids, types.SimpleNamespace(), 4) == []   # a model that does not say


def test_summary_reads_a_users_profile_where_the_user_works(tmp_path, monkeypatch, capsys):
    from kslottery.report import profiles

    _stub_papermill(monkeypatch)
    monkeypatch.setenv("KSL_RUNS", str(tmp_path / "runs"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mine.yaml").write_text(BASE + "    limit: 2\n")
    profiles.run_profile("mine", progress=False)
    capsys.readouterr()
    assert main(["summary", "--profile", "mine"]) == 0
    assert capsys.readouterr().out.startswith("profile mine: 1 notebooks executed at")


def test_a_notebook_finds_the_users_profile_by_its_name(tmp_path, monkeypatch):
    """The kernel's first cell names the profile file being run: a notebook reading its profile by name (the fair
    test's design) gets the user's file, which lies outside both folders a name is looked up in."""
    import nbformat

    from kslottery.method.runs import record_runs_to
    from kslottery.report import profile_schema, profiles

    monkeypatch.setattr(profile_schema, "_running", {})
    (tmp_path / "elsewhere").mkdir()
    mine = tmp_path / "elsewhere" / "mine-issue44.yaml"
    mine.write_text(BASE + "    limit: 3\n")
    src, staged = tmp_path / "nb.ipynb", tmp_path / "staged.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), src)
    profiles.with_recorder(src, staged, tmp_path / "nb.runs", mine)
    with pytest.raises(Exception, match="unknown profile 'mine-issue44'"):
        profiles.load_profile("mine-issue44")
    try:
        exec(nbformat.read(staged, as_version=4).cells[0].source, {})   # what the kernel runs first
    finally:
        record_runs_to(None)
    assert profiles.load_profile("mine-issue44")["notebooks"]["baseline_and_prompts"] == {"limit": 3}


def test_the_profile_check_reads_the_rules_without_torch():
    """The rules have one home, which the profile check imports before torch would have loaded."""
    import subprocess
    import sys

    from kslottery.method import rules, ticket
    from kslottery.study import parameters

    code = "import sys; from kslottery.study import parameters; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert parameters.SIGNIFICANCE_RULES is rules.SIGNIFICANCE_RULES is ticket.SIGNIFICANCE_RULES
    assert out == "False"


@pytest.mark.parametrize("params, says", [
    ({"limit": 0}, "notebook six_pairs: limit is 0, not a count of at least 1"),
    ({"pairs": ["eng_Latn-cat"]}, "notebook six_pairs: pairs: "),
    ({"choice_rule": "bh-0.05"}, "notebook six_pairs: choice_rule is 'bh-0.05', not a rule like bonferroni_0.05"),
    ({"pairs": "eng_Latn-cat_Latn"}, "six_pairs: parameter pairs must be a list"),
])
def test_a_notebook_checks_its_parameters_as_the_runner_does(params, says):
    """Inside a kernel (papermill only warns), the notebook's check is the runner's: the same one line."""
    from kslottery.method.errors import KSLError
    from kslottery.study import experiments

    with pytest.raises(KSLError) as e:
        experiments.check("six_pairs", **params)
    assert str(e.value).startswith(says) and "\n" not in str(e.value)
    assert experiments.check("six_pairs", limit=4, pairs=["eng_Latn-cat_Latn"]) == {"limit": 4,
                                                                                   "pairs": ["eng_Latn-cat_Latn"]}

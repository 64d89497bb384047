"""Profile files a user can write: where they are looked up, and the schema they are checked against before
anything runs or any folder is created.

A profile is YAML with ``notebooks:`` (required: notebook name -> its parameters), ``common:`` (parameters
every notebook gets) and ``description:``. ``--profile NAME`` is looked up as ``profiles/NAME.yaml`` in the
current folder, then in the checkout; ``--profile path/to/mine.yaml`` is that file. Every parameter must
be one the notebook declares (papermill's ``parameters`` cell), of the type of its default there, and a value
that notebook accepts (:mod:`kslottery.study.parameters`). The file is read as plain data only (:mod:`.profile_yaml`: no
YAML tags beyond the plain ones, no aliases). :func:`open_profile` is the one way in: it gives the checked
:class:`Profile`, with its name and the folder it publishes into; the runner and the book builder both use it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from ..method.errors import KSLError
from ..study.design import Design
from ..study.executor import parse_resources
from ..study.parameters import check_value
from .profile_yaml import check_data, load_yaml

ORDER = ["baseline_and_prompts", "budget_sweep", "fair_test", "six_pairs", "certification", "paper_vs_study"]
# plumbing: pages quarantined in the book (report.profiles labels them); protocol: the fair test's design
# (kslottery.study.design.Design, checked key by key when the profile is read).
# resources: CPUs and GPUs per run kind when the study runs on Ray (kslottery.study.executor.parse_resources).
KEYS = {"description": str, "common": dict, "notebooks": dict, "plumbing": bool, "protocol": dict, "resources": dict}
REQUIRED = ("notebooks",)


# A profile's name is its file's stem and becomes folder and file names (book/results/<name>/, figure labels):
# a plain identifier, so a file named "...yaml" (stem "..") cannot write into book/ itself.
NAME = re.compile(r"^[a-z0-9_-]+$")
# The package's own profiles: only its own profiles/<name>.yaml may publish under these names, so a user's
# elsewhere/default.yaml cannot overwrite the study's tracked pages.
RESERVED = ("default", "smoke", "paper")


@dataclass(frozen=True)
class Profile:
    """A profile, checked: its name, its file, its settings (the YAML as plain data) and its home, the folder
    whose ``book/results/<name>/``, ``_build/profile-<name>/`` and ``.ksl-partial/`` it writes (the checkout
    for a profile in the checkout's profiles/, else the folder the user works in)."""

    name: str
    path: Path
    settings: dict
    home: Path

    @property
    def pages(self) -> Path:
        return self.home / "book" / "results" / self.name

    # the settings, typed as check_schema checked them (the dict stays what notebooks and Design read)
    @property
    def description(self) -> str:
        return self.settings.get("description") or ""

    @property
    def plumbing(self) -> bool:
        return bool(self.settings.get("plumbing"))

    @property
    def resources(self) -> dict | None:
        """CPUs and GPUs per run kind when the study runs on Ray (checked by kslottery.study.executor)."""
        return self.settings.get("resources")

    @property
    def notebooks(self) -> dict[str, dict]:
        return {nb: params or {} for nb, params in self.settings["notebooks"].items()}

    def parameters(self, notebook: str) -> dict:
        return {"profile": self.name, **(self.settings.get("common") or {}),
                **(self.settings["notebooks"].get(notebook) or {})}


def open_profile(spec: str, root: Path) -> Profile:
    """The profile ``spec`` names (see :func:`find_profile`), read and checked, with its name and home."""
    path = find_profile(spec, root)
    name = path.stem
    if not NAME.match(name):
        raise KSLError(f"profile {path} has the name {name!r}, not a plain name of a-z, 0-9, _ and -",
                       "rename the file, e.g. mine.yaml")
    own = path.resolve().parent == (root / "profiles").resolve()
    if name in RESERVED and not own:
        raise KSLError(f"profile {path} takes the name {name!r}, which the package keeps for its own "
                       f"profiles/{name}.yaml", f"rename the file, e.g. my-{name}.yaml")
    return Profile(name, path, read_profile(path), (root if own else Path.cwd()).resolve())


# The profile file the runner executes, by name, in its notebook kernels (report.kernel.setup): a notebook that
# reads its own profile by name (the fair test's design) finds the user's file, wherever it lies, not another.
_running: dict[str, Path] = {}


def remember(path: Path) -> None:
    _running[path.stem] = path


def find_profile(spec: str, root: Path) -> Path:
    """The profile file: a path given as such (it ends in .yaml / .yml or names a folder), else
    ``profiles/<spec>.yaml`` in the current folder, then in the checkout ``root``."""
    if spec in _running:
        return _running[spec]
    if spec.endswith((".yaml", ".yml")) or "/" in spec:
        path = Path(spec).expanduser()
        if not path.is_file():
            raise KSLError(f"profile file {path} does not exist", "check the path, or pass a profile NAME")
        return path
    places = list(dict.fromkeys([Path.cwd().resolve() / "profiles", root.resolve() / "profiles"]))
    for folder in places:
        if (folder / f"{spec}.yaml").is_file():
            return folder / f"{spec}.yaml"
    have = sorted({p.stem for folder in places for p in folder.glob("*.yaml")})
    raise KSLError(f"unknown profile {spec!r} (looked for {spec}.yaml in {' and '.join(map(str, places))})",
                   f"use one of {', '.join(have) or '(none)'}, or pass --profile path/to/{spec}.yaml")


def _type_name(value) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def _same_kind(value, default) -> bool:
    """A profile value fits a notebook parameter whose default is ``default``: numbers are interchangeable
    (``epochs: 1`` for a default of 1.0), None fits anything (it means "all" or "off" in the notebooks)."""
    if value is None or default is None:
        return True
    number = (int, float)
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, number):
        return isinstance(value, number)
    return isinstance(value, type(default))


def declared_parameters(notebook: Path) -> dict[str, object]:
    """The notebook's parameters and their defaults (None where the default is not a literal)."""
    import papermill as pm

    out = {}
    for name, p in pm.inspect_notebook(str(notebook)).items():
        try:
            out[name] = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError):
            out[name] = None
    return out


def check_schema(prof, path: Path) -> dict:
    """Top-level keys, their types, notebook names."""
    if not isinstance(prof, dict):
        raise KSLError(f"profile {path} is not a mapping of keys", f"write {', '.join(KEYS)} at the top level")
    unknown = sorted(set(prof) - set(KEYS))
    if unknown:
        raise KSLError(f"profile {path} has unknown key{'s' if len(unknown) > 1 else ''} {unknown}",
                       f"use {', '.join(KEYS)} (notebooks is required)")
    missing = [k for k in REQUIRED if k not in prof]
    if missing:
        raise KSLError(f"profile {path} has no {' or '.join(missing)} key",
                       f"add notebooks: with one or more of {', '.join(ORDER)}")
    for key, kind in KEYS.items():
        if key in prof and not isinstance(prof[key], kind) and not (key == "common" and prof[key] is None):
            raise KSLError(f"profile {path}: {key} is {_type_name(prof[key])}, not {_type_name(kind())}",
                           f"write {key}: as {_type_name(kind())}")
    for nb, params in prof["notebooks"].items():
        if nb not in ORDER:
            raise KSLError(f"profile {path} names unknown notebook {nb!r}", f"use {', '.join(ORDER)}")
        if params is not None and not isinstance(params, dict):
            raise KSLError(f"profile {path}: notebooks.{nb} is {_type_name(params)}, not a mapping",
                           f"write the parameters of {nb} as name: value lines under it")
    return prof


def check_parameters(params: dict, notebook: Path, path: Path) -> None:
    """Every parameter a profile passes to a notebook is one the notebook declares, of its default's kind."""
    declared = declared_parameters(notebook)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise KSLError(f"profile {path} passes {unknown} to {notebook.stem}, which has no such parameter",
                       f"use the notebook's parameters: {', '.join(declared)}")
    for name, value in params.items():
        if not _same_kind(value, declared[name]):
            raise KSLError(f"profile {path}: {notebook.stem}.{name} is {_type_name(value)} ({value!r}), "
                           f"but the notebook's default is {_type_name(declared[name])} ({declared[name]!r})",
                           f"give {name} as {_type_name(declared[name])}")
        check_value(name, value, f"{notebook.stem}.{name}", f"profile {path}")


# The budget sweep's parameters that the protocol also states (the sweep chooses every discovery budget the
# protocol's arms train at): a profile that says one thing in its protocol and runs another is refused.
SWEEP_KEYS = {"models": "models", "pair": "pair", "lrs": "adam_lrs", "sgd_lrs": "sgd_lrs",
              "snapshots": "sweep_snapshots", "choice_rule": "discovery_rule", "min_ticket": "min_ticket",
              "max_share": "max_ticket_share",
              "train_limit": "train_pairs", "batch_size": "batch_size"}


def check_sweep(prof: dict, design: Design, path: Path) -> None:
    """The budget sweep runs what the protocol states: each key of :data:`SWEEP_KEYS` the sweep is given (or
    inherits from ``common``) equals the protocol's value."""
    if "budget_sweep" not in (prof.get("notebooks") or {}):
        return
    sweep = {**(prof.get("common") or {}), **(prof["notebooks"]["budget_sweep"] or {})}
    for key, field in SWEEP_KEYS.items():
        if key not in sweep:
            continue
        given, stated = sweep[key], getattr(design, field)
        if isinstance(stated, tuple):
            given, stated = tuple(given), tuple(stated)
        if given != stated:
            raise KSLError(f"profile {path}: budget_sweep.{key} is {sweep[key]!r} but the protocol's {field} is "
                           f"{getattr(design, field)!r}", "give both the same value (the protocol's governs)")


def read_profile(path: Path) -> dict:
    """The profile at ``path`` as plain data, checked: the YAML (no tags beyond the plain ones, no aliases), every
    value (only strings, numbers, booleans, null, lists and mappings, all the way down), the top-level keys and
    the fair test's design. The one reader of a profile file: the runner and the book builder both call it."""
    prof = check_data(load_yaml(path), path)
    prof = check_schema(prof, path)
    if "protocol" in prof:
        check_sweep(prof, Design.from_profile(prof), path)   # a misspelled design key is one line before anything runs
    if "resources" in prof:
        try:
            parse_resources(prof["resources"])
        except KSLError as e:
            raise KSLError(f"profile {path}: {e.problem}", e.fix) from None
    return prof

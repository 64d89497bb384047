"""A book of one profile's executed pages, for a profile a user wrote (``kslottery book --profile mine``).

The study's own book (``book/``) lists the ``default`` and ``smoke`` pages in its table of contents and links
to them from its chapters; a user's profile has no place there. This builds a small book beside it: a landing
page naming the profile and its description, then the profile's executed notebooks in the study's order and
its provenance page, with the study's styles and offline MathJax. Links from those pages to the study's
chapters are left unresolved (reported by Sphinx as warnings, not errors), so the book always builds.

    >>> build("mine")                     # doctest: +SKIP
    PosixPath('_build/profile-mine/_build/html')
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from ..method.errors import KSLError
from ..study.results import repo_root
from .profile_lock import partial_root
from .profile_schema import ORDER, open_profile


def pages(profile: str, root: Path) -> list[str]:
    """The profile's executed pages under book/results/<profile>, in the study's order, provenance last."""
    folder = root / "book" / "results" / profile
    found = [nb for nb in ORDER if (folder / f"{nb}.ipynb").exists()]
    if not found:
        raise KSLError(f"profile {profile} has no executed pages in {folder}",
                       f"run `kslottery run --profile {profile}` first")
    return found + (["provenance"] if (folder / "provenance.md").exists() else [])


def stage(spec: str, root: Path | None = None) -> tuple[str, Path]:
    """The book's source folder under .ksl-partial/ of the profile's home, written anew: landing page, table of
    contents, config (the styles and config come from the checkout ``root``)."""
    root = root or repo_root()
    profile_ = open_profile(spec, root)
    profile, path = profile_.name, profile_.path
    names = pages(profile, profile_.home)
    src = partial_root(profile_.home) / f"book-{profile}"
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(profile_.pages, src / "results" / profile)
    shutil.copytree(root / "book" / "_vendor", src / "_vendor")
    config = yaml.safe_load((root / "_config.yml").read_text())
    # Sphinx extensions of the study's own (book/_ext: the tables' CSV files published beside their pages), at
    # the same path relative to the staged config as to the study's
    for folder in ((config.get("sphinx") or {}).get("local_extensions") or {}).values():
        shutil.copytree(root / folder, src / folder, ignore=shutil.ignore_patterns("__pycache__"))
    config["title"] = f"KS-Lottery study: profile {profile}"
    config["only_build_toc_files"] = True
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    toc = {"format": "jb-book", "root": "index",
           "chapters": [{"file": f"results/{profile}/{name}"} for name in names]}
    (src / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))
    (src / "index.md").write_text(
        f"# Profile `{profile}`\n\n{profile_.description}\n\n"
        f"The notebooks of `{path}` as `kslottery run` executed them into `book/results/{profile}/`; each page "
        "says how to rerun it, and the provenance page lists the runs, parameters, versions and machine behind "
        "every number. The method and the study's own results are in the study's book (`make book`).\n")
    return profile, src


def build(spec: str, root: Path | None = None, out: Path | None = None) -> Path:
    """Stage and build the profile's book; returns the folder holding index.html."""
    root = root or repo_root()
    profile, src = stage(spec, root)
    out = out or open_profile(spec, root).home / "_build" / f"profile-{profile}"
    jb = Path(sys.executable).with_name("jupyter-book")
    r = subprocess.run([str(jb), "build", str(src), "--path-output", str(out), "--keep-going", "-n"],
                       capture_output=True, text=True)
    if r.returncode:
        raise KSLError(f"the book of profile {profile} did not build (jupyter-book exit {r.returncode}): "
                       f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}", f"see {src} and rerun with jupyter-book")
    return out / "_build" / "html"

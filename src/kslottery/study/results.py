"""Result tables: what a notebook hands to the summary chapters and to readers (the report publishes them).

A notebook saves its tables beside the runs (``$KSL_RUNS/tables/<profile>/<notebook>.json``) while it
executes; when ``kslottery run`` finishes the notebook it publishes them into the book as
``book/results/<profile>/tables/<notebook>/<table>.csv``, tracked in git, so the summary chapters of a
clean clone rebuild without ``runs/``. Readers look in the runs first (the freshest), then in the book.
Cells holding lists (intervals, token ids) are written to CSV as JSON text and read back as lists.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ..method.runs import runs_root, write_json


def repo_root() -> Path:
    """The checkout holding ``notebooks/`` and ``profiles/`` above this package, else the current folder."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "profiles").is_dir() and (parent / "notebooks").is_dir():
            return parent
    return Path.cwd()


def _runs_file(profile: str, notebook: str) -> Path:
    return runs_root() / "tables" / profile / f"{notebook}.json"


def book_dir(profile: str, notebook: str, root: Path | None = None) -> Path:
    return (root or repo_root()) / "book" / "results" / profile / "tables" / notebook


def save_tables(profile: str, notebook: str, **tables: pd.DataFrame) -> Path:
    """Keep a notebook's result tables beside the runs, for the summary chapters and for publishing."""
    path = _runs_file(profile, notebook)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {name: json.loads(df.to_json(orient="records")) for name, df in tables.items()})
    return path


def _parse(value):
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def load_tables(profile: str, notebook: str, root: Path | None = None) -> dict[str, pd.DataFrame] | None:
    """A notebook's tables from the runs, else from the book; None when the notebook has not run."""
    path = _runs_file(profile, notebook)
    if path.exists():
        return {name: pd.DataFrame(rows) for name, rows in json.loads(path.read_text()).items()}
    folder = book_dir(profile, notebook, root)
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        return None
    return {p.stem: pd.read_csv(p).map(_parse) for p in files}


def slug(name: str) -> str:
    """A glue key from an arm or table label: "':' row" -> "colon_row", "BOS+EOS rows" -> "bos_plus_eos_rows"."""
    name = name.lower().replace(":", " colon ").replace("+", " plus ")
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_")

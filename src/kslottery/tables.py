"""Result tables: what a notebook hands to the summary chapters and to readers.

A notebook saves its tables beside the runs (``$KSL_RUNS/tables/<profile>/<notebook>.json``) while it
executes; when ``kslottery run`` finishes the notebook it publishes them into the book as
``book/results/<profile>/tables/<notebook>/<table>.csv``, tracked in git, so the summary chapters of a
clean clone rebuild without ``runs/``. Readers look in the runs first (the freshest), then in the book.
Cells holding lists (intervals, token ids) are written to CSV as JSON text and read back as lists.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .runs import runs_root, write_json


def _runs_file(profile: str, notebook: str) -> Path:
    return runs_root() / "tables" / profile / f"{notebook}.json"


def book_dir(profile: str, notebook: str, root: Path | None = None) -> Path:
    from .profiles import repo_root

    return (root or repo_root()) / "book" / "results" / profile / "tables" / notebook


def save_tables(profile: str, notebook: str, **tables: pd.DataFrame) -> Path:
    """Keep a notebook's result tables beside the runs, for the summary chapters and for publishing."""
    path = _runs_file(profile, notebook)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {name: json.loads(df.to_json(orient="records")) for name, df in tables.items()})
    return path


def publish(profile: str, notebook: str, root: Path | None = None) -> list[Path]:
    """Write the tables a finished notebook saved into the book as CSV (replacing what was there)."""
    src = _runs_file(profile, notebook)
    if not src.exists():
        return []
    out = book_dir(profile, notebook, root)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.csv"):
        old.unlink()
    written = []
    for name, rows in json.loads(src.read_text()).items():
        df = pd.DataFrame(rows)
        for col in df.columns:
            if df[col].map(lambda v: isinstance(v, (list, dict))).any():
                df[col] = df[col].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
        path = out / f"{name}.csv"
        df.to_csv(path, index=False)
        written.append(path)
    return written


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


def readable(df: pd.DataFrame | pd.Series, precision: int = 2, formats: dict | None = None):
    """A table for a page: no index column, numbers rounded (``formats`` maps a column to its own format,
    e.g. ``{"p": "{:.1e}"}`` for p-values that rounding would show as 0), and text from the data escaped in
    cells and headers (a token such as ``<bos>`` is text, not an HTML tag). A named index (a groupby or
    pivot key) becomes columns rather than being hidden; multi-level column labels are joined."""
    df = df.to_frame() if isinstance(df, pd.Series) else df
    if isinstance(df.columns, pd.MultiIndex):
        df = df.set_axis([" ".join(str(part) for part in c if str(part)) for c in df.columns], axis=1)
    if any(name is not None for name in df.index.names):
        df = df.reset_index()
    df = df.rename_axis(columns=None)
    formats = {**_default_formats(df, precision), **(formats or {})}
    return (df.style.hide(axis="index").format(formats, precision=precision, na_rep="", escape="html")
            .format_index(escape="html", axis=1))


def _default_formats(df: pd.DataFrame, precision: int) -> dict:
    """Whole numbers stored as floats (a seed or a count next to a NaN) without decimals; interval pairs
    as [low, high], blank when undefined."""
    import math

    def interval(v):
        if not isinstance(v, tuple) or any(x != x for x in v):
            return ""
        return "[" + ", ".join(f"{x:.{precision}f}" for x in v) + "]"

    out = {}
    for col in df.columns:
        values = df[col].dropna()
        if not len(values):
            continue
        if pd.api.types.is_float_dtype(df[col]) and all(math.isfinite(v) and float(v).is_integer() for v in values):
            out[col] = "{:.0f}"
        elif df[col].dtype == object and all(isinstance(v, tuple) for v in values):
            out[col] = interval
    return out


def glue_numbers(values: dict) -> dict:
    """Glue every value for the book's prose (MyST-NB ``{glue:text}``), nothing displayed on the page; the
    chapters cite these keys instead of typing the numbers. Values are plain Python numbers or strings."""
    from myst_nb import glue

    clean = {}
    for key, value in values.items():
        if hasattr(value, "item"):    # numpy scalars: glue stores their repr, which a format spec cannot read
            value = value.item()
        clean[key] = value
        glue(key, value, display=False)
    return clean


def slug(name: str) -> str:
    """A glue key from an arm or table label: "':' row" -> "colon_row", "BOS+EOS rows" -> "bos_plus_eos_rows"."""
    import re

    name = name.lower().replace(":", " colon ").replace("+", " plus ")
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_")

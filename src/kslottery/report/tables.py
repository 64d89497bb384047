"""Tables for reading: formatting for the book's pages, glue for its prose, publishing a notebook's saved
tables into the book as CSV."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd

from ..study.results import _runs_file, book_dir


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
    name = name.lower().replace(":", " colon ").replace("+", " plus ")
    return re.sub(r"[^a-z0-9]+", "_", name).strip("_")


def claims_table(table: pd.DataFrame):
    """The claims table for a page: HTML in the data escaped (a token like ``<s>`` is text, not a tag), no
    index, and cells that wrap so every column fits the content width."""

    return (readable(table)
            .set_table_styles([{"selector": "td, th", "props": "white-space: normal; overflow-wrap: anywhere; "
                                                            "max-width: 16em; font-size: 0.85em; text-align: left"}]))

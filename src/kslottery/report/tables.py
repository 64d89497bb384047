"""Tables for reading: formatting for the book's pages, glue for its prose, publishing a notebook's saved
tables into the book as CSV."""

from __future__ import annotations

import html
import json
import math
import re
from pathlib import Path

import pandas as pd

from ..study.results import _runs_file, book_dir, slug  # noqa: F401 (slug: the notebooks' glue keys)
from ..study.verdicts import verdict_word


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
        for col in df.columns:
            # A missing value (the base model has no seed) makes pandas store a count column as float;
            # a reader of the CSV should see seed 3, not 3.0.
            values = df[col].dropna()
            if df[col].dtype.kind == "f" and len(values) and (values == values.round()).all():
                df[col] = df[col].astype("Int64")
        path = out / f"{name}.csv"
        df.to_csv(path, index=False)
        written.append(path)
    return written


# Cell styles for numbers: on one line, right-aligned, digits of equal width so a column reads as one.
NUMBER_STYLE = "white-space: nowrap; text-align: right; font-variant-numeric: tabular-nums"
TEXT_STYLE = "white-space: normal; min-width: 12em"
# Whitespace tokens shown by a visible name; byte-level BPE markers (GPT-2 style) decoded first.
VISIBLE = {"\n": "\u23ce", "\t": "\u21e5", "\r": "\u21b5", " ": "\u2423"}
BYTE_LEVEL = {"\u0120": " ", "\u010a": "\n", "\u0109": "\t", "\u010d": "\r"}   # Ġ Ċ ĉ č
MISSING = "\u2014"   # an em dash where a value is undefined, never "nan"


def visible_token(text: str) -> str:
    """A token as a reader can see it: byte-level markers decoded (``Ġthe`` -> `` the``), then newlines and tabs,
    leading and trailing spaces and an all-space token shown by name (``⏎``, ``⇥``, ``␣``): `` the`` -> ``␣the``,
    ``\\n`` -> ``⏎``. Text with inner spaces only (a note, an arm's label) keeps them."""
    if not text:
        return text
    if " " not in text and any(m in text for m in BYTE_LEVEL):
        text = "".join(BYTE_LEVEL.get(ch, ch) for ch in text)
    for ch in "\n\t\r":
        text = text.replace(ch, VISIBLE[ch])
    core = text.strip(" ")
    if not core:
        return VISIBLE[" "] * len(text)
    lead, trail = len(text) - len(text.lstrip(" ")), len(text) - len(text.rstrip(" "))
    return VISIBLE[" "] * lead + core + VISIBLE[" "] * trail


def _number(v, precision: int, whole: bool = True) -> str:
    if isinstance(v, bool):   # a reader's word, not Python's
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:d}"
    if v != v:
        return MISSING
    if math.isinf(v):
        return "\u221e" if v > 0 else "\u2212\u221e"
    # whole: a float that is a whole number is a count (15.0 -> "15"); in a column of measurements it is not
    # (a difference of exactly 0 reads "0.00" beside "-1.79")
    return f"{v:.0f}" if whole and float(v).is_integer() and abs(v) < 1e15 else f"{v:.{precision}f}"


def cell_text(v, precision: int = 2) -> str:
    """An object cell as text: a token list joined with visible whitespace, a dict as ``key: value`` with its
    numbers rounded, an interval pair as ``[low, high]``, a missing value as an em dash."""
    if v is None or (isinstance(v, float) and v != v):
        return MISSING
    if isinstance(v, str):
        return visible_token(v)
    if isinstance(v, dict):
        return "; ".join(f"{cell_text(k, precision)}: {cell_text(x, precision)}" for k, x in v.items())
    if isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
        return MISSING if any(x != x for x in v) else "[" + ", ".join(f"{x:.{precision}f}" for x in v) + "]"
    if isinstance(v, (list, tuple, set)):
        return ", ".join(cell_text(x, precision) for x in v)
    if isinstance(v, (int, float)) or hasattr(v, "item"):
        return _number(v.item() if hasattr(v, "item") else v, precision)
    return str(v)


def _is_interval(text) -> bool:
    return isinstance(text, str) and text.startswith("[") and text.endswith("]") and text.count(",") == 1 and all(
        _is_number(x) for x in text[1:-1].split(","))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def anchor(csv: str) -> str:
    """The HTML id of a table shown with ``readable(..., csv="notebook/name")``: links to a table land on it."""
    return "T_" + csv.replace("/", "-")


def csv_link(csv: str) -> str:
    """Where a page's table CSV is published, relative to the page (book/_ext/csv_tables.py copies it there)."""
    return f"tables/{csv}.csv"


def readable(df, precision: int = 2, formats: dict | None = None, caption: str | None = None,
             csv: str | None = None):
    """A table for a page: no index column, numbers rounded (``formats`` maps a column to its own format,
    e.g. ``{"p": "{:.1e}"}`` for p-values that rounding would show as 0) and set on one line, right-aligned in
    tabular figures; counts as integers, an em dash for a missing value, tokens with visible whitespace, and
    text from the data escaped in cells and headers (a token such as ``<bos>`` is text, not an HTML tag). A
    named index (a groupby or pivot key) becomes columns rather than being hidden; multi-level column labels
    are joined. ``caption`` (e.g. "Table 2. Ticket sizes per seed") becomes the table's caption. ``csv``
    ("notebook/name", the name :func:`kslottery.study.results.save_tables` saved the data under) gives the
    table a stable anchor (:func:`anchor`) and ends its caption with a link to the published CSV."""
    df = df.to_frame() if isinstance(df, pd.Series) else df
    if isinstance(df.columns, pd.MultiIndex):
        df = df.set_axis([" ".join(str(part) for part in c if str(part)) for c in df.columns], axis=1)
    if any(name is not None for name in df.index.names):
        df = df.reset_index()
    df = df.rename_axis(columns=None).copy()
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]
    for col in df.columns:   # text, tokens, lists, dicts, intervals (object or string dtype), yes/no
        if col not in numeric:
            df[col] = df[col].map(lambda v: cell_text(v, precision)).astype(object)
    formats = {**_default_formats(df, numeric, precision), **(formats or {})}
    styler = (df.style.hide(axis="index").format(formats, precision=precision, na_rep=MISSING, escape="html")
              .format_index(escape="html", axis=1))
    styles = {c: [{"selector": "td", "props": NUMBER_STYLE}, {"selector": "th", "props": "text-align: right"}]
              for c in numeric}
    # Cells stay on one line (book/_vendor/tables.css) except long text (notes, token lists): it wraps between
    # words, in a column wide enough to read.
    styles |= {c: [{"selector": "td", "props": TEXT_STYLE}] for c in df.columns
               if c not in numeric and df[c].map(lambda v: len(str(v))).max() > 24}
    # An interval ("[-2.26, -1.30]") is a number too: one line, right-aligned, wherever the table is shown.
    styles |= {c: [{"selector": "td", "props": NUMBER_STYLE}, {"selector": "th", "props": "text-align: right"}]
               for c in df.columns if c not in numeric and df[c].map(_is_interval).any()
               and df[c].map(lambda v: _is_interval(v) or v == MISSING).all()}
    if styles:
        styler = styler.set_table_styles(styles, overwrite=False)
    if csv:
        styler = styler.set_uuid(anchor(csv)[2:])
        link = f'<a class="csv-link" href="{csv_link(csv)}">CSV</a>'
        caption = f"{caption} {link}" if caption else link
    return styler.set_caption(caption) if caption else styler


def _default_formats(df: pd.DataFrame, numeric: list, precision: int) -> dict:
    """Whole numbers stored as floats (a seed or a count next to a NaN or an infinity) without decimals, an
    infinity as the sign ∞; other floats at ``precision``."""
    out = {}
    for col in numeric:
        finite = [v for v in df[col].dropna() if math.isfinite(v)]
        if pd.api.types.is_float_dtype(df[col]) and (not finite or all(float(v).is_integer() for v in finite)):
            out[col] = lambda v: _number(v, 0)
        elif pd.api.types.is_float_dtype(df[col]):
            out[col] = lambda v, p=precision: _number(v, p, whole=False)
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


PLUMBING_VERDICT = "none: plumbing test"


def evidence_link(evidence: str, base: str = "") -> str:
    """A claims-table cell "notebook/name" (or "notebook/name#rowN") as a link to that table's anchor (or to its row
    N, counted from 0, whose first cell pandas names ``<anchor>_rowN_col0``) on the notebook's page (``base``:
    the path from the page showing the link to the profile's pages, e.g. "results/default/" from the landing
    page); an empty cell as an em dash."""
    if not evidence:
        return MISSING
    evidence, _, row = evidence.partition("#")   # "notebook/name#row3": that row of the table
    notebook, name = evidence.split("/", 1)
    target = anchor(evidence) + (f"_{row}_col0" if row else "")
    text = f'{notebook.replace("_", " ")}: {name.replace("_", " ")}' + (f", row {int(row[3:]) + 1}" if row else "")
    return f'<a class="evidence" href="{base}{notebook}.html#{target}">{text}</a>'


def intervals_on_one_line(text) -> str:
    """A text cell as HTML (escaped) whose intervals, with the level before them ("90 % [-4.9, -2.4]"), never
    break across lines: the words around them wrap, the numbers of one interval stay together."""
    return re.sub(r"(?:\d+ % )?\[[^\]]*\]", lambda m: f'<span class="interval">{m.group()}</span>',
                  html.escape(str(text), quote=False))


def claims_table(table: pd.DataFrame, caption: str | None = None, plumbing: bool = False, base: str = "",
                 csv: str | None = None):
    """The claims table for a page: HTML in the data escaped (a token like ``<s>`` is text, not a tag), no
    index; text cells wrap between words (never inside a number or a word), and a table wider than the column
    scrolls in its container (book/_vendor/tables.css). The ``evidence`` column links each claim to the table
    that holds its number (:func:`evidence_link`, ``base`` as there); ``csv`` as in :func:`readable`. A plumbing
    profile's table (``plumbing``,
    the smoke profile) carries no verdict words: a tiny random model reproduces nothing and refutes nothing."""
    if plumbing and "verdict" in table.columns:
        table = table.assign(verdict=PLUMBING_VERDICT)
    styler = (readable(table, caption=caption, csv=csv)
              .set_table_styles([{"selector": "td, th", "props": "white-space: normal; overflow-wrap: normal; "
                                                              "min-width: 6em; max-width: 24em; text-align: left"}],
                                overwrite=False)
              # readable()'s long-text columns ask for 12em each: five of them overflow the landing page's column,
              # so here a column may narrow to 5em and the words wrap (same specificity, set later: it wins)
              .set_table_styles({c: [{"selector": "td", "props": "min-width: 5em"}] for c in table.columns},
                                overwrite=False))
    text = [c for c in table.columns if c in ("this study", "in brief")]
    if text:
        styler = styler.format(intervals_on_one_line, subset=text)
    if "evidence" in table.columns:
        styler = styler.format(lambda v: evidence_link(v, base), subset=["evidence"])
    if "verdict" in table.columns:
        styler = styler.map(verdict_style, subset=["verdict"])
    return styler if csv else styler.set_uuid("claims")


# Verdicts marked so the eye finds them (Okabe-Ito hues, light enough for black text), the word always written;
# one colour per word of the study's verdict vocabulary (kslottery.study.verdicts.VERDICT_WORDS).
VERDICT_COLOURS = {"reproduced": "rgba(0, 158, 115, 0.18)", "not reproduced": "rgba(213, 94, 0, 0.18)",
                   "inconclusive": "rgba(240, 228, 66, 0.35)", "not testable": "rgba(153, 153, 153, 0.18)"}


def verdict_style(verdict: str) -> str:
    """The CSS of a verdict cell: bold, on the colour of the verdict's word (:func:`verdict_word`)."""
    word = verdict_word(verdict)
    return "font-weight: 600" + (f"; background-color: {VERDICT_COLOURS[word]}" if word else "")


def prose(text: str):
    """A Markdown text (an answer, a list of findings) as HTML for glue: another page pastes a glued value through
    a pending reference, which renders HTML but shows Markdown as its Python repr."""
    from IPython.display import HTML
    from markdown_it import MarkdownIt

    return HTML(f'<div class="glued-prose">{MarkdownIt("commonmark").render(text)}</div>')

"""What a profile's published pages found, in a terminal: the verdicts, the fair test's comparisons with both
intervals, the learning rate each arm family got, the exposure control per seed, and what it all cost.

    kslottery summary --profile smoke

It reads only what ``kslottery run`` published into ``book/results/PROFILE/`` (the tables as CSV and
``provenance.json``), so it answers on a clean clone, on a cluster without a book build, and for exactly the
numbers the book shows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from ..method.errors import KSLError
from ..study.results import book_dir, repo_root
from .profile_schema import RESERVED
from .profiles import totals


def published(profile: str, notebook: str, table: str, root: Path | None = None) -> pd.DataFrame | None:
    """A table as the book publishes it (CSV beside the page), as text; None when the notebook has not run."""
    path = book_dir(profile, notebook, root) / f"{table}.csv"
    return pd.read_csv(path, dtype=str, keep_default_na=False) if path.exists() else None


def _two_places(text: str) -> str:
    """-6.2821286845 -> -6.28 inside any cell (differences, interval bounds); integers stay as they are."""
    return re.sub(r"-?\d+\.\d{3,}", lambda m: f"{float(m.group()):.2f}", text)


def _section(title: str, df: pd.DataFrame | None, columns: list[str]) -> list[str]:
    if df is None:
        return [f"\n{title}: not executed in this profile"]
    cols = [c for c in columns if c in df.columns]
    # a learning rate (3e-4) is a setting, not a measurement: two places would print it as 0.00
    shown = df[cols].apply(lambda c: c if c.name == "lr" else c.map(_two_places))
    return [f"\n{title}", shown.to_string(index=False, max_colwidth=60)]


def summary(profile: str, root: Path | None = None) -> str:
    """The text ``kslottery summary`` prints for a profile's published pages."""
    here = Path.cwd() / "book" / "results" / profile / "provenance.json"
    # a user's profile publishes where the user works (report.profile_schema.Profile.home); the package's own
    # names are always the checkout's
    root = root or (Path.cwd() if here.exists() and profile not in RESERVED else repo_root())
    prov_path = root / "book" / "results" / profile / "provenance.json"
    if not prov_path.exists():
        raise KSLError(f"profile {profile!r} has no executed pages in {prov_path.parent}",
                       f"run `kslottery run --profile {profile}` first")
    c = totals(json.loads(prov_path.read_text()))
    rss = "unknown" if c["peak_rss_gib"] is None else f"{c['peak_rss_gib']:.1f} GiB"
    lines = [f"profile {profile}: {c['notebooks']} notebooks executed at {', '.join(c['commits'])}; "
             f"{c['runs']} distinct runs, {c['compute_s'] / 3600:.2f} h of compute, peak RSS {rss}"]
    claims = published(profile, "paper_vs_study", "claims", root)
    lines += _section("Claims of the paper (the landing page's table)", claims,
                      ["verdict", "claim", "model", "in brief", "protocol"])
    comps = published(profile, "fair_test", "comparisons", root)
    lines += _section("Fair test: each comparison is b - a in chrF++", comps,
                      ["model", "role", "a", "b", "kind", "seeds", "b - a", "90 % (union)", "95 % (union)",
                       "p difference (Holm)", "p equivalence (Holm)", "outcome"])
    lines += _section("Learning rate chosen for each arm family on held-out dev pairs",
                      published(profile, "fair_test", "selection", root),
                      ["model", "family", "lr", "dev chrF++ (mean)", "runs", "chosen"])
    lines += _section("Exposure control per seed", published(profile, "fair_test", "exposure", root),
                      ["model", "seed", "Adam ticket rows", "Jaccard with earliest-seen rows",
                       "Adam ticket - earliest-seen rows",
                       "Jaccard with most frequent rows", "Adam ticket - most frequent rows"])
    return "\n".join(lines) + "\n"

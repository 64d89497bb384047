"""Every run-derived number in the book's prose reaches it through glue (issue: numbers flow from runs to prose
mechanically). A decimal number or a percentage typed into a chapter outside a glue role, code or math is
taken for a hand-copied result; the allow-list holds constants (alpha levels, scale factors, the equivalence
margin) and the paper's own published figures, which no run of this study computes."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
PAPER = {"5.7", "37.7", "29.0", "27.3", "27.9", "28.8", "17.4", "0.94", "2402.02801",
         "0.3", "33.8", "0.64", "0.72"}   # the paper, the replication
# alpha levels, sigma grid, scale factors and margins, confidence levels, the "within 10 %" rule
CONSTANTS = {"0.05", "0.01", "0.001", "0.003", "0.03", "0.1", "0.5", "1.0", "2.0", "3.0", "5.0", "95%", "90%", "10%", "5%"}
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?:\.\d+)?\s?%)(?![\w.])")


def hand_typed(text: str) -> list[str]:
    for pattern in (r"```.*?```", r"\{glue[^}]*\}`[^`]*`", r"`[^`]*`", r"\$\$.*?\$\$|\$[^$\n]*\$", r"\]\([^)]*\)"):
        text = re.sub(pattern, "", text, flags=re.S)
    return [m.replace(" ", "") for m in NUMBER.findall(text) if m.replace(" ", "") not in PAPER | CONSTANTS]


@pytest.mark.parametrize("text, found", [
    ("KS top-18 at 72 % of embedding tuning", ["72%"]),
    ("reaches {glue:text}`results/default/x.ipynb::score:.1f` chrF++", []),
    ("at alpha 0.05, the paper's 5.7 → 37.7", []),
    ("a step costs 0.60 s (`0.60` in code is fine)", ["0.60"]),
    ("```python\nx = 13.9\n```", []),
])
def test_the_rule_finds_typed_numbers_and_spares_glue_code_and_constants(text, found):
    assert hand_typed(text) == found


@pytest.mark.parametrize("chapter", sorted(p.name for p in BOOK.glob("*.md")))
def test_no_chapter_carries_a_hand_typed_result(chapter):
    hits = hand_typed((BOOK / chapter).read_text(encoding="utf-8"))
    assert not hits, f"{chapter}: numbers typed by hand (glue them from the notebook that computes them): {hits}"


@pytest.mark.parametrize("notebook", sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")))
def test_no_notebook_narrative_carries_a_hand_typed_result(notebook):
    # The narrative is written before the notebook runs, so a result typed into it cannot be the run's own.
    cells = json.loads((ROOT / "notebooks" / notebook).read_text(encoding="utf-8"))["cells"]
    hits = [(i, hand_typed("".join(c["source"]))) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]
    hits = [(i, h) for i, h in hits if h]
    assert not hits, f"{notebook}: numbers typed by hand in markdown cells (glue them instead): {hits}"

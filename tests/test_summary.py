"""`kslottery summary` prints exactly what a profile's published pages hold (here the smoke pages in the repo)."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from kslottery.cli import main
from kslottery.report.summary import _two_places

SMOKE = Path(__file__).resolve().parents[1] / "book" / "results" / "smoke"


def test_the_summary_prints_the_smoke_pages_verdicts_comparisons_and_cost(capsys):
    assert main(["summary", "--profile", "smoke"]) == 0
    out = capsys.readouterr().out
    prov = json.loads((SMOKE / "provenance.json").read_text())
    assert out.startswith(f"profile smoke: {len(prov)} notebooks executed at {prov['fair_test']['git_commit'][:12]};")
    # the compute total is the provenance page's (each shared run counted once)
    page_total = re.search(r"\*\*([0-9.]+) h\*\*", (SMOKE / "provenance.md").read_text()).group(1)
    assert f", {page_total} h of compute" in out.splitlines()[0]
    comps = pd.read_csv(SMOKE / "tables" / "fair_test" / "comparisons.csv")
    rows = [line.split() for line in out.splitlines() if line.lstrip().startswith("tiny:")
            and line.split()[1] in ("primary", "secondary")]
    assert len(rows) == len(comps) == 2 * 12   # two models, every declared comparison whose arms the smoke design runs
    first = comps.iloc[0]
    assert rows[0][:2] == [first["model"], "primary"] and _two_places(str(first["b - a"])) in rows[0]
    assert rows[0][-1] == first["outcome"]
    chosen = pd.read_csv(SMOKE / "tables" / "fair_test" / "selection.csv").query("chosen")
    assert len(chosen) == 6 and out.count(" True") == 6   # one rate per family and model
    # each chosen learning rate prints as published, never rounded away (3e-4 to two places is 0.00)
    selection = out.split("Learning rate chosen")[1].split("Exposure control")[0].splitlines()
    for _, row in chosen.iterrows():
        assert any(line.split()[:3] == [row["model"], row["family"], str(row["lr"])] for line in selection), row.to_dict()


def test_a_profile_without_pages_is_one_line_naming_the_fix(capsys):
    assert main(["summary", "--profile", "never-ran"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("run `kslottery run --profile never-ran` first")


@pytest.mark.parametrize("cell,shown", [("-6.2821286845", "-6.28"), ("[-2.2565, -1.3048]", "[-2.26, -1.30]"),
                                        ("0.0", "0.0"), ("12", "12"), ("fair-v1 (smoke)", "fair-v1 (smoke)")])
def test_numbers_print_to_two_places(cell, shown):
    assert _two_places(cell) == shown

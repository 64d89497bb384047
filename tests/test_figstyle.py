"""Figures for reading: every text of a finished figure stays legible at the book's column width, the PNG holds
at least twice the pixels it is shown at, legends hold at most six entries, and a caption's context line
names the run behind the figure."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from kslottery.report import figstyle  # noqa: E402


def shown(fig, column: float = figstyle.COLUMN_PX) -> tuple[float, float]:
    """(natural width of the saved PNG, smallest text as shown in a column ``column`` px wide, px)."""
    from matplotlib.text import Text
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    width_px = Image.open(buf).size[0]
    fig.canvas.draw()
    texts = [t for t in fig.findobj(Text) if t.get_text() and t.get_visible()]
    scale = min(1.0, column / width_px)   # the column shrinks a wider PNG
    return width_px, min(t.get_fontsize() * fig.dpi / 72.0 * scale for t in texts)


@pytest.mark.parametrize("width", [5.0, 8.0, 13.0])
def test_a_finished_figure_is_sharp_and_its_text_legible_in_the_column(width):
    fig, ax = plt.subplots(figsize=(width, 3.5))
    ax.plot([0, 1], [0, 1], label="a")
    ax.set_xlabel("x", fontsize=6)
    ax.legend(fontsize=6)
    before_px, before_text = shown(fig)
    figstyle.finish(fig)
    width_px, text_px = shown(fig)
    assert width_px >= 2 * figstyle.COLUMN_PX
    assert text_px >= figstyle.MIN_TEXT_PX
    if width >= 8:   # the check can fail: the same figure unfinished is too small or too soft
        assert before_px < 2 * figstyle.COLUMN_PX or before_text < figstyle.MIN_TEXT_PX
    plt.close(fig)


def test_a_legend_of_more_than_six_entries_becomes_labels_on_the_lines():
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i in range(9):
        ax.plot([0, 1], [0, i], label=f"run {i}")
    ax.legend()
    figstyle.finish(fig)
    assert ax.get_legend() is None
    assert sorted(t.get_text() for t in ax.texts) == sorted(f"run {i}" for i in range(9))
    fig2, ax2 = plt.subplots()
    for i in range(3):
        ax2.plot([0, 1], [0, i], label=f"run {i}")
    ax2.legend()
    figstyle.finish(fig2)
    assert ax2.get_legend() is not None and not ax2.texts
    plt.close("all")


def test_the_palette_is_colour_blind_safe_while_it_lasts():
    assert figstyle.palette(4) == figstyle.OKABE_ITO[:4]
    assert len(figstyle.palette(12)) == 12


def test_the_caption_context_names_profile_model_pair_budget_seeds_and_sentences():
    from kslottery.report.profiles import load_profile, notebook_parameters

    params = notebook_parameters(load_profile("smoke"), "certification", "smoke")
    line = figstyle.caption_context(params)
    for part in ("profile smoke", "model tiny:smollm2-135m", "pair eng_Latn→cat_Latn", "budget ",
                 "16 training pairs", "batch 4", "seeds 0, 1", "sentences 3 devtest"):
        assert part in line, (part, line)
    assert not line.endswith(".")   # the caption's own full stop ends it: "Run: ... devtest." not "devtest.."
    sweep = figstyle.caption_context(notebook_parameters(load_profile("default"), "budget_sweep", "default"))
    assert "Adam lr 0.005/0.01/0.02" in sweep
    assert "snapshots at 1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/24/32/48/64 steps" in sweep


def test_every_figure_caption_names_the_run_behind_it():
    """Each notebook that draws figures glues its caption context, and every figure caption cites it."""
    from pathlib import Path

    import nbformat

    missing = []
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        figures = [c for c in nb.cells if "figure" in c.metadata.get("mystnb", {})]
        if figures and not any('glue("figure_context", ' in c.source and "caption_context(" in c.source
                               for c in nb.cells):
            missing.append(f"{path.name}: no figure_context glue")
        missing += [f"{path.name}: {c.metadata['mystnb']['figure']['name']}" for c in figures
                    if "{glue:text}`figure_context`" not in c.metadata["mystnb"]["figure"]["caption"]]
    assert not missing, missing


def test_a_notebook_that_scores_nothing_names_no_sentences():
    assert "sentences" not in figstyle.caption_context({"profile": "default", "seeds": [0], "eval_limit": None})


def test_the_landing_figures_phone_variant_is_legible_in_a_phones_column_where_the_wide_one_is_not():
    import pandas as pd

    from kslottery.report import plots

    arms = ["embedding tuning", "full fine-tuning", "Adam ticket", "frequency-matched rows"]
    family = {"embedding tuning": "embed", "full fine-tuning": "full", "Adam ticket": "rows",
              "frequency-matched rows": "rows"}
    scores = pd.DataFrame([{"model": m, "arm": a, "seed": s, "chrf++ whole": 30.0 + s + len(a) / 10}
                           for m in ("gemma3-270m", "smollm2-135m") for a in ["base", *arms] for s in range(3)])
    wide, phone = plots.seed_scores(scores, family, layout="side"), plots.seed_scores(scores, family, layout="phone")
    assert shown(wide)[1] >= figstyle.MIN_TEXT_PX   # the wide one in the book's column, its legend included
    wide_px, wide_text = shown(wide, figstyle.PHONE_COLUMN_PX)
    phone_px, phone_text = shown(phone, figstyle.PHONE_COLUMN_PX)
    assert wide_text < 7.0 <= figstyle.MIN_TEXT_PX <= phone_text   # the wide figure on a phone: 5.7 px text
    assert phone_px >= 2 * figstyle.PHONE_COLUMN_PX
    # the phone's variant names each arm above its row, not beside it
    assert [t.get_text() for t in phone.axes[0].texts] == arms
    forest = plots.verdict_forest(pd.DataFrame([{
        "model": m, "a": "frequency-matched rows", "b": "Adam ticket", "b - a": -0.5, "bootstrap 95 %": (-1.2, 0.3),
        "t 95 %": (-1.5, 0.5), "90 % (union)": (-1.3, 0.4), "outcome": "equivalent; b slightly worse",
        "role": "primary"} for m in ("gemma3-270m", "smollm2-135m")]), margin=2.0, layout="phone")
    assert shown(forest, figstyle.PHONE_COLUMN_PX)[1] >= figstyle.MIN_TEXT_PX
    for fig in (wide, phone, forest):
        plt.close(fig)


def test_a_picture_carries_both_variants_for_the_browser_to_choose_and_one_alt_text():
    """figstyle.picture: one figure on the page (numbered once), the phone's PNG as the <source> a narrow screen
    takes, the wide one as the <img> every other screen shows, each at its own figure's size; both figures closed."""
    import base64
    import re

    from PIL import Image

    wide, phone = plt.figure(figsize=(8, 3), dpi=100), plt.figure(figsize=(4, 5), dpi=100)
    for fig in (wide, phone):
        fig.add_subplot().plot([0, 1])
    html = figstyle.picture(wide, phone, alt='Scores "by seed" & model').data
    assert not plt.fignum_exists(wide.number) and not plt.fignum_exists(phone.number)
    media, narrow, broad, alt = re.fullmatch(
        r'<picture class="ksl-picture"><source media="([^"]+)" srcset="data:image/png;base64,([^"]+)">'
        r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"></picture>', html).groups()
    assert media == figstyle.PHONE_MEDIA and alt == "Scores &quot;by seed&quot; &amp; model"
    size = {k: Image.open(io.BytesIO(base64.b64decode(v))).size for k, v in (("phone", narrow), ("wide", broad))}
    assert size["wide"][0] > size["wide"][1] and size["phone"][0] < size["phone"][1], size

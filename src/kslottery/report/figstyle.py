"""Figures for reading: resolution, text size, colours, legends and captions shared by every figure of
:mod:`kslottery.report.plots`.

The book's content column is about ``COLUMN_PX`` CSS pixels wide and shrinks a wider figure to fit. A figure
``w`` inches wide is therefore shown at ``COLUMN_PX / w`` pixels per inch, whatever its dpi: text of ``s``
points appears ``s * COLUMN_PX / (72 w)`` pixels high. :func:`finish` raises every text of a figure to the size
that keeps it at least ``MIN_TEXT_PX`` there, and sets the dpi so the PNG holds at least twice the pixels it
is shown at (sharp on a high-density screen, and when zoomed).
"""

from __future__ import annotations

import base64
import html
import math

import matplotlib.pyplot as plt
import seaborn as sns

COLUMN_PX = 690          # the content column of the book at a 1280 px window (sphinx-book-theme)
PHONE_COLUMN_PX = 358    # the column on a phone held upright (390 px less the theme's margins): a narrow variant
MIN_TEXT_PX = 11.0       # the body's small print
MIN_DPI = 200
# Okabe & Ito (2008): eight colours told apart with every common colour-vision deficiency.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
MAX_LEGEND = 6           # more entries than this are labelled on the lines instead


def apply_theme() -> None:
    """Seaborn's white grid with the colour-blind-safe palette, and figures at ``MIN_DPI``."""
    sns.set_theme(style="whitegrid", context="notebook", palette=OKABE_ITO)
    plt.rcParams.update({"figure.dpi": MIN_DPI, "savefig.dpi": MIN_DPI, "savefig.bbox": "tight"})


def palette(n: int) -> list:
    """``n`` distinguishable colours: Okabe-Ito while it lasts, then a cividis ramp (ordered, grey-safe)."""
    return OKABE_ITO[:n] if n <= len(OKABE_ITO) else sns.color_palette("cividis", n)


def min_points(width_in: float, column_px: float = COLUMN_PX) -> float:
    """The smallest font size (points) that stays ``MIN_TEXT_PX`` high when a figure ``width_in`` inches wide
    is shrunk to a column of ``column_px`` (every figure stored at ``MIN_DPI`` or more is wider than the column).
    A tenth more for what a tight bounding box adds around the axes (an outside legend, direct labels)."""
    return 1.1 * MIN_TEXT_PX * 72.0 * width_in / column_px


def direct_labels(ax, size: float | None = None) -> None:
    """Replace the axes' legend by labels at the end of each line (or beside each group of points), moved
    apart vertically where they would overlap."""
    import numpy as np

    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend():
        ax.get_legend().remove()
    ax.autoscale_view()
    placed = []
    for handle, label in zip(handles, labels):
        if hasattr(handle, "get_xydata") and len(handle.get_xydata()):
            point, color = handle.get_xydata()[-1], handle.get_color()
            to_display = handle.get_transform()
        elif hasattr(handle, "get_offsets") and len(handle.get_offsets()):
            point = np.asarray(handle.get_offsets()).mean(axis=0)
            color = handle.get_facecolor()[0] if len(handle.get_facecolor()) else "0.2"
            to_display = handle.get_offset_transform()
        else:
            continue
        x, y = ax.transAxes.inverted().transform(to_display.transform(point))
        placed.append([min(max(x, 0.0), 1.0), y, label, color])
    size = size or plt.rcParams["legend.fontsize"]
    if isinstance(size, str):
        size = plt.rcParams["font.size"]
    gap = 1.15 * size / 72.0 / max(ax.get_position().height * ax.figure.get_size_inches()[1], 1e-3)
    placed.sort(key=lambda p: p[1])
    for below, above in zip(placed, placed[1:]):
        above[1] = max(above[1], below[1] + gap)
    for x, y, label, color in placed:
        ax.annotate(label, xy=(x, y), xycoords="axes fraction", xytext=(4, 0), textcoords="offset points",
                    va="center", color=color, fontsize=size, annotation_clip=False)


def tidy_legends(fig, column_px: float = COLUMN_PX) -> None:
    """At most ``MAX_LEGEND`` legend entries per axes: a longer legend becomes labels on the lines."""
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is not None and len(legend.get_texts()) > MAX_LEGEND:
            direct_labels(ax, size=min_points(fig.get_size_inches()[0], column_px))


PHONE_MEDIA = "(max-width: 599.98px)"   # where tables.css switches to the phone layout


def picture(wide, phone, alt: str):
    """One figure for every screen: ``wide`` drawn for the book's column, ``phone`` its narrow variant (drawn for
    ``PHONE_COLUMN_PX``), as an HTML ``<picture>`` from which the browser takes the narrow one on a phone. So the
    page shows, captions and numbers it once (two figures would be numbered twice, one of them hidden), and both
    carry ``alt`` for a screen reader. Both figures are closed: the cell shows the picture, not them."""
    from IPython.core.pylabtools import print_figure
    from IPython.display import HTML

    def uri(fig) -> str:   # the PNG the notebook's inline backend would write: the figure's own dpi, tight box
        png = print_figure(fig, "png", bbox_inches="tight")
        plt.close(fig)
        return "data:image/png;base64," + base64.b64encode(png).decode()

    return HTML(f'<picture class="ksl-picture"><source media="{PHONE_MEDIA}" srcset="{uri(phone)}">'
                f'<img src="{uri(wide)}" alt="{html.escape(alt)}"></picture>')


def finish(fig, tight: bool = True, column_px: float = COLUMN_PX):
    """Make a figure legible in the book: legends of at most six entries, every text at least
    ``MIN_TEXT_PX`` when shown in a column of ``column_px`` (``PHONE_COLUMN_PX`` for a phone's narrow variant),
    and a dpi that stores at least twice the shown pixels."""
    from matplotlib.text import Text

    tidy_legends(fig, column_px)
    width = fig.get_size_inches()[0]
    floor = min_points(width, column_px)
    for ax in fig.axes:   # tick labels are made again at each draw: set their size on the axes
        for axis in ("x", "y"):
            size = getattr(ax, f"{axis}axis").get_ticklabels()[:1]
            if not size or size[0].get_fontsize() < floor:
                ax.tick_params(axis=axis, which="both", labelsize=floor)
    for text in fig.findobj(Text):
        if text.get_text() and text.get_fontsize() < floor:
            text.set_fontsize(floor)
    fig.set_dpi(max(MIN_DPI, math.ceil(2.2 * column_px / width)))
    if tight:
        fig.tight_layout()
    if _slant_crowded_ticks(fig) and tight:
        fig.tight_layout()
    return fig


def _slant_crowded_ticks(fig) -> bool:
    """Slant the x tick labels of every axes where neighbours overlap (category names under a heatmap)."""
    renderer = fig.canvas.get_renderer()
    slanted = False
    for ax in fig.axes:
        boxes = sorted((t.get_window_extent(renderer) for t in ax.get_xticklabels() if t.get_text() and t.get_visible()),
                       key=lambda b: b.x0)
        if any(a.x1 > b.x0 - 2 for a, b in zip(boxes, boxes[1:])):
            ax.tick_params(axis="x", labelrotation=30)
            for label in ax.get_xticklabels():
                label.set_horizontalalignment("right")
                label.set_rotation_mode("anchor")
            slanted = True
    return slanted


def _pairs(params: dict) -> str:
    pairs = params.get("pairs") or ([params["pair"]] if params.get("pair") else [])
    return ", ".join(p.replace("-", "→") for p in pairs)


LR_NAMES = {"lr": "lr", "lr_embed": "embedding lr", "lr_full": "full-tuning lr", "lr_rows": "row lr",
            "lr_lora": "LoRA lr", "lr_prefix": "prefix lr", "sgd_lr": "SGD lr"}


def _budget(params: dict) -> str:
    """Training pairs, batch, epochs (and the steps they make), learning rates, snapshots and the rule that
    chose a budget from the sweep; empty for a notebook that trains nothing."""
    if not params.get("train_limit"):
        return ""
    parts = [f"{params['train_limit']} training pairs"]
    if params.get("batch_size"):
        parts.append(f"batch {params['batch_size']}")
    if params.get("epochs"):
        epochs = params["epochs"]
        parts.append(f"{epochs:g} epoch{'' if epochs == 1 else 's'}")
        if params.get("batch_size"):
            parts[-1] += f" ({math.ceil(params['train_limit'] / params['batch_size']) * epochs:g} steps)"
    parts += [f"{name} {params[key]:g}" for key, name in LR_NAMES.items()
              if isinstance(params.get(key), (int, float)) and not isinstance(params.get(key), bool)]
    if params.get("lrs"):
        parts.append("Adam lr " + "/".join(f"{v:g}" for v in params["lrs"]))
    if params.get("snapshots"):
        parts.append("snapshots at " + "/".join(str(s) for s in params["snapshots"]) + " steps")
    if params.get("choice_rule"):
        at_least = f" of at least {params['min_ticket']} rows" if params.get("min_ticket") else ""
        parts.append(f"the smallest swept budget with a {params['choice_rule']} ticket{at_least}")
    return ", ".join(parts)


def _seeds(params: dict) -> str:
    seeds = params.get("seeds")
    if isinstance(seeds, str):   # already worded, e.g. arms run on different seeds
        return seeds
    if seeds is None and params.get("seed") is not None:
        seeds = [params["seed"]]
    return ", ".join(str(s) for s in seeds) if seeds else ""


def caption_context(params: dict) -> str:
    """The run behind a figure or table in one line, from a notebook's parameters (its globals after the
    profile's parameters were injected): profile, model, pair, budget, seeds and sentences. A notebook glues
    it under a name and its captions cite it, so a caption never repeats a number by hand; the caption ends
    the sentence (no full stop here)."""
    sentences = params.get("eval_limit") or params.get("limit") or params.get("sentences")
    pairs = _pairs(params)
    fields = [("profile", params.get("profile")), ("model", params.get("model")),
              ("pairs" if "," in pairs else "pair", pairs),
              ("budget", _budget(params)), ("seeds", _seeds(params)),
              ("sentences", f"{sentences} devtest" if sentences else "")]
    return "; ".join(f"{name} {value}" for name, value in fields if value)

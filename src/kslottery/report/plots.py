"""Seaborn figures for the notebooks: one function per figure, each returning the matplotlib Figure, finished
for reading by :func:`kslottery.report.figstyle.finish` (text size, resolution, legends, colour-blind-safe
colours)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import seaborn as sns
from scipy import stats

from ..method.certify import max_radius
from ..method.ticket import RULE_NAMES

# caption_context is re-exported: a notebook writes plots.caption_context(globals()) for its captions
from .figstyle import COLUMN_PX, PHONE_COLUMN_PX, apply_theme, caption_context, finish, min_points, palette  # noqa: F401

apply_theme()


def baseline_heatmap(df, metric: str = "chrf++"):
    """Score of the base model per template (rows) and extraction rule (columns), one panel per pair."""
    pairs = list(dict.fromkeys(df["pair"]))
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 3.2), squeeze=False)
    for ax, pair in zip(axes[0], pairs):
        grid = df[df["pair"] == pair].pivot(index="template", columns="rule", values=metric)
        sns.heatmap(grid, annot=True, fmt=".1f", cmap="cividis", ax=ax, cbar=False)
        ax.set_title(f"{pair}: {metric}")
    return finish(fig)


def certified_rates(rates):
    """Per noise level, each object's certified-agreement rate with its 95 % interval, beside the share of
    contexts below the ceiling (the most it could be) and how often the smoothed prediction is the model's."""
    sigmas = sorted(rates["sigma"].unique())
    # one panel per noise level, stacked: side by side they would shrink to a third of the column each
    fig, axes = plt.subplots(len(sigmas), 1, figsize=(7.5, 2.4 * len(sigmas) + 0.6), squeeze=False, sharex=True)
    for ax, sigma in zip(axes[:, 0], sigmas):
        d = rates[rates["sigma"] == sigma].reset_index(drop=True)
        y = range(len(d))
        ax.errorbar(d["certified"], y, xerr=[d["certified"] - d["certified ci95 low"],
                                             d["certified ci95 high"] - d["certified"]],
                    fmt="o", color="C0", label="certified (95 % CI)")
        ax.scatter(d["below ceiling"], y, marker="|", s=200, color="C3", label="below the ceiling")
        ax.axvline(float(d["smoothed = model"].iloc[0]), color="0.5", ls=":", label="smoothed = model")
        ax.set_yticks(list(y), d["object"], fontsize=8)
        ax.set_xlim(-0.03, 1.03)
        ax.set_title(f"sigma {sigma:g}")
        ax.invert_yaxis()
    axes[-1][0].set_xlabel("share of contexts")
    axes[0][0].legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return finish(fig)


def ticket_size_vs_budget(table, band=(12, 18), rules=("alpha_0.05", "bh_0.05", "bonferroni_0.05")):
    """Ticket size against optimizer steps, one panel per optimizer (and model, when the table has several), a
    colour per learning rate and a line style per rule; log scale (a size of 0 drawn at 0.5), the paper's
    published sizes as a band."""
    import numpy as np
    from matplotlib.lines import Line2D

    if "model" in table and table["model"].nunique() > 1:
        table = table.assign(optimizer=table["model"] + " · " + table["optimizer"])
    optimizers = list(dict.fromkeys(table["optimizer"]))
    fig, axes = plt.subplots(1, len(optimizers), figsize=(5.6 * len(optimizers), 4.8), squeeze=False, sharey=True)
    styles = dict(zip(rules, ["-", "--", ":"]))
    for ax, opt in zip(axes[0], optimizers):
        part = table[table["optimizer"] == opt]
        colours = dict(zip(sorted(part["lr"].unique()), palette(part["lr"].nunique())))
        for lr, g in part.groupby("lr"):
            for rule in rules:
                ax.plot(g["step"], np.maximum(g[rule], 0.5), styles[rule], marker="o", ms=3, color=colours[lr])
        ax.axhspan(*band, color="tab:red", alpha=0.15)
        ax.set_xscale("log", base=2)
        # every snapshot keeps its point, but only powers of two keep a label: 6..16 on a log axis overprint
        steps = [s for s in sorted(part["step"].unique()) if s & (s - 1) == 0]
        ax.set_xticks(steps, [str(s) for s in steps])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("optimizer steps")
        ax.set_title(f"{opt}: colour = learning rate")
        handles = [Line2D([], [], color=c, marker="o", ms=3, label=f"lr {lr:g}") for lr, c in colours.items()]
        ax.legend(handles=handles, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.24), ncol=len(handles),
                  frameon=False, handlelength=1.2, columnspacing=1.0)
    style_handles = [Line2D([], [], color="0.3", ls=ls, label=RULE_NAMES[r.replace("_0.05", "")])
                     for r, ls in styles.items()]
    style_handles.append(plt.Rectangle((0, 0), 1, 1, color="tab:red", alpha=0.15,
                                       label=f"the paper's tickets ({band[0]}-{band[1]} rows)"))
    fig.legend(handles=style_handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    axes[0][0].set_ylabel("significant rows (0 at 0.5)")
    finish(fig, tight=False)
    fig.tight_layout(rect=(0, 0.14, 1, 1))
    return fig


def certifiable_radius(sigmas, alpha: float, n_used: int, norms: dict | None = None, n_max: int = 10**7):
    """The largest radius CERTIFY can return against the number of samples n, per noise level, with the
    n the study used marked and the measured perturbation norms (label -> norm) as horizontal lines."""
    import numpy as np


    ns = np.unique(np.logspace(1, np.log10(n_max), 60).astype(int))
    fig, ax = plt.subplots(figsize=(7, 4))
    for s, c in zip(sigmas, palette(len(sigmas))):
        ax.plot(ns, [max_radius(int(m), alpha, s) for m in ns], color=c, label=f"sigma {s:g}")
    ax.axvline(n_used, color="0.4", ls=":", label=f"n used ({n_used})")
    for (label, norm), c in zip((norms or {}).items(), palette(len(sigmas) + len(norms or {}))[len(sigmas):]):
        ax.axhline(norm, color=c, ls="--", lw=1, label=f"{label}: {norm:.3g}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("estimation samples n")
    ax.set_ylabel(f"largest certifiable radius (alpha {alpha:g})")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return finish(fig)


def pair_overlap(full, beyond, ceiling: float | None = None):
    """Two Jaccard heatmaps of the language pairs' tickets: every row, and without the rows that occur in
    every training example (shared by construction); the seed-to-seed overlap, a reference the pairs can
    exceed, in the title."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, m, title in ((axes[0], full, "all ticket rows"), (axes[1], beyond, "without rows in every example")):
        sns.heatmap(m, vmin=0, vmax=1, annot=True, fmt=".2f", cmap="cividis", cbar=ax is axes[1], ax=ax)
        ax.set_title(title)
    if ceiling is not None and ceiling == ceiling:
        fig.suptitle(f"ticket overlap across languages (Jaccard); same language across seeds (reference): "
                     f"{ceiling:.2f}")
    return finish(fig)


def lr_curves(selections: dict):
    """The fair test's learning-rate choice: held-out dev chrF++ against the learning rate, one panel per arm
    family and one row of panels per model (``selections``: {model: {family: selection}}, or one model's
    {family: selection}), each run a dot, the mean a line, the chosen rate marked."""
    if all("means" in v for v in selections.values()):
        selections = {"": selections}
    families = list(dict.fromkeys(f for sel in selections.values() for f in sel))
    fig, axes = plt.subplots(len(selections), len(families), figsize=(4 * len(families), 3.2 * len(selections)),
                             squeeze=False)
    for row, (model, by_family) in zip(axes, selections.items()):
        for ax, family in zip(row, families):
            sel = by_family[family]
            t = sel["table"]
            ax.scatter(t["lr"], t["dev chrf++"], s=18, color="0.5")
            ax.plot(sel["means"].index, sel["means"].values, marker="o", color="C0")
            ax.axvline(sel["chosen"], color="C3", linestyle="--")
            grid = sorted(sel["means"].index)
            # no legend: the caption says what the dots, the line and the dashes are; the title names the choice
            ax.set(xscale="log", xlabel="learning rate", ylabel="dev chrF++ (held out)",
                   title=f"{model + ': ' if model else ''}{family}, chosen {sel['chosen']:g}")
            ax.set_xticks(grid, [f"{lr:g}" for lr in grid])
            ax.minorticks_off()
    return finish(fig)


# Colour by direction (Okabe-Ito): equivalent green, b better blue, b worse vermillion, inconclusive grey.
DIRECTION_COLORS = {"equivalent": "#009E73", "better": "#0072B2", "worse": "#D55E00", "inconclusive": "0.45"}


def outcome_color(word: str) -> str:
    """The colour of an outcome word (:data:`kslottery.study.verdicts.OUTCOME_WORDS`): what it found, which way."""
    if word.startswith("equivalent"):
        return DIRECTION_COLORS["equivalent"]
    for way in ("better", "worse"):
        if way in word:
            return DIRECTION_COLORS[way]
    return DIRECTION_COLORS["inconclusive"]


def label_above(ax, row, lines, step: float, first: float = 1.0) -> None:
    """Lines of text, each ``(text, colour)``, in the top of data row ``row`` at the axes' left edge, the first
    ``first`` points down and each next 1.2 ``step`` points lower: on a phone's narrow panel a row is named above
    its data, which keep the panel's whole width."""
    for k, (text, color) in enumerate(lines):
        ax.annotate(text, xy=(0, row - 0.5), xycoords=("axes fraction", "data"), xytext=(3, -first - 1.2 * k * step),
                    textcoords="offset points", va="top", ha="left", color=color)


def verdict_forest(comparisons, margin: float, layout: str = "wide"):
    """The fair test's comparisons as a forest plot, one panel per model (stacked, so a phone reads it): b − a
    (dot) with the bootstrap 95 % interval (thick) and the seed-level t 95 % interval (thin), whose union the
    design's rules read; black ticks at the ends of the 90 % union (inside the margin means equivalent); the
    margin shaded; the primary comparisons above the dotted line; each row's outcome at its right, coloured by
    which way it went (:func:`outcome_color`). A t interval of few seeds can run far off: the axis stops a
    margin past the widest bootstrap bound (at least three margins out) and an arrow marks where a line runs on;
    only the rows within four margins of zero set the axis, a row beyond keeps its arrow and its difference.
    ``layout="phone"``: half as wide, its text sized for a phone's column, each comparison named above its row
    with its outcome, so the intervals get the column's whole width."""
    if layout not in ("wide", "phone"):
        raise ValueError(f"layout {layout!r}: use wide or phone")
    phone = layout == "phone"
    import numpy as np

    df = comparisons.reset_index(drop=True)
    if "model" not in df:
        df = df.assign(model="")
    boots = np.array([list(b) for b in df["bootstrap 95 %"]], dtype=float)
    diffs = df["b - a"].astype(float).to_numpy()
    near = np.abs(diffs) <= 4 * margin
    limit = max(3 * margin, float(np.abs(boots[near] if near.any() else boots).max()) + margin)
    models = list(dict.fromkeys(df["model"]))
    per_row, width, column = (0.85, 4.0, PHONE_COLUMN_PX) if phone else (0.4, 8, COLUMN_PX)
    heights = [per_row * int((df["model"] == m).sum()) + 0.9 for m in models]
    fig, axes = plt.subplots(len(models), 1, figsize=(width, sum(heights) + 0.8), squeeze=False,
                             gridspec_kw={"height_ratios": heights}, sharex=True)
    for ax, model in zip(axes[:, 0], models):
        part = df[df["model"] == model].reset_index(drop=True)
        ax.axvspan(-margin, margin, color="0.88", zorder=0, label=f"margin ±{margin:g}")
        ax.axvline(0, color="0.5", lw=1, zorder=1)
        for row, r in part.iterrows():
            i = row + 0.28 if phone else row   # a phone: below the comparison's name and outcome
            color = outcome_color(r["outcome"])
            (b_lo, b_hi), (t_lo, t_hi) = r["bootstrap 95 %"], r["t 95 %"]
            ax.plot([max(t_lo, -limit), min(t_hi, limit)], [i, i], color=color, lw=1.2, zorder=2)
            ax.plot([max(b_lo, -limit), min(b_hi, limit)], [i, i], color=color, lw=5, solid_capstyle="butt", zorder=3)
            ax.plot(min(max(r["b - a"], -limit), limit), i, "o", color="black", ms=4, zorder=4)
            ends = [v for v in r["90 % (union)"] if -limit <= v <= limit]
            ax.plot(ends, [i] * len(ends), "|", color="black", ms=11, mew=1.6, zorder=5, ls="none",
                    label="90 % union" if row == 0 else None)
            for end, marker in ((min(t_lo, b_lo) < -limit and -limit, "<"), (max(t_hi, b_hi) > limit and limit, ">")):
                if end is not False:
                    ax.plot(end, i, marker, color=color, ms=6, zorder=4)
            if abs(r["b - a"]) > limit:   # far off: its difference written inside the axis, by the arrow
                side = -1 if r["b - a"] < 0 else 1
                ax.annotate(f"{r['b - a']:+.1f}".replace("-", "−"), xy=(side * limit, i), xytext=(-side * 9, 0),
                            textcoords="offset points", ha="left" if side < 0 else "right", va="center",
                            color=color, bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"}, zorder=6)
            if phone:   # two lines above the row: the comparison, then its outcome in its colour
                step = min_points(width, column)
                label_above(ax, row, [(f"{r['b']} − {r['a']}", "0.25"), (r["outcome"].removeprefix("b "), color)],
                            step, first=step)
            else:
                ax.annotate(r["outcome"].removeprefix("b "), xy=(1.0, i), xycoords=("axes fraction", "data"),
                            xytext=(8, 0), textcoords="offset points", va="center", color=color)
        ax.set_yticks(range(len(part)), [""] * len(part) if phone else
                      [f"{r['b']} − {r['a']}" for _, r in part.iterrows()])
        primary = int((part["role"] == "primary").sum()) if "role" in part else 0
        if 0 < primary < len(part):
            ax.axhline(primary - 0.5, color="0.3", lw=0.8, ls=":")
        ax.set_ylim(len(part) - 0.5, -0.5)
        ax.set_xlim(-limit, limit)
        ax.grid(axis="y", visible=False)
        if model:
            ax.set_title(model, loc="left", fontweight="bold")
    axes[-1, 0].set_xlabel("chrF++ difference b − a on devtest\n95 % intervals: bootstrap thick,"
                           + ("\n" if phone else " ") + "seed-level t thin")
    # below the figure: above it, the legend would cover the first panel's title
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
               frameon=False)
    return finish(fig, column_px=column)


# An arm family as a legend names it for a reader.
FAMILY_NAMES = {"embed": "embedding tuning", "full": "full fine-tuning", "rows": "a subset of rows",
                "transfer": "rows pasted, not trained"}


def seed_scores(scores, family: dict, rule: str = "whole", layout: str = "stacked"):
    """Every arm's devtest chrF++ seed by seed (dots, coloured by the arm's family) with its mean (black bar) and
    its 95 % t interval over seeds, one row per arm in the design's order and one panel per model; the base model
    as a dashed line. ``family`` maps arm -> family. ``layout``: "stacked" (a panel per model, one under the
    other), "side" (the panels side by side, sharing the arm names: short enough for a first screen) or "phone"
    (stacked, half as wide, each arm named above its row and the text sized for a phone's column)."""
    if layout not in ("stacked", "side", "phone"):
        raise ValueError(f"layout {layout!r}: use stacked, side or phone")
    if "model" not in scores:
        scores = scores.assign(model="")
    models = list(dict.fromkeys(scores["model"]))
    df = scores[scores["arm"] != "base"]
    arms = list(dict.fromkeys(df["arm"]))
    families = list(dict.fromkeys(family[a] for a in arms))
    colors = dict(zip(families, palette(len(families))))
    phone, side = layout == "phone", layout == "side"
    width, column, per_arm = (4.0, PHONE_COLUMN_PX, 0.62) if phone else (8, COLUMN_PX, 0.27 if side else 0.36)
    panel = per_arm * len(arms) + 1.0
    # side by side, in inches: the axes, the tick labels and two-line label below (0.8), the titles and a two-row
    # legend above (0.75), so a first screen spends no height on margins
    axes_h = per_arm * len(arms) + 0.2
    shape, size = ((1, len(models)), (width, axes_h + 1.55)) if side else ((len(models), 1), (width, panel * len(models) + 0.4))
    # one scale for every model: the panels are read against each other
    fig, axes = plt.subplots(*shape, figsize=size, squeeze=False, sharey=side, sharex=True)
    for k, (ax, model) in enumerate(zip(axes.flat, models)):
        part = scores[scores["model"] == model]
        base = part.loc[part["arm"] == "base", f"chrf++ {rule}"]
        if len(base):
            ax.axvline(float(base.iloc[0]), color="0.4", ls="--", lw=1, label="base model")
        for row, arm in enumerate(arms):
            i, bar = (row + 0.15, 0.2) if phone else (row, 0.3)   # a phone: below the arm's name
            values = part.loc[part["arm"] == arm, f"chrf++ {rule}"]
            seen = FAMILY_NAMES.get(family[arm], family[arm]) in [t.get_label() for t in ax.collections]
            ax.scatter(values, [i] * len(values), s=22, color=colors[family[arm]], alpha=0.8, zorder=3,
                       label=None if seen else FAMILY_NAMES.get(family[arm], family[arm]))
            if len(values):
                ax.plot([values.mean()] * 2, [i - bar, i + bar], color="black", lw=2, zorder=4)
            if len(values) > 1:   # the seed-level 95 % t interval of the mean (the sentences' share: the forest)
                half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5
                ax.plot([values.mean() - half, values.mean() + half], [i, i], color="black", lw=1, zorder=4)
        if phone:   # the arm's name above its row, so the dots get the column's whole width
            ax.set_yticks(range(len(arms)), [""] * len(arms))
            for i, arm in enumerate(arms):
                label_above(ax, i, [(arm, "0.25")], min_points(width, column))
        elif k == 0 or not side:
            ax.set_yticks(range(len(arms)), arms)
        else:   # side by side: the first panel names the arms for both
            ax.tick_params(axis="y", labelleft=False)
        ax.set_ylim(len(arms) - 0.5, -0.5)
        ax.grid(axis="y", visible=False)
        if model:
            ax.set_title(model, loc="left", fontweight="bold")
    what = f"chrF++ on devtest ({'whole continuation' if rule == 'whole' else 'first line'})"
    how = ["a dot per seed, the bar the mean,", "the line its 95 % t interval over seeds"]
    if side:   # one label under both panels
        fig.supxlabel(f"{what}; {how[0]}\n{how[1]}", fontsize=plt.rcParams["axes.labelsize"])
    else:
        axes[-1, 0].set_xlabel(f"{what};\n" + ("\n" if phone else " ").join(how))
    # above the first panel's title (a legend of two rows side by side needs a little more); on a phone one
    # entry a row, or the legend would be wider than the figure
    # (side by side: a fixed 0.3 in over the axes, the panel title's height, so a tall panel leaves no gap)
    lift = 1.0 if len(models) == 1 else 1.0 + (0.3 / axes_h if side else 0.35 / panel)
    axes[0, 0].legend(loc="lower left", bbox_to_anchor=(0, lift), ncol=1 if phone else min(len(families) + 1, 3),
                      frameon=False, **({"labelspacing": 0.25} if phone else {}))
    finish(fig, tight=not side, column_px=column)
    if side:   # by hand: a tight or constrained layout keeps room for the second panel's hidden arm names
        fig.subplots_adjust(left=0.27, right=0.98, bottom=0.8 / size[1], top=1 - 0.75 / size[1], wspace=0.06)
    return fig

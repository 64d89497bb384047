"""The fair test's two figures draw what their captions say: the forest plot's rows, outcomes, margin band and
run-off arrows; the seed plot's dots and means."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from kslottery.report import plots  # noqa: E402


def comps():
    return pd.DataFrame([
        {"role": "primary", "a": "embedding tuning", "b": "Adam ticket", "b - a": -0.5,
         "bootstrap 95 %": (-1.2, 0.3), "t 95 %": (-1.5, 0.5), "outcome": "equivalent",
         "kind": "equivalence", "90 % (union)": (-1.3, 0.4)},
        {"role": "primary", "a": "embedding tuning", "b": "SGD ticket", "b - a": -3.0,
         "bootstrap 95 %": (-5.0, -2.0), "t 95 %": (-5.5, -1.5), "outcome": "b worse",
         "kind": "equivalence", "90 % (union)": (-8.0, -1.8)},
        {"role": "secondary", "a": "Adam ticket", "b": "<bos> row", "b - a": 1.0,
         "bootstrap 95 %": (0.2, 1.8), "t 95 %": (-30.0, 32.0), "outcome": "inconclusive",
         "kind": "superiority", "90 % (union)": (-20.0, 22.0)},
    ])


def test_the_forest_plot_has_a_row_per_comparison_its_outcome_and_arrows_where_the_t_interval_runs_off():
    fig = plots.verdict_forest(comps(), margin=2.0)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "Adam ticket − embedding tuning", "SGD ticket − embedding tuning", "<bos> row − Adam ticket"]
    assert [t.get_text() for t in ax.texts] == ["equivalent", "worse", "inconclusive"]
    # coloured by which way: equivalent green, worse vermillion, inconclusive grey
    assert [t.get_color() for t in ax.texts] == ["#009E73", "#D55E00", "0.45"]
    lo, hi = ax.get_xlim()
    assert (lo, hi) == (-7.0, 7.0)   # the widest bootstrap bound (5) plus a margin (2): the wide t interval is cut
    arrows = [line for line in ax.lines if line.get_marker() in ("<", ">")]
    assert sorted(float(np.asarray(a.get_xdata())[0]) for a in arrows) == [-7.0, 7.0]
    assert all(np.asarray(a.get_ydata())[0] == 2 for a in arrows)   # only the third row's line runs off
    dotted = [line for line in ax.lines if line.get_linestyle() == ":"]
    assert len(dotted) == 1 and np.asarray(dotted[0].get_ydata())[0] == 1.5   # below the two primary rows
    # the 90 % union the equivalence test reads: ticks at its ends on every row (one end of the second row and
    # both of the third lie off the axis)
    ticks = [(float(x), float(y)) for line in ax.lines if line.get_marker() == "|"
             for x, y in zip(line.get_xdata(), line.get_ydata())]
    assert ticks == [(-1.3, 0.0), (0.4, 0.0), (-1.8, 1.0)]
    band = [p for p in ax.patches if p.get_label().startswith("margin")]
    assert band and band[0].get_label() == "margin ±2"


def test_a_far_off_comparison_does_not_set_the_axis_it_gets_an_arrow_and_its_difference_in_words():
    far = {"role": "secondary", "a": "SGD ticket", "b": "partial transfer, SGD ticket", "b - a": -25.13,
           "bootstrap 95 %": (-29.8, -20.2), "t 95 %": (-76.6, 26.4), "outcome": "inconclusive",
           "kind": "superiority", "90 % (union)": (-50.7, 0.5)}
    ax = plots.verdict_forest(pd.concat([comps(), pd.DataFrame([far])], ignore_index=True), margin=2.0).axes[0]
    assert ax.get_xlim() == (-7.0, 7.0)   # as without it: the near rows' widest bootstrap bound (5) plus a margin
    assert [t.get_text() for t in ax.texts] == ["equivalent", "worse", "inconclusive", "−25.1", "inconclusive"]
    assert ax.texts[3].xy == (-7.0, 3)   # by the left arrow of its row
    ends = sorted((float(np.asarray(a.get_xdata())[0]), float(np.asarray(a.get_ydata())[0]))
                  for a in ax.lines if a.get_marker() in ("<", ">"))
    assert ends == [(-7.0, 2.0), (-7.0, 3.0), (7.0, 2.0), (7.0, 3.0)]


def test_the_seed_plot_shows_every_seed_and_the_mean_of_each_arm():
    scores = pd.DataFrame({"arm": ["base", "embedding tuning", "embedding tuning", "Adam ticket", "Adam ticket"],
                           "seed": [None, 0, 1, 0, 1], "chrf++ whole": [20.0, 30.0, 32.0, 29.0, 33.0]})
    fig = plots.seed_scores(scores, {"embedding tuning": "embed", "Adam ticket": "rows"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["embedding tuning", "Adam ticket"]
    dots = [sorted(c.get_offsets()[:, 0].tolist()) for c in ax.collections]
    assert dots == [[30.0, 32.0], [29.0, 33.0]]
    means = [float(np.asarray(line.get_xdata())[0]) for line in ax.lines if line.get_linewidth() == 2]
    assert means == [31.0, 31.0]
    base = [line for line in ax.lines if line.get_label() == "base model"]
    assert float(np.asarray(base[0].get_xdata())[0]) == 20.0
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["a subset of rows", "base model",
                                                                         "embedding tuning"]


def test_the_forest_plot_stacks_one_panel_per_model_and_the_seed_plot_too():
    two = pd.concat([comps().assign(model="gemma3-270m"), comps().assign(model="smollm2-135m")], ignore_index=True)
    fig = plots.verdict_forest(two, margin=2.0)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["gemma3-270m", "smollm2-135m"]
    assert all(len(ax.get_yticklabels()) == 3 for ax in fig.axes)
    scores = pd.DataFrame({"model": ["g", "g", "s", "s"], "arm": ["base", "Adam ticket", "base", "Adam ticket"],
                           "seed": [None, 0, None, 0], "chrf++ whole": [20.0, 30.0, 10.0, 12.0]})
    fig = plots.seed_scores(scores, {"Adam ticket": "rows"})
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["g", "s"]
    assert [ax.collections[0].get_offsets()[0, 0] for ax in fig.axes] == [30.0, 12.0]


def test_an_outcome_is_coloured_by_its_direction():
    assert {w: plots.outcome_color(w) for w in ("equivalent; b slightly worse", "b better, beyond the margin",
                                                "b worse", "inconclusive")} == {
        "equivalent; b slightly worse": "#009E73", "b better, beyond the margin": "#0072B2", "b worse": "#D55E00",
        "inconclusive": "0.45"}


def test_the_landing_figure_puts_the_models_side_by_side_and_names_the_arms_once():
    scores = pd.DataFrame({"model": ["g", "g", "g", "s", "s", "s"],
                           "arm": ["base", "Adam ticket", "embedding tuning"] * 2,
                           "seed": [None, 0, 0] * 2, "chrf++ whole": [20.0, 30.0, 31.0, 10.0, 12.0, 13.0]})
    family = {"Adam ticket": "rows", "embedding tuning": "embed"}
    side, stacked = plots.seed_scores(scores, family, layout="side"), plots.seed_scores(scores, family)
    left, right = side.axes
    assert left.get_position().y0 == right.get_position().y0 and left.get_position().x1 < right.get_position().x0
    def shown(ax):
        return [t.get_text() for t in ax.get_yticklabels()] if ax.yaxis.get_tick_params()["labelleft"] else []

    assert shown(left) == ["Adam ticket", "embedding tuning"] and shown(right) == []
    assert side.get_size_inches()[1] < stacked.get_size_inches()[1] / 1.5
    with pytest.raises(ValueError, match="layout 'wide'"):
        plots.seed_scores(scores, family, layout="wide")

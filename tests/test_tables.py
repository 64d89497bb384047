"""Tables travel from a notebook into the book and back, so the summary chapters rebuild from a clean clone."""

import pandas as pd
import pytest

from kslottery.report import tables
from kslottery.study import results


def test_tables_round_trip_through_the_book(tmp_path, monkeypatch):
    monkeypatch.setenv("KSL_RUNS", str(tmp_path / "runs"))
    scores = pd.DataFrame({"arm": ["embed", "KS top-18"], "chrf++": [41.25, 38.5], "ci": [[1.5, 3.0], [-0.5, 2.0]],
                           "ids": [[2, 108], [107]], "seed": [0, None]})
    results.save_tables("smoke", "headline", scores=scores)
    written = tables.publish("smoke", "headline", root=tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["book/results/smoke/tables/headline/scores.csv"]
    lines = written[0].read_text().splitlines()
    assert lines[1] == 'embed,41.25,"[1.5, 3.0]","[2, 108]",0'   # a seed column with a gap stays integral
    assert lines[2] == 'KS top-18,38.5,"[-0.5, 2.0]",[107],'
    (tmp_path / "runs" / "tables" / "smoke" / "headline.json").unlink()   # a clean clone has no runs/
    back = results.load_tables("smoke", "headline", root=tmp_path)["scores"]
    assert back["ci"].tolist() == [[1.5, 3.0], [-0.5, 2.0]] and back["ids"].tolist() == [[2, 108], [107]]
    assert back["chrf++"].tolist() == [41.25, 38.5] and back["arm"].tolist() == ["embed", "KS top-18"]
    assert results.load_tables("smoke", "never_ran", root=tmp_path) is None


@pytest.mark.parametrize("label,key", [("':' row", "colon_row"), ("BOS+EOS rows", "bos_plus_eos_rows"),
                                       ("transfer, delta x 0.5", "transfer_delta_x_0_5"), ("KS top-18", "ks_top_18")])
def test_glue_keys_from_labels_are_distinct_and_readable(label, key):
    from kslottery.report.tables import slug

    assert slug(label) == key


def test_glued_numbers_are_plain_python_so_a_format_spec_can_read_them():
    import numpy as np

    from kslottery.report.tables import glue_numbers

    got = glue_numbers({"a": np.float64(0.25), "b": np.int64(3), "c": "x"})
    assert got == {"a": 0.25, "b": 3, "c": "x"} and type(got["a"]) is float and type(got["b"]) is int
    assert f"{got['a']:.1%}" == "25.0%"


def test_readable_keeps_a_named_index_as_columns_joins_levels_and_formats_p_values():
    import pandas as pd

    from kslottery.report.tables import readable

    scores = pd.DataFrame({"pair": ["ca", "ca"], "rule": ["whole", "first_line"], "chrf++": [19.324, 19.2],
                           "p": [3e-9, 0.5]})
    pivot = scores.pivot_table(index="pair", columns="rule", values="chrf++")
    shown = readable(pivot)
    assert list(shown.data.columns) == ["pair", "first_line", "whole"]
    html = readable(scores.pivot_table(index="pair", columns="rule", values=["chrf++", "p"]),
                    formats={"p whole": "{:.1e}"}).to_html()
    assert "chrf++ whole" in html and "19.32" in html and "3.0e-09" in html
    filtered = readable(scores[scores["rule"] == "whole"].assign(token="<bos>"))   # unnamed index: hidden
    assert "pair" in filtered.data.columns and "index" not in filtered.data.columns
    assert "&lt;bos&gt;" in filtered.to_html()


def test_readable_shows_whole_floats_without_decimals_and_intervals_as_brackets():
    import pandas as pd

    from kslottery.report.tables import readable

    df = pd.DataFrame({"arm": ["base", "embed"], "seed": [float("nan"), 1.0], "gain": [float("nan"), 2.1429],
                       "collapse ci": [(float("nan"), float("nan")), (0.0, 0.51)]})
    cells = [c["display_value"] for row in readable(df, precision=3)._translate(False, False)["body"]
             for c in row if c.get("type") == "td"]
    assert cells == ["base", "\u2014", "\u2014", "\u2014", "embed", "1", "2.143", "[0.000, 0.510]"]   # em dash, never nan


def test_an_interval_column_is_a_number_column_and_a_measured_zero_keeps_its_decimals():
    import pandas as pd

    from kslottery.report.tables import NUMBER_STYLE, readable

    df = pd.DataFrame({"comparison": ["a − b", "c − d"], "b − a": [-1.786, 0.0],
                       "t 95 %": [(-6.28, 2.7), (0.0, 0.0)], "90 % union": [(-4.02, 0.44), None]})
    styler = readable(df)
    cells = [c["display_value"] for row in styler._translate(False, False)["body"] for c in row if c.get("type") == "td"]
    assert cells == ["a − b", "-1.79", "[-6.28, 2.70]", "[-4.02, 0.44]", "c − d", "0.00", "[0.00, 0.00]", "\u2014"]
    css = " ".join(styler.to_html().split())
    for col in (1, 2, 3):   # the difference and both interval columns stay on one line
        assert f"td.col{col} {{ {NUMBER_STYLE}; }}" in css, col
    assert "td.col0 { white-space: nowrap" not in css


def test_readable_counts_are_integers_even_beside_infinity_and_nothing_reads_nan():
    import pandas as pd

    from kslottery.report.tables import readable

    df = pd.DataFrame({"sigma": [0.003, 2.1], "n to certify": [float("inf"), 15.0], "note": [None, "x"]})
    cells = [c["display_value"] for row in readable(df, precision=4)._translate(False, False)["body"]
             for c in row if c.get("type") == "td"]
    assert cells == ["0.0030", "\u221e", "\u2014", "2.1000", "15", "x"]
    assert "nan" not in readable(df).to_html().lower()


@pytest.mark.parametrize("token, shown", [("\u0120the", "\u2423the"), ("\u010a", "\u23ce"), ("\n", "\u23ce"),
                                          (" ", "\u2423"), (" a", "\u2423a"), ("<bos>", "<bos>"),
                                          ("KS top-18 (seed 0)", "KS top-18 (seed 0)"), ("\u0120\"", "\u2423\"")])
def test_tokens_show_their_whitespace_and_byte_level_markers_are_decoded(token, shown):
    from kslottery.report.tables import visible_token

    assert visible_token(token) == shown


def test_number_cells_never_wrap_and_a_table_takes_a_caption():
    import pandas as pd

    from kslottery.report.tables import NUMBER_STYLE, cell_text, claims_table, readable

    df = pd.DataFrame({"pair": ["eng_Latn-cat_Latn"], "chrf++": [19.324], "ids": [[198, 216]],
                       "tokens": [["\n", " the"]], "fit": [{"slope": 0.12345678901234567}]})
    html = readable(df, caption="Table 3. Scores per pair.").to_html()
    assert "<caption>Table 3. Scores per pair.</caption>" in html
    assert f"td.col1 {{ {NUMBER_STYLE.replace('; ', '; ')}; }}" in " ".join(html.split())
    assert "198, 216" in html and "\u23ce, \u2423the" in html and "slope: 0.12" in html
    assert "overflow-wrap: anywhere" not in claims_table(df, caption="Table 1. Claims.").to_html()
    assert cell_text((float("nan"), 1.0)) == "\u2014" and cell_text(float("nan")) == "\u2014"


def test_a_plumbing_claims_table_carries_no_verdict_words():
    import pandas as pd

    from kslottery.report.tables import PLUMBING_VERDICT, claims_table

    table = pd.DataFrame({"claim": ["a", "b"], "verdict": ["reproduced", "not reproduced"]})
    assert "reproduced" in claims_table(table).to_html()
    html = claims_table(table, plumbing=True).to_html()
    assert "reproduced" not in html and html.count(PLUMBING_VERDICT) == 2


def test_long_text_columns_wrap_between_words_and_short_ones_stay_on_a_line():
    import pandas as pd

    from kslottery.report.tables import TEXT_STYLE, readable

    df = pd.DataFrame({"arm": ["embed"], "ticket tokens": [["<bos>", " the", ",", " of", " and", " a", "\n", ":"]]})
    css = " ".join(readable(df).to_html().split())
    assert f"td.col1 {{ {TEXT_STYLE}; }}" in css and "td.col0" not in css


def test_a_table_named_by_its_csv_has_a_stable_anchor_and_links_to_its_csv():
    df = pd.DataFrame({"arm": ["embed"], "chrF++": [31.25]})
    html = tables.readable(df, caption="Table 2. Scores.", csv="fair_test/scores").to_html()
    assert '<table id="T_fair_test-scores">' in html
    assert html.count('id="T_fair_test-scores"') == 1 and tables.anchor("fair_test/scores") == "T_fair_test-scores"
    assert '<caption>Table 2. Scores. <a class="csv-link" href="tables/fair_test/scores.csv">CSV</a></caption>' in html
    # the same table twice renders the same anchor (a link written before the run still lands)
    assert tables.readable(df, csv="fair_test/scores").to_html().count('id="T_fair_test-scores"') == 1


def test_self_checks_render_as_a_table_and_read_the_same_every_run():
    from kslottery.report.checks import SelfChecks

    checks = SelfChecks("profile smoke: 2 seeds", {"scores equal sacrebleu": True, "rows differ": False,
                                                    "claim recomputed": None})
    assert repr(checks) == ("Self-checks. profile smoke: 2 seeds\n- scores equal sacrebleu: yes\n- rows differ: NO\n"
                            "- claim recomputed: not testable")
    html = checks._repr_html_()
    assert "<caption>Self-checks. profile smoke: 2 seeds</caption>" in html and html.count("<tr>") == 4
    assert not checks.all_held and SelfChecks("x", {"a": True, "b": None}).all_held


def test_claims_link_to_the_table_holding_their_number_and_verdicts_are_marked():
    t = pd.DataFrame({"claim": ["a", "b"], "verdict": ["not reproduced: the arms differ", "reproduced"],
                      "evidence": ["fair_test/comparisons", ""]})
    html = tables.claims_table(t, base="results/default/").to_html()
    assert '<a class="evidence" href="results/default/fair_test.html#T_fair_test-comparisons">' in html
    assert html.count("<a ") == 1 and tables.MISSING in html   # no evidence: a dash, not a dead link
    assert tables.evidence_link("fair_test/comparisons#row3") == (
        '<a class="evidence" href="fair_test.html#T_fair_test-comparisons_row3_col0">fair test: comparisons, row 4</a>')
    assert tables.verdict_style("not reproduced: the arms differ").endswith(tables.VERDICT_COLOURS["not reproduced"])
    assert tables.verdict_style("reproduced").endswith(tables.VERDICT_COLOURS["reproduced"])
    assert tables.verdict_style(tables.PLUMBING_VERDICT) == "font-weight: 600"


@pytest.mark.parametrize("cell,html", [
    ("x − y: -3.6, 90 % [-4.9, -2.4], 95 % [-5.5, -1.8], 3 seeds",
     'x − y: -3.6, <span class="interval">90 % [-4.9, -2.4]</span>, <span class="interval">95 % [-5.5, -1.8]</span>, '
     "3 seeds"),
    ("certified agreement 0% [0%, 0%] at σ 2.4", 'certified agreement 0% <span class="interval">[0%, 0%]</span> at σ 2.4'),
    ("means, not a test: <bos> row 31.2", "means, not a test: &lt;bos&gt; row 31.2"),
])
def test_a_claims_cell_keeps_each_interval_on_one_line_and_escapes_its_text(cell, html):
    assert tables.intervals_on_one_line(cell) == html
    shown = tables.claims_table(pd.DataFrame({"claim": ["c"], "this study": [cell]})).to_html()
    assert html in shown


def test_prose_is_glued_as_html_that_another_page_can_paste():
    from kslottery.report.tables import prose

    html = prose("- **Does it match?** No: worse (95 % 1.6 to 3.1).").data
    assert html == ('<div class="glued-prose"><ul>\n<li><strong>Does it match?</strong> No: worse (95 % 1.6 to 3.1).'
                    '</li>\n</ul>\n</div>')


def test_a_flag_column_reads_yes_or_no():
    import pandas as pd

    from kslottery.report.tables import readable

    html = readable(pd.DataFrame({"chosen": [True, False], "lr": [0.01, 0.03]})).to_html()
    assert ">yes</td>" in html and ">no</td>" in html and "True" not in html

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
    assert written[0].read_text().splitlines()[1].startswith('embed,41.25,"[1.5, 3.0]","[2, 108]"')
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
    assert cells == ["base", "", "", "", "embed", "1", "2.143", "[0.000, 0.510]"]

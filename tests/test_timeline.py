"""When the design was fixed: git's history of a profile's protocol block against the runs' start times."""

import os
import subprocess
import time

import pytest

from kslottery.report import timeline

PAIR = "eng_Latn-cat_Latn"


def _commit(repo, text, when, message, path="profiles/p.yaml"):
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text(text)
    env = {**os.environ, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when}
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], cwd=repo,
                   check=True, env=env)
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    _commit(tmp_path, "protocol:\n  name: v1\n  margin: 2.0\n", "2026-12-06T16:30:00+00:00", "v1")
    _commit(tmp_path, "# only a comment\nprotocol:\n  name: v1\n  margin: 2.0\n", "2026-12-06T18:00:00+00:00", "c")
    _commit(tmp_path, "protocol:\n  name: v2\n  margin: 2.0\n  test_offset: 200\n  test_sentences: 400\n"
                      "notebooks:\n  fair_test:\n    max_new_tokens: 96\n", "2026-12-07T11:25:00+01:00", "v2")
    _commit(tmp_path, "x = 1\n", "2026-12-07T12:00:00+00:00", "code", path="src/kslottery/study/verdicts.py")
    return tmp_path


def _eval(runs, split, offset, limit, started, monkeypatch, commit="", pair=PAIR) -> str:
    """A finished eval run of these parameters that started at ``started`` at code ``commit``: its name."""
    from kslottery.method import runs as runs_module
    from kslottery.method.runs import Run

    real = time.strftime
    with monkeypatch.context() as m:
        m.setattr(time, "strftime", lambda fmt, *a: started if fmt == "%Y-%m-%dT%H:%M:%S%z" else real(fmt, *a))
        m.setattr(runs_module, "git_commit", lambda: commit)
        run = Run("eval", {"pair": pair, "split": split, "offset": offset, "limit": limit, "at": started}, runs)
        run.start()
        run.complete({})
    return run.name


def test_each_change_of_the_protocol_or_the_fair_tests_parameters_counts_with_its_keys(repo):
    changes = timeline.protocol_changes(repo / "profiles" / "p.yaml")
    assert [(c["name"], c["changed"]) for c in changes] == [   # the comment-only commit changed nothing
        ("v1", "(the first version)"), ("v2", "fair_test.max_new_tokens, name, test_offset, test_sentences")]
    lines = timeline.timeline_lines({"changes": changes})
    assert f"| v2 | `{changes[1]['commit']}` | 2026-12-07 10:25 UTC | fair_test.max_new_tokens, name, " \
           "test_offset, test_sentences |" in lines   # committed at +01:00, shown in UTC
    (repo / "profiles" / "p.yaml").write_text("protocol:\n  name: v3\n")
    assert [c["commit"] for c in timeline.protocol_changes(repo / "profiles" / "p.yaml")][-1] == "uncommitted"


def test_outside_git_there_is_no_history_and_the_page_says_so(tmp_path):
    (tmp_path / "p.yaml").write_text("protocol:\n  name: v1\n")
    assert timeline.protocol_changes(tmp_path / "p.yaml") == []
    assert "cannot show when" in timeline.timeline_lines({"changes": []})[-1]


def test_the_first_test_score_is_the_earliest_run_that_read_any_test_sentence(repo, tmp_path, monkeypatch):
    runs, head = tmp_path / "runs", subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                                   text=True).stdout.strip()
    names = [_eval(runs, *a, monkeypatch, commit=head) for a in [
        ("devtest", 200, 400, "2026-12-08T09:00:00+0000"), ("devtest", 200, 400, "2026-12-07T23:30:00+0000"),
        ("devtest", 0, 100, "2026-12-01T00:00:00+0000"),     # an earlier design's sentences: not the test's
        ("devtest", 0, 250, "2026-12-07T23:00:00+0000"),     # reads sentences 200-249 too
        ("dev", 512, 100, "2026-12-07T20:00:00+0000")]]
    _eval(runs, "devtest", 200, 400, "2026-12-07T01:00:00+0000", monkeypatch, pair="eng_Latn-deu_Latn")
    fixed = timeline.design_timeline(repo / "profiles" / "p.yaml", runs)
    assert fixed["first_score"] == {"started": "2026-12-07T23:00:00+0000", "run": names[3], "commit": head,
                                    "runs": 3, "contains_protocol": True}
    assert fixed["first_dev_score"]["run"] == names[4] and fixed["code"]["time"] == "2026-12-07T12:00:00+00:00"
    lines = timeline.timeline_lines(fixed)
    assert "The earliest of the 3 runs in this runs folder that scored devtest sentences 200–599 started " \
           "2026-12-07 23:00 UTC, 12.6 h after the protocol's last change." in lines
    assert "The earliest dev score (of 1) started 2026-12-07 20:00 UTC, 9.6 h after the protocol's last change." in lines
    assert any(line.startswith("The code that turns scores into outcomes and verdicts last changed at") for line in lines)


def test_a_score_before_the_last_change_or_from_older_code_is_flagged(repo, tmp_path, monkeypatch):
    runs, v1 = tmp_path / "runs", subprocess.run(["git", "rev-list", "--max-parents=0", "HEAD"], cwd=repo,
                                                 capture_output=True, text=True).stdout.strip()
    _eval(runs, "dev", 512, 100, "2026-12-07T09:00:00+0000", monkeypatch)            # before v2 was committed
    _eval(runs, "devtest", 200, 400, "2026-12-07T13:00:00+0000", monkeypatch, commit=v1)   # code without v2
    lines = timeline.timeline_lines(timeline.design_timeline(repo / "profiles" / "p.yaml", runs))
    assert any(line.startswith(f"**Its code (`{v1[:7]}`) does not contain that change.**") for line in lines)
    assert any("**1.4 h before the protocol's last change**" in line for line in lines)
    _eval(runs, "devtest", 300, 10, "2026-12-07T09:30:00+0000", monkeypatch)
    lines = timeline.timeline_lines(timeline.design_timeline(repo / "profiles" / "p.yaml", runs))
    assert any(line.startswith("**The protocol changed after its first test score**") for line in lines)


def test_the_provenance_page_prints_the_fair_tests_timeline(repo, tmp_path, monkeypatch):
    from kslottery.report.profiles import provenance_page

    runs = tmp_path / "runs"
    name = _eval(runs, "devtest", 200, 400, "2026-12-07T23:30:00+0000", monkeypatch)
    m = {"processor": "x86_64", "cpus": 2, "torch_threads": 2, "cuda": None, "platform": "Linux"}
    entry = {"parameters": {}, "finished": "2026-12-08 15:00", "execution_s": 60, "runs": [name], "compute_s": 60,
             "git_commit": "a" * 40, "versions": {"torch": "2.13.0"}, "machine": m,
             "design_fixed": timeline.design_timeline(repo / "profiles" / "p.yaml", runs)}
    page = provenance_page("default", {"fair_test": entry})
    assert "## When the design was fixed" in page and "13.1 h after the protocol's last change" in page
    assert "Not shown here: scores in runs this folder no longer holds" in page

"""When the design was fixed: git's history of a profile's protocol block against the runs' start times."""

import os
import subprocess
import time

import pytest

from kslottery.report import timeline


def _commit(repo, text, when, message):
    (repo / "profiles" / "p.yaml").write_text(text)
    env = {**os.environ, "GIT_COMMITTER_DATE": when, "GIT_AUTHOR_DATE": when}
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message], cwd=repo,
                   check=True, env=env)


@pytest.fixture
def repo(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "profiles").mkdir()
    _commit(tmp_path, "protocol:\n  name: v1\n  margin: 2.0\n", "2026-12-06T16:30:00+00:00", "v1")
    _commit(tmp_path, "# only a comment\nprotocol:\n  name: v1\n  margin: 2.0\n", "2026-12-06T18:00:00+00:00", "c")
    _commit(tmp_path, "protocol:\n  name: v2\n  margin: 2.0\n  test_offset: 200\n", "2026-12-07T11:25:00+01:00", "v2")
    return tmp_path


def _eval(runs, split, offset, started, monkeypatch) -> str:
    """A finished eval run of these parameters that started at ``started``: its name."""
    from kslottery.method.runs import Run

    real = time.strftime
    with monkeypatch.context() as m:
        m.setattr(time, "strftime", lambda fmt, *a: started if fmt == "%Y-%m-%dT%H:%M:%S%z" else real(fmt, *a))
        run = Run("eval", {"split": split, "offset": offset, "at": started}, runs)
        run.start()
        run.complete({})
    return run.name


def test_only_commits_that_change_the_protocol_count_and_times_are_utc(repo):
    changes = timeline.protocol_changes(repo / "profiles" / "p.yaml")
    assert [c["name"] for c in changes] == ["v1", "v2"]   # the comment-only commit changed nothing that governs
    assert timeline.timeline_lines({"changes": changes})[4:6] == [
        f"| v1 | `{changes[0]['commit']}` | 2026-12-06 16:30 UTC |", f"| v2 | `{changes[1]['commit']}` | 2026-12-07 10:25 UTC |"]
    (repo / "profiles" / "p.yaml").write_text("protocol:\n  name: v3\n")
    assert [c["commit"] for c in timeline.protocol_changes(repo / "profiles" / "p.yaml")][-1] == "uncommitted"


def test_outside_git_there_is_no_history_and_the_page_says_so(tmp_path):
    (tmp_path / "p.yaml").write_text("protocol:\n  name: v1\n")
    assert timeline.protocol_changes(tmp_path / "p.yaml") == []
    assert "cannot show when" in timeline.timeline_lines({"changes": []})[-1]


def test_the_first_test_score_is_the_earliest_devtest_run_at_the_protocols_offset(repo, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    used = ["tune-x", *(_eval(runs, *a, monkeypatch) for a in [
        ("devtest", 200, "2026-12-08T09:00:00+0000"), ("devtest", 200, "2026-12-07T23:30:00+0000"),
        ("devtest", 0, "2026-12-01T00:00:00+0000"),    # an earlier design's sentences
        ("dev", 512, "2026-12-07T20:00:00+0000")])]
    fixed = timeline.design_timeline(repo / "profiles" / "p.yaml", used, runs)
    assert fixed["first_score"] == {"started": "2026-12-07T23:30:00+0000", "run": used[2], "runs": 2}
    assert fixed["first_dev_score"]["run"] == used[4]
    assert timeline.timeline_lines(fixed)[-1] == (
        "The first of its 2 test scores started 2026-12-07 23:30 UTC, 13.1 h after the last change of the protocol. "
        "The first of its 1 dev score (the learning-rate choice) started 2026-12-07 20:00 UTC, 9.6 h after the last "
        "change of the protocol.")


def test_a_protocol_changed_after_its_first_test_score_is_flagged(repo, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    early = _eval(runs, "devtest", 200, "2026-12-07T09:00:00+0000", monkeypatch)   # before v2 was committed
    fixed = timeline.design_timeline(repo / "profiles" / "p.yaml", [early], runs)
    assert timeline.timeline_lines(fixed)[-1].startswith("**The protocol changed after its first test score**")


def test_the_provenance_page_prints_the_fair_tests_timeline(repo, tmp_path, monkeypatch):
    from kslottery.report.profiles import provenance_page

    runs = tmp_path / "runs"
    name = _eval(runs, "devtest", 200, "2026-12-07T23:30:00+0000", monkeypatch)
    m = {"processor": "x86_64", "cpus": 2, "torch_threads": 2, "cuda": None, "platform": "Linux"}
    entry = {"parameters": {}, "finished": "2026-12-08 15:00", "execution_s": 60, "runs": [name], "compute_s": 60,
             "git_commit": "a" * 40, "versions": {"torch": "2.13.0"}, "machine": m,
             "design_fixed": timeline.design_timeline(repo / "profiles" / "p.yaml", [name], runs)}
    page = provenance_page("default", {"fair_test": entry})
    assert "## When the design was fixed" in page and "13.1 h after the last change" in page

"""The executor seam (kslottery.study.executor): the choice is checked before anything runs, and a stage of the
study computed on a local Ray instance with 2 workers gives the serial run's run hashes and tables, even when a
worker is killed in the middle of a run."""

import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from kslottery.method import runs
from kslottery.method.errors import KSLError
from kslottery.study import executor
from kslottery.study.arms import REGISTRY, Arm, Trunk, arms, plan
from kslottery.study.recipe import Recipe

TINY = "tiny:smollm2-135m"


def test_the_serial_executor_maps_in_order_and_bad_choices_are_one_line():
    assert executor.current({}).map(lambda x: x * 10, [3, 1, 2]) == [30, 10, 20]
    for env, says in [({"KSL_EXECUTOR": "dask"}, "KSL_EXECUTOR is 'dask'; use serial or ray"),
                      ({"KSL_EXECUTOR": "ray", "KSL_WORKERS": "two"}, "KSL_WORKERS is 'two'"),
                      ({"KSL_EXECUTOR": "ray", "KSL_WORKERS": "0"}, "KSL_WORKERS is '0'"),
                      ({"KSL_EXECUTOR": "ray", "KSL_RESOURCES": "{tune: 1"}, "KSL_RESOURCES is not JSON"),
                      ({"KSL_EXECUTOR": "ray", "KSL_RESOURCES": '{"tune": {"cpus": 1.5}}'}, "resources.tune.cpus is 1.5")]:
        with pytest.raises(KSLError, match=says.replace("(", r"\(")):
            executor.current(env)
    with pytest.raises(KSLError, match="--address and --workers choose how Ray runs; add --executor ray"):
        executor.environment(None, workers=2)
    with pytest.raises(KSLError, match="apply to the ray executor"):
        executor.environment("serial", address="head:6379")
    env = executor.environment("ray", workers=2, resources={"eval": {"gpus": 0.5}})
    assert env["KSL_EXECUTOR"] == "ray" and env["KSL_WORKERS"] == "2"
    assert executor.parse_resources(None)["tune"] == {"cpus": 1, "gpus": 0}
    ex = executor.current(env)
    assert ex.name == "ray" and ex.resources["eval"] == {"cpus": 1, "gpus": 0.5} and ex.workers == 2


def test_the_runner_passes_the_choice_to_the_kernel_and_restores_the_environment(monkeypatch):
    monkeypatch.delenv("KSL_EXECUTOR", raising=False)
    monkeypatch.setenv("KSL_WORKERS", "7")
    with executor.environ({"KSL_EXECUTOR": "serial", "KSL_WORKERS": "2"}):
        assert os.environ["KSL_EXECUTOR"] == "serial" and os.environ["KSL_WORKERS"] == "2"
    assert "KSL_EXECUTOR" not in os.environ and os.environ["KSL_WORKERS"] == "7"


def test_kslottery_run_takes_the_executor_and_refuses_ray_options_without_it(capsys):
    from kslottery.cli import build_parser, main

    ns = build_parser().parse_args(["run", "--profile", "smoke", "--executor", "ray", "--address", "auto",
                                    "--workers", "4"])
    assert (ns.executor, ns.address, ns.workers) == ("ray", "auto", 4)
    assert main(["run", "--profile", "smoke", "--only", "budget_sweep", "--workers", "2", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --address and --workers choose how Ray runs; add --executor ray")


def stage(root: Path, ex: str, kill: bool = False) -> tuple[pd.DataFrame, set]:
    """A stage of the study covering every run kind but certification: each seed's embedding tuning, its KS
    discovery, rows tuning on the seed's ticket and on a control, partial transfers, and the scores of all."""
    os.environ["KSL_RUNS"] = str(root)
    os.environ["KSL_EXECUTOR"], os.environ["KSL_WORKERS"] = ex, "2"
    # with a kill, the arms train for 20 steps, a checkpoint every 2: long enough to be killed in the middle
    p = Recipe(model=TINY, pair="eng_Latn-cat_Latn", train_limit=16, eval_limit=2, batch_size=4, max_new_tokens=3,
               epochs=5 if kill else 1, progress=False)
    trunk = Trunk(p, {"embed": 0.02, "rows": 0.02}, {"seeds": [0, 1], "secondary": [0, 1]}, rule="bonferroni",
                  options={"max_steps": 2}, arm_options={"checkpoint_every": 2} if kill else None)
    chosen = [REGISTRY["base"], *arms("Adam ticket", "random rows", "partial transfer, Adam ticket",
                                      "partial transfer, random rows")]
    if not kill:
        chosen.insert(1, Arm("embedding tuning", mode="embed", lr="embed"))
    runs.record_runs_to(root.with_suffix(".runs"))   # as kslottery run records a notebook's runs for its provenance
    try:
        branches = plan(trunk, chosen)
        recs = p.score_all([p.eval_config(b.path) for b in branches])
    finally:
        runs.record_runs_to(None)
    table = pd.DataFrame([{"arm": b.arm, "seed": b.seed, "trained": b.run["run"] if b.run else None,
                           "ticket": b.ticket, "eval": r["run"], "chrf": r.chrf("whole"),
                           "first line": r.chrf("first_line"), "eos": r.eos_rate} for b, r in zip(branches, recs)])
    names = {p.name for p in root.iterdir() if not p.name.startswith(".")}
    # every run the stage used is in the notebook's record, those the Ray workers computed too
    assert set(root.with_suffix(".runs").read_text().split()) == names
    return table, names


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)   # as each Ray task runs (resources: 1 CPU): bitwise the same arithmetic
    saved = {k: os.environ.get(k) for k in ("KSL_RUNS", "KSL_EXECUTOR", "KSL_WORKERS")}
    yield
    torch.set_num_threads(before)
    for k, v in saved.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


def verified(root: Path, names: set) -> None:
    assert not [n for n in names if n.endswith(".partial")], "an unfinished run was left behind"
    for name in names:
        runs.verify(root / name)   # a damaged run raises


@pytest.mark.slow
def test_a_stage_on_two_ray_workers_gives_the_serial_runs_and_tables(flores_dir, tmp_path, one_thread):
    pytest.importorskip("ray")
    caller_niceness = os.environ.get("RAY_worker_niceness")
    serial, serial_runs = stage(tmp_path / "serial", "serial")
    on_ray, ray_runs = stage(tmp_path / "ray", "ray")
    assert ray_runs == serial_runs and len(serial_runs) == 2 + 2 + 4 + 4 + 11   # tune, ks, rows, transfer, eval
    assert {n.split("-")[0] for n in serial_runs} == {"tune", "ks", "transfer", "eval"}
    assert on_ray.to_csv() == serial.to_csv()   # byte-identical, rows in the same order
    verified(tmp_path / "ray", ray_runs)
    logs = list((tmp_path / "ray" / ".logs").glob("*.log"))
    assert {p.stem for p in logs} <= ray_runs and logs   # each task's output, under its run's name
    # a task that fails is one line naming its run and its log
    fails = lambda params: (runs.Run("tune", params), print("what the run said"), 1 / 0)   # noqa: E731
    with pytest.raises(KSLError) as e:
        executor.current().map(fails, [{"x": 1}])
    name = runs.Run("tune", {"x": 1}).name
    log = tmp_path / "ray" / ".logs" / f"{name}.log"
    assert str(e.value) == (f"run {name} failed in a Ray worker (ZeroDivisionError: division by zero); its log: {log}; "
                            "fix the cause and run the same command again: finished runs are reused")
    assert "what the run said" in log.read_text()
    # the local instance's workers run at the driver's priority, as a serial study does (Ray's default: 15 nicer)
    assert executor.current().map(lambda _: os.nice(0), [None]) == [os.nice(0)]
    assert os.environ.get("RAY_worker_niceness") == caller_niceness   # and the caller's environment is as it was


def kill_a_worker_mid_run(root: Path, killed: list) -> None:
    """Wait for a rows tuning with a checkpoint, then SIGKILL the worker that holds its lock."""
    deadline = time.time() + 240
    while time.time() < deadline and not killed:
        for partial in root.glob("tune-*.partial"):
            pid_file = root / runs.LOCKS / f"{partial.name.removesuffix('.partial')}.pid"
            if (partial / "ckpt").is_dir() and pid_file.exists() and "rows" in (partial / "params.json").read_text():
                pid = int(pid_file.read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
                killed.append((partial.name, pid))
                return
        time.sleep(0.05)


@pytest.mark.slow
def test_a_worker_killed_in_the_middle_of_a_run_leaves_the_serial_results_and_no_damaged_run(
        flores_dir, tmp_path, one_thread):
    pytest.importorskip("ray")
    killed = []
    watcher = threading.Thread(target=kill_a_worker_mid_run, args=(tmp_path / "ray", killed), daemon=True)
    watcher.start()
    on_ray, ray_runs = stage(tmp_path / "ray", "ray", kill=True)
    watcher.join()
    assert killed and killed[0][1] != os.getpid(), "no worker was killed in the middle of a run"
    serial, serial_runs = stage(tmp_path / "serial", "serial", kill=True)
    name = killed[0][0].removesuffix(".partial")
    assert ray_runs == serial_runs and name in ray_runs
    # Ray ran the task again, and the run went on from the checkpoint the killed worker left (a step > 0)
    assert 0 < runs.finished(name, tmp_path / "ray")[1]["train"]["resumed_at"] < 20
    assert on_ray.to_csv() == serial.to_csv()
    verified(tmp_path / "ray", ray_runs)


@pytest.mark.slow
def test_kslottery_run_with_the_ray_executor_executes_a_notebook_whose_provenance_lists_the_workers_runs(
        flores_dir, tmp_path, monkeypatch):
    """The runner starts one local Ray instance, the notebook's kernel joins it (KSL_RAY_ADDRESS), and the runs the
    workers computed are in the page's provenance."""
    import json
    import shutil

    import yaml

    from kslottery.report import profiles

    pytest.importorskip("ray")
    smoke = yaml.safe_load((Path(profiles.repo_root()) / "profiles" / "smoke.yaml").read_text())
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "mini.yaml").write_text(yaml.safe_dump({
        "description": "the smoke budget sweep on Ray", "plumbing": True, "common": smoke["common"],
        "resources": {"tune": {"cpus": 1}}, "notebooks": {"budget_sweep": smoke["notebooks"]["budget_sweep"]}}))
    shutil.copytree(Path(profiles.repo_root()) / "notebooks", tmp_path / "notebooks")
    monkeypatch.setenv("KSL_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("KSL_EXECUTOR", raising=False)
    [page] = profiles.run_profile("mini", root=tmp_path, progress=False, executor="ray", workers=2)
    used = json.loads((page.parent / "provenance.json").read_text())["budget_sweep"]["runs"]
    computed = {p.name for p in (tmp_path / "runs").iterdir() if p.name.split("-")[0] in ("tune", "ks", "snapks")}
    # 1 Adam lr on each of the 2 tiny models with their snapshots' KS tests, and a discovery
    assert set(used) == computed and len(computed) == 5
    assert {p.stem for p in (tmp_path / "runs" / ".logs").glob("*.log")} == {n for n in computed if n.startswith("tune")}
    assert "KSL_EXECUTOR" not in os.environ and "KSL_RAY_ADDRESS" not in os.environ

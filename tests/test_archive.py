"""The run archive on the tiny model: runs kept without their weights are reused as they are, and compute the
weights again, under the same name and to the same values, only when something reads them."""

import json

import pytest
import torch

from kslottery import cli
from kslottery.method import archive, discovery, tuning
from kslottery.method.errors import KSLError
from kslottery.method.runs import LEFT_OUT, left_out, verify
from kslottery.method.tuned import TunedRun

TINY = dict(model="tiny:smollm2-135m", limit=16, batch_size=4, lr=1e-2, max_steps=4, snapshots=(2, 4))


@pytest.fixture(scope="module")
def packed(tmp_path_factory, flores_dir):
    """A tune run with snapshots and its discovery, packed with a limit that leaves out every weight file."""
    root = tmp_path_factory.mktemp("runs")
    rec = tuning.tune(tuning.TuneConfig(**TINY), runs_dir=root, progress=False)
    ks = discovery.discover(discovery.DiscoveryConfig(tuned=rec["path"], k=5), runs_dir=root)
    store = tmp_path_factory.mktemp("archive")
    counts = archive.pack(root, store, max_mib=0.01)
    return root, store, rec, ks, counts


def restored(packed, tmp_path):
    _, store, rec, ks, _ = packed
    runs = tmp_path / "runs"
    assert archive.restore(store, runs) == {"restored": 2}
    return runs, runs / rec["run"], runs / ks["run"]


def test_pack_leaves_out_only_a_tune_runs_large_files_and_lists_them(packed):
    root, store, rec, ks, counts = packed
    assert counts["packed"] == 2 and counts["left_out_mib"] > 0
    gone = left_out(store / rec["run"])
    manifest = json.loads((root / rec["run"] / "MANIFEST.json").read_text())["sha256"]
    assert {"rows.safetensors", "snapshots/step-2.safetensors", "snapshots/step-4.safetensors"} <= set(gone)
    assert all(gone[f] == manifest[f] for f in gone) and not (store / rec["run"] / "rows.safetensors").exists()
    assert (store / rec["run"] / "record.json").read_text() == (root / rec["run"] / "record.json").read_text()
    assert archive.pack(root, store / "tighter", max_mib=0)["packed"] == 2   # records are never left out
    assert not {"params.json", "record.json", "train_log.jsonl"} & set(left_out(store / "tighter" / rec["run"]))
    assert left_out(store / ks["run"]) == {} and (store / ks["run"] / "ks.safetensors").exists()   # kept whole
    assert archive.pack(root, store, max_mib=0.01)["packed"] == 0   # packing again adds nothing


def test_restored_runs_are_reused_without_computing_anything(packed, tmp_path):
    _, _, rec, ks, _ = packed
    runs, tune_path, ks_path = restored(packed, tmp_path)
    verify(tune_path)
    again = tuning.tune(tuning.TuneConfig(**TINY), runs_dir=runs, progress=False)
    assert again["reused"] and again["run"] == rec["run"]
    found = discovery.discover(discovery.DiscoveryConfig(tuned=str(tune_path), k=5), runs_dir=runs)
    assert found["reused"] and found["tickets"] == ks["tickets"]
    assert (tune_path / LEFT_OUT).exists()   # a finished discovery did not read the tuning's rows


def test_reading_a_restored_runs_weights_computes_them_again_to_the_same_values(packed, tmp_path):
    root, _, rec, _, _ = packed
    runs, tune_path, _ = restored(packed, tmp_path)
    rows = TunedRun(tune_path).rows()
    assert not (tune_path / LEFT_OUT).exists() and not list(runs.glob(".*archived"))
    original = TunedRun(root / rec["run"]).rows()
    assert torch.equal(rows["ids"], original["ids"]) and torch.equal(rows["after"], original["after"])
    assert sorted(TunedRun(tune_path).snapshot_files()) == [2, 4]


def test_parameters_that_name_another_run_leave_the_archived_run_untouched(packed, tmp_path):
    # as after a code change that names runs differently: the parameters no longer give this name
    runs, tune_path, _ = restored(packed, tmp_path)
    renamed = tune_path.rename(runs / "tune-000000000000")
    with pytest.raises(KSLError, match="cannot be computed again from its parameters"):
        TunedRun(renamed).rows()
    assert (renamed / LEFT_OUT).exists() and not list(runs.glob(".*archived")) and not tune_path.exists()


def test_a_left_out_file_whose_hash_disagrees_with_the_manifest_is_a_damaged_run(packed, tmp_path):
    _, tune_path, _ = restored(packed, tmp_path)
    listing = json.loads((tune_path / LEFT_OUT).read_text())
    listing["sha256"]["rows.safetensors"] = "0" * 64
    (tune_path / LEFT_OUT).write_text(json.dumps(listing))
    with pytest.raises(KSLError, match="disagree on rows.safetensors"):
        verify(tune_path)


def test_the_command_packs_and_restores(packed, tmp_path, capsys):
    root, _, _, _, _ = packed
    store, runs = tmp_path / "archive", tmp_path / "runs"
    assert cli.main(["archive", "pack", "--runs-dir", str(root), "--archive", str(store), "--max-mib", "0.01"]) == 0
    assert json.loads(capsys.readouterr().out)["packed"] == 2
    assert cli.main(["archive", "restore", "--runs-dir", str(runs), "--archive", str(store)]) == 0
    assert json.loads(capsys.readouterr().out) == {"restored": 2}
    assert cli.main(["archive", "pack", "--runs-dir", str(tmp_path / "none"), "--archive", str(store)]) == 2
    assert "no runs folder" in capsys.readouterr().err


def test_deterministic_training_is_switched_on_only_inside_the_loop():
    from kslottery.method.trainable import deterministic

    assert not torch.are_deterministic_algorithms_enabled()
    with deterministic():
        assert torch.are_deterministic_algorithms_enabled()
    assert not torch.are_deterministic_algorithms_enabled()

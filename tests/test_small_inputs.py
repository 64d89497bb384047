"""The last bad inputs: CR-only line endings, a pair of one language with itself, a disk that fills up during
tuning; and a ks run that records the time its KS test took."""

import errno
import json
import time
from pathlib import Path

import pytest

TINY = "tiny:smollm2-135m"


@pytest.fixture(scope="module")
def cr_files(tmp_path_factory, flores_dir):
    """Six FLORES dev pairs with old-Mac line endings (CR alone), as a TSV and as two text files."""
    from kslottery.method.data import load_flores

    b = load_flores("eng_Latn-cat_Latn", "dev", limit=6)
    d = tmp_path_factory.mktemp("cr")
    (d / "cr.tsv").write_bytes("".join(f"{s}\t{t}\r" for s, t in zip(b.src, b.tgt)).encode())
    (d / "cr.en").write_bytes("\r".join(b.src).encode())
    (d / "cr.ca").write_bytes(("\r".join(b.tgt) + "\r").encode())
    return d, b.sha256


# (arguments, exit code, the one-line error, or "" for a run that must succeed on the CR-only data)
CASES = [
    (["evaluate", "--test-file", "{cr}/cr.tsv"], 0, ""),
    (["evaluate", "--source-file", "{cr}/cr.en", "--target-file", "{cr}/cr.ca"], 0, ""),
    (["evaluate", "--pair", "eng_Latn-eng_Latn"], 2,
     "error: language pair 'eng_Latn-eng_Latn' has the same source and target language; give two different "
     "languages, like eng_Latn-cat_Latn\n"),
    (["tune", "--pair", "cat_Latn-cat_Latn", "--train-file", "{cr}/cr.tsv"], 2,
     "error: language pair 'cat_Latn-cat_Latn' has the same source and target language; give two different "
     "languages, like eng_Latn-cat_Latn\n"),
]


@pytest.mark.parametrize("args,code,error", CASES, ids=[" ".join(a) for a, _, _ in CASES])
def test_small_inputs(args, code, error, cr_files, runs_dir, capsys):
    from kslottery.cli import main

    folder, sha = cr_files
    args = [a.format(cr=folder) for a in args]
    rc = main([*args, "--model", TINY, "--quiet", "--max-new-tokens", "2", "--runs-dir", str(runs_dir)]
              if args[0] == "evaluate" else [*args, "--model", TINY, "--quiet", "--runs-dir", str(runs_dir)])
    err = capsys.readouterr().err
    assert rc == code, err[-2000:]
    left = sorted(p.name for p in runs_dir.iterdir() if p.name != ".locks") if runs_dir.exists() else []
    if code:
        assert err == error and left == []
    else:
        (run,) = left
        data = json.loads((runs_dir / run / "record.json").read_text())["data"]
        assert (data["n"], data["sha256"]) == (6, sha)   # six segments, the same text as the FLORES lines


def test_ks_records_the_time_of_its_test(tmp_path, monkeypatch, flores_dir):
    """wall_s counts the KS test (it was 0.0: the clock started after it)."""
    from kslottery.method import discovery
    from kslottery.method.tuning import TuneConfig, tune

    tuned = tune(TuneConfig(model=TINY, limit=8, batch_size=4, lr=1e-2), runs_dir=tmp_path, progress=False)
    real = discovery.ks_from_rows

    def slow(*a, **k):
        time.sleep(0.5)
        return real(*a, **k)

    monkeypatch.setattr(discovery, "ks_from_rows", slow)
    rec = discovery.discover(discovery.DiscoveryConfig(tuned=tuned["path"], k=3), runs_dir=tmp_path)
    assert json.loads((Path(rec["path"]) / "record.json").read_text())["wall_s"] >= 0.5


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def _safetensors_full(*args, **kwargs):   # what safetensors (Rust) raises: no errno, the reason in the text
    raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left '
                       'on device" })')


def _torch_full(*args, **kwargs):         # torch.save names no reason: the free space decides
    raise RuntimeError("[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file "
                       "data/0: file write failed")


# (what fails when the second checkpoint is written, and whether the disk then reports no free space)
DISK_FULL = [("safetensors.torch.save_file", _enospc, False), ("safetensors.torch.save_file", _safetensors_full, False),
             ("torch.save", _torch_full, True)]


@pytest.mark.parametrize("target,fail,empty", DISK_FULL, ids=[f.__name__ for _, f, _ in DISK_FULL])
def test_a_full_disk_is_one_line_and_the_run_resumes(target, fail, empty, runs_dir, capsys, monkeypatch, flores_dir):
    import shutil
    from collections import namedtuple

    import safetensors.torch
    import torch

    from kslottery.cli import main

    module, name = target.rsplit(".", 1)
    owner = {"safetensors.torch": safetensors.torch, "torch": torch}[module]
    real = getattr(owner, name)
    calls = []

    def writer(obj, path, *a, **k):   # the first checkpoint (step 2) fits, the second (step 4) does not
        if "ckpt.partial" in str(path):
            calls.append(str(path))
            if len(calls) == 2:
                return fail()
        return real(obj, path, *a, **k)

    monkeypatch.setattr(owner, name, writer)
    if empty:
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(2**30, 2**30, 0))
    args = ["tune", "--model", TINY, "--quiet", "--limit", "12", "--batch-size", "2", "--checkpoint-every", "2",
            "--runs-dir", str(runs_dir)]
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2, err[-2000:]
    assert err == (f"error: no space left on the disk of {runs_dir}; free space and rerun the same command (an "
                   "interrupted tune resumes from its last checkpoint), or pass --runs-dir on another disk\n")
    (partial,) = runs_dir.glob("*.partial")
    assert not list(runs_dir.rglob("ckpt.partial"))                       # no half-written checkpoint
    assert sorted(p.name for p in (partial / "ckpt").iterdir()) == ["params.safetensors", "state.pt"]   # step 2's
    monkeypatch.undo()
    assert main(args) == 0                                                 # space again: it resumes and finishes
    assert not list(runs_dir.glob("*.partial"))
    (run,) = [p for p in runs_dir.iterdir() if p.name.startswith("tune-")]
    assert json.loads((run / "record.json").read_text())["train"]["resumed_at"] == 2

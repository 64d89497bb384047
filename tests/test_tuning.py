import json
import os
import subprocess
import sys

import pytest
import torch

from kslottery.method import checkpoints, data, models, ticket, trainable, tuning
from kslottery.method.errors import KSLError
from kslottery.method.tuned import TunedRun

BASE = dict(model="tiny:smollm2-135m", limit=16, batch_size=4, lr=1e-2, max_steps=3)


def cfg(**kw):
    return tuning.TuneConfig(**{**BASE, **kw})


def fresh():
    return models.load("tiny:smollm2-135m", progress=False)


def examples_for(lm, c):
    return tuning.encode_all(lm.tokenizer, data.load_flores(c.pair, c.split, limit=c.limit), c)


def embedding_after(lm):
    emb = lm.model.get_input_embeddings()
    if isinstance(emb, trainable.RowDelta):
        w = emb.base.weight.detach().clone()
        w[emb.ids] = emb.rows_after()
        return w
    return emb.weight.detach().clone()


def seen_ids(n):
    lm = fresh()
    ex = examples_for(lm, cfg())
    from collections import Counter
    return [i for i, _ in Counter(t for e in ex for t in e["input_ids"]).most_common(n)]


def test_rows_mode_changes_exactly_the_ticket_rows(flores_dir, tmp_path):
    seen = sorted(seen_ids(3))
    unseen = 40000   # a row no training example contains: no gradient, so it must not move either
    c = cfg(mode="rows", ticket=",".join(map(str, seen + [unseen])))
    lm = fresh()
    state = {k: v.clone() for k, v in lm.model.state_dict().items()}
    before = lm.model.get_input_embeddings().weight.detach().clone()
    tuning.train(lm, c, examples_for(lm, c), progress=False)
    tuning.export(lm, c, before, tmp_path)
    after = lm.model.state_dict()
    emb_key = next(k for k in after if k.endswith("embed_tokens.weight"))
    for k, v in state.items():
        if k != emb_key and k in after:
            assert torch.equal(after[k], v), k
    changed = (after[emb_key] != before).any(1).nonzero().flatten().tolist()
    assert changed == seen


def test_embed_mode_leaves_unseen_rows_bitwise_equal(flores_dir):
    c = cfg()
    lm = fresh()
    ex = examples_for(lm, c)
    before = lm.model.get_input_embeddings().weight.detach().clone()
    head = lm.model.get_output_embeddings().weight.detach().clone()
    tuning.train(lm, c, ex, progress=False)
    after = embedding_after(lm)
    seen = sorted({t for e in ex for t in e["input_ids"]})
    changed = (after != before).any(1).nonzero().flatten().tolist()
    assert set(changed) <= set(seen) and len(changed) > 0.8 * len(seen)
    unseen = torch.ones(len(before), dtype=torch.bool)
    unseen[seen] = False
    assert torch.equal(after[unseen], before[unseen])
    assert torch.equal(lm.model.get_output_embeddings().weight, head)   # untied, frozen head


def test_row_delta_equals_dense_adamw(flores_dir):
    """The sparse row delta with target-only logits is the naive dense loop, up to float noise."""
    got = {}
    for sparse in (True, False):
        c = cfg(sparse_rows=sparse)
        lm = fresh()
        before = lm.model.get_input_embeddings().weight.detach().clone()
        tuning.train(lm, c, examples_for(lm, c), progress=False)
        got[sparse] = embedding_after(lm) - before
    moved = got[False].abs() > 0
    assert torch.equal(moved.any(1), (got[True].abs() > 0).any(1))
    # Adam divides by the gradient's magnitude, so coordinates with near-zero gradient amplify float noise;
    # the bulk agrees far below the 1e-2 step size.
    diff = (got[True] - got[False]).abs()
    assert diff.max() < 1e-3 * c.lr * 100 and (diff < 1e-6).float().mean() > 0.99


def test_peft_trainable_tokens_export_reloads_to_identical_logits(flores_dir, tmp_path):
    import peft

    c = cfg(mode="rows", ticket=",".join(map(str, seen_ids(4))))
    lm = fresh()
    before = lm.model.get_input_embeddings().weight.detach().clone()
    tuning.train(lm, c, examples_for(lm, c), progress=False)
    tuning.export(lm, c, before, tmp_path)
    ids = torch.tensor([[1, 13, 198, 1000, 2, 500, 13]])
    with torch.no_grad():
        ours = lm.model(ids).logits
        base = fresh()
        models.untie(base.model)
        loaded = peft.PeftModel.from_pretrained(base.model, tmp_path / "adapter").eval()
        theirs = loaded(ids).logits
    assert torch.equal(ours, theirs)
    assert (tmp_path / "adapter" / "adapter_model.safetensors").stat().st_size < 200_000


@pytest.fixture
def one_thread():
    """Multithreaded CPU reductions reorder float sums, and Adam amplifies that noise on rows with
    near-zero gradient; with one thread the loop is bitwise reproducible, so resume can be checked exactly."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_interrupted_tuning_resumes_to_the_same_rows(flores_dir, tmp_path, monkeypatch, one_thread):
    c = cfg(max_steps=4, checkpoint_every=2)
    ref = tuning.tune(c, runs_dir=tmp_path / "a", progress=False)
    real = checkpoints.save

    def crash(*args):
        real(*args)
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoints, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        tuning.tune(c, runs_dir=tmp_path / "b", progress=False)
    (partial,) = (tmp_path / "b").glob("*.partial")
    assert (partial / "ckpt" / "state.pt").exists()
    monkeypatch.setattr(checkpoints, "save", real)
    got = tuning.tune(c, runs_dir=tmp_path / "b", progress=False)
    assert got["train"]["resumed_at"] == 2 and got["run"] == ref["run"]
    from safetensors.torch import load_file
    a = load_file(f"{ref['path']}/rows.safetensors")
    b = load_file(f"{got['path']}/rows.safetensors")
    assert torch.equal(a["ids"], b["ids"]) and torch.equal(a["after"], b["after"])
    steps = [json.loads(x)["step"] for x in open(f"{got['path']}/train_log.jsonl")]
    assert steps == [1, 2, 3, 4]


def test_paper_preset_and_bad_configs():
    assert cfg(mode="embed", preset="paper").resolved().lr == 2e-5
    r = cfg(mode="rows", ticket="1", preset="paper").resolved()
    assert (r.lr, r.epochs) == (1e-2, 5)
    with pytest.raises(KSLError, match="unknown tuning mode 'head'"):
        cfg(mode="head").resolved()
    with pytest.raises(KSLError, match="rows mode needs a ticket"):
        cfg(mode="rows").resolved()
    with pytest.raises(KSLError, match="not a multiple of grad_accum"):
        cfg(batch_size=6, grad_accum=4).resolved()
    with pytest.raises(KSLError, match="neither a file nor comma-separated ids"):
        ticket.ticket_ids("a,b")


@pytest.mark.parametrize("mode", ["lora", "prefix", "full"])
def test_other_modes_train_and_export(flores_dir, tmp_path, mode):
    rec = tuning.tune(cfg(mode=mode, max_steps=2, lr=1e-3), runs_dir=tmp_path, progress=False)
    assert rec["train"]["steps"] == 2 and rec["train"]["final_loss"] > 0
    folder = "model" if mode == "full" else "adapter"
    assert (tmp_path / rec["run"] / folder).is_dir()
    lm = fresh()
    TunedRun(rec["path"]).apply(lm)
    with torch.no_grad():
        assert lm.model(input_ids=torch.tensor([[1, 2, 3]])).logits.shape[-1] == 49152
    if mode == "prefix":
        # the saved prefix decodes through the finished-row loop, under a name that no score made before
        # that loop kept the prefix (it lost it after the first token) can take
        from kslottery.method.evaluate import EvalConfig, evaluate
        ev = evaluate(EvalConfig(model="tiny:smollm2-135m", limit=2, max_new_tokens=3, drop_finished=True,
                                 tuned=rec["path"]), runs_dir=tmp_path, progress=False)
        assert json.loads((tmp_path / ev["run"] / "params.json").read_text())["params"]["prefix_in_cache"] is True


@pytest.mark.slow   # subprocesses or several real model loads
def test_two_gloo_processes_match_one(flores_dir, tmp_path):
    """torchrun with 2 CPU processes (gloo) gives the same embedding update as 1 process, same global batch."""
    args = ["tune", "--model", "tiny:smollm2-135m", "--limit", "8", "--batch-size", "4", "--lr", "1e-2",
            "--max-steps", "2", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "kslottery.cli", *args, "--runs-dir", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", "29533", "-m", "kslottery.cli", *args, "--runs-dir", str(tmp_path / "two")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    from safetensors.torch import load_file
    (a,) = (tmp_path / "one").glob("tune-*/rows.safetensors")
    (b,) = (tmp_path / "two").glob("tune-*/rows.safetensors")
    a, b = load_file(a), load_file(b)
    assert torch.equal(a["ids"], b["ids"])
    assert torch.allclose(a["after"], b["after"], atol=1e-5)
    rec = json.loads(next((tmp_path / "two").glob("tune-*/record.json")).read_text())
    assert rec["train"]["world_size"] == 2


@pytest.mark.slow   # subprocesses or several real model loads
def test_gpu_benchmark_code_paths_run_on_a_tiny_cpu_model():
    """benchmarks/gpu.py builds a LLaMA-7B-shaped model on a GPU; --tiny runs the same paths on the CPU."""
    from pathlib import Path
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"
    r = subprocess.run([sys.executable, str(script), "--tiny", "--device", "cpu", "--steps", "1"],
                       capture_output=True, text=True, timeout=600, cwd=script.parent)
    assert r.returncode == 0, r.stderr[-2000:]
    for part in ("embedding_tuning", "rows18_tuning", "ks_full_vocab", "generate_batch32", "full_finetuning"):
        assert part in r.stdout


@pytest.mark.slow   # subprocesses or several real model loads
def test_fsdp_config_shards_full_finetuning_over_two_cpu_processes(flores_dir, tmp_path):
    """The repository's FSDP configuration, run by `accelerate launch` with 2 CPU processes (gloo), gives
    the weights of a one-process run: full fine-tuning of a LLaMA-architecture model, sharded per layer."""
    from pathlib import Path

    import yaml

    cfg = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs/accelerate/fsdp.yaml").read_text())
    cfg.update(num_processes=2, use_cpu=True, mixed_precision="no")
    cfg["fsdp_config"].update(fsdp_cpu_ram_efficient_loading=False, fsdp_activation_checkpointing=False)
    (tmp_path / "fsdp.yaml").write_text(yaml.safe_dump(cfg))
    args = ["tune", "--model", "tiny:smollm2-135m", "--limit", "8", "--batch-size", "4", "--lr", "1e-4",
            "--max-steps", "2", "--mode", "full", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run([sys.executable, "-m", "kslottery.cli", *args, "--runs-dir", str(tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(tmp_path / "fsdp.yaml"),
                          "--main_process_port", "29534", "-m", "kslottery.cli", *args,
                          "--runs-dir", str(tmp_path / "two")], capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("run: ") == 1                     # rank 0 reports, rank 1 stays quiet
    rec = json.loads(next((tmp_path / "two").glob("tune-*/record.json")).read_text())
    assert rec["train"]["world_size"] == 2
    from safetensors.torch import load_file
    (a,) = (tmp_path / "one").glob("tune-*/model/*.safetensors")
    (b,) = (tmp_path / "two").glob("tune-*/model/*.safetensors")
    a, b = load_file(a), load_file(b)
    assert set(a) == set(b)
    for name in a:
        assert a[name].shape == b[name].shape, name           # full tensors, not one rank's shard
        assert torch.allclose(a[name], b[name], atol=1e-6), name


def test_bf16_autocast_keeps_a_paper_sized_step_in_float32_master_rows(flores_dir, tmp_path):
    """The paper profile's setting: bf16 autocast, lr 2e-5. One Adam step moves each trained coordinate
    by ~lr, far below bf16's resolution at the rows' magnitude, so only fp32 master rows keep it."""
    seen = sorted(seen_ids(3))
    c = cfg(mode="rows", ticket=",".join(map(str, seen)), lr=2e-5, max_steps=1, mixed_precision="bf16")
    lm = fresh()
    before = lm.model.get_input_embeddings().weight.detach().clone()
    tuning.train(lm, c, examples_for(lm, c), progress=False)
    tuning.export(lm, c, before, tmp_path)
    from safetensors.torch import load_file
    saved = load_file(tmp_path / "rows.safetensors")
    step = (saved["after"] - saved["before"]).abs()
    assert saved["after"].dtype == torch.float32 and sorted(saved["ids"].tolist()) == seen
    assert 0.5e-5 < step.max() <= 2.1e-5                                   # Adam's first step is ~lr
    lost = (saved["before"].bfloat16() + (saved["after"] - saved["before"]).bfloat16()) == saved["before"].bfloat16()
    assert lost.float().mean() > 0.5                         # in bf16 most of the step would vanish


@pytest.mark.slow   # subprocesses or several real model loads
def test_prefix_init_zero_starts_near_the_base_model_and_random_far_from_it(flores_dir):
    # The reason the profiles choose zero: PEFT's random prefix is far from anything the model attends to.
    # A zero prefix is not the base model either (its zero keys still take attention mass), only much nearer:
    # golden values on the real SmolLM2, 4 FLORES dev pairs.
    from kslottery.method.runs import named_params

    def loss(**kw):
        c = tuning.TuneConfig(model="smollm2-135m", pair="eng_Latn-cat_Latn", limit=4, batch_size=4, **kw)
        lm = models.load(c.model, progress=False)
        examples = tuning.encode_all(lm.tokenizer, tuning.training_bitext(c), c)
        loss_fn, _ = trainable.prepare_model(lm, c, examples)
        b = tuning.collate(examples, lm.tokenizer.pad_token_id or 0)
        torch.manual_seed(0)
        with torch.no_grad():
            return float(loss_fn(b["input_ids"], b["attention_mask"], b["labels"]) / (b["labels"] != -100).sum())

    torch.manual_seed(0)
    base, zero = loss(mode="embed"), loss(mode="prefix", prefix_init="zero")
    torch.manual_seed(0)
    rand = loss(mode="prefix")
    assert (base, zero, rand) == pytest.approx((4.6926, 5.8831, 9.6047), abs=2e-3)
    # the option joins a run's name only when set: prefix runs made before it keep theirs
    assert "prefix_init" not in named_params(tuning.TuneConfig(mode="prefix"))
    assert named_params(tuning.TuneConfig(mode="prefix", prefix_init="zero"))["prefix_init"] == "zero"
    with pytest.raises(KSLError, match="unknown prefix init 'ones'; use random or zero"):
        tuning.TuneConfig(prefix_init="ones").resolved()


def test_a_ticket_names_its_run_by_its_ids_in_any_form(tmp_path, flores_dir):
    """Stages hand tickets over as ids, the CLI as text or a file: the same rows are the same run."""
    from kslottery.method.runs import Run
    from kslottery.method.ticket import Ticket

    Ticket(ids=[263, 13, 278], rule="topk").save(tmp_path / "t.json")
    names = set()
    for spec in ((13, 263, 278), [278, 13, 263], "13,263,278", str(tmp_path / "t.json")):
        cfg = tuning.TuneConfig(model="tiny:smollm2-135m", mode="rows", ticket=spec, limit=4)
        names.add(Run("tune", tuning.run_params(cfg, tuning.training_bitext(cfg))).name)
    assert len(names) == 1
    with pytest.raises(KSLError, match="holds something other than token ids"):
        ticket.ticket_ids((13, "x"))
    with pytest.raises(KSLError, match="the ticket is empty"):
        ticket.ticket_ids(())

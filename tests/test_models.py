import shutil

import pytest
import torch

from kslottery.method import models
from kslottery.method.errors import KSLError


@pytest.fixture(scope="module")
def smollm2():
    """The real embedded LLaMA-architecture preset through the real loader (dequantized and cached once)."""
    return models.load("smollm2-135m", untie_head=True, progress=False)


def test_real_preset_loads_and_unties(smollm2):
    info = smollm2.info
    assert (info.architecture, info.vocab_size, info.hidden_size) == ("LlamaForCausalLM", 49152, 576)
    assert info.tied_in_checkpoint and not info.tied
    assert (info.bos_id, info.eos_id, info.pad_id) == (1, 2, 2)
    assert info.source_sha256 == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    head = smollm2.model.get_output_embeddings().weight
    emb = smollm2.model.get_input_embeddings().weight
    assert not head.requires_grad and emb.requires_grad
    assert torch.equal(head, emb) and head.data_ptr() != emb.data_ptr()


def test_untie_keeps_the_output_layer_fixed(tiny):
    lm = models.load("tiny:smollm2-135m", untie_head=True, progress=False)
    assert lm.info.tied_in_checkpoint and not lm.info.tied
    ids = torch.tensor([[1, 200, 300, 400]])
    before = lm.model(ids).logits
    with torch.no_grad():
        lm.model.get_input_embeddings().weight[5000] += 1.0   # a row not in the input
    assert torch.equal(lm.model(ids).logits, before)


def test_tiny_is_deterministic(tiny):
    again = models.load("tiny:smollm2-135m", progress=False)
    assert torch.equal(again.model.get_input_embeddings().weight, tiny.model.get_input_embeddings().weight)
    assert tiny.info.hidden_size == 64 and tiny.info.vocab_size == 49152


def test_local_directory_roundtrip_and_pickle_refusal(tiny, tmp_path):
    safe, pickled = tmp_path / "safe", tmp_path / "pickled"
    tiny.model.save_pretrained(safe)
    tiny.tokenizer.save_pretrained(safe)
    lm = models.load(str(safe), progress=False)
    assert torch.equal(lm.model.get_input_embeddings().weight, tiny.model.get_input_embeddings().weight)
    # transformers 5 writes only safetensors, so build the pickle checkpoint an old release would write
    pickled.mkdir()
    tiny.model.config.save_pretrained(pickled)
    tiny.tokenizer.save_pretrained(pickled)
    torch.save(tiny.model.state_dict(), pickled / "pytorch_model.bin")
    with pytest.raises(KSLError, match=r"only pickle weights \(pytorch_model.bin\).*--allow-pickle"):
        models.load(str(pickled), progress=False)
    lm = models.load(str(pickled), allow_pickle=True, progress=False)
    assert torch.equal(lm.model.get_input_embeddings().weight, tiny.model.get_input_embeddings().weight)


def test_checksum_mismatch(tmp_path):
    f = tmp_path / "w.gguf"
    f.write_bytes(b"not the weights")
    with pytest.raises(KSLError, match="checksum mismatch.*reinstall"):
        models.verify_sha256(f, "0" * 64)


@pytest.mark.slow   # subprocesses or several real model loads
def test_gguf_file_spec(tmp_path, smollm2):
    gguf, expected = models._preset_gguf(models.PRESETS["smollm2-135m"])
    copy = tmp_path / "copy.gguf"
    shutil.copy(gguf, copy)
    lm = models.load(str(copy), progress=False)
    assert lm.info.source_sha256 == expected
    assert torch.equal(lm.model.get_input_embeddings().weight, smollm2.model.get_input_embeddings().weight)


@pytest.mark.parametrize("spec,match", [
    ("not-a-model", "unknown model spec 'not-a-model'; use a preset"),
    ("./missing/dir", "model path './missing/dir' does not exist"),
    ("weights.gguf", "model path 'weights.gguf' does not exist"),
    ("tiny:nope", "unknown preset 'nope'"),
])
def test_bad_specs(spec, match):
    with pytest.raises(KSLError, match=match):
        models.load(spec, progress=False)


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(KSLError, match="cannot fetch 'huggyllama/llama-7b' from the Hugging Face hub.*local directory"):
        models.load("huggyllama/llama-7b", progress=False)


def test_bad_dtype():
    with pytest.raises(KSLError, match="unknown dtype 'fp8'"):
        models.resolve_dtype("fp8")

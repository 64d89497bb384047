"""Extraction rules, corpus scores with sacrebleu signatures, termination statistics, gain decomposition.

What gets scored is a choice: the same continuations score very differently under the whole
continuation and its first line. Every rule is a named function, and every score carries the
sacrebleu signature that produced it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

# --- extraction rules -------------------------------------------------------------------------

_FIELD_RESTART = re.compile(r"\n[ \t]*(?:###|[^\W\d_][\w'()-]*(?: [\w'()-]+){0,3}:)")


def _oneline(text: str) -> str:
    return " ".join(text.split())


def whole(text: str) -> str:
    """The whole continuation, line breaks turned into spaces."""
    return _oneline(text)


def first_line(text: str) -> str:
    """The first non-empty line."""
    return next((ln.strip() for ln in text.split("\n") if ln.strip()), "")


def field_restart(text: str) -> str:
    """Cut where the model starts a new ``Label:`` field (``English:``, ``### Input:``) on a new line."""
    text = text.lstrip()
    m = _FIELD_RESTART.search(text)
    return _oneline(text[: m.start()] if m else text)


def authors(text: str) -> str:
    """The authors' group extractor: the text up to the next ``:`` or ``###``."""
    return _oneline(text.split("###")[0].split(":")[0])


RULES = {"whole": whole, "first_line": first_line, "field_restart": field_restart, "authors": authors}

# --- scores -----------------------------------------------------------------------------------

FLORES200_SPM = "flores200sacrebleuspm"
FLORES200_SPM_SHA256 = "14bb8dfb35c0ffdea7bc01e56cea38b9e3d5efcdcb9c251d6b40538e1aab555a"


def bleu_tokenizer(tgt_lang: str) -> str:
    return "zh" if tgt_lang.startswith("zho") else "13a"


def spbleu_status() -> tuple[bool, str]:
    """Whether spBLEU (flores200) can be computed offline, and why not if it cannot."""
    root = Path(os.environ.get("SACREBLEU") or Path.home() / ".sacrebleu").expanduser()
    path = root / "models" / FLORES200_SPM
    if not path.is_file():
        return False, f"FLORES-200 SentencePiece model not found at {path}"
    try:
        import sentencepiece  # noqa: F401
    except ImportError:
        return False, "the sentencepiece package is not installed"
    got = hashlib.sha256(path.read_bytes()).hexdigest()
    if got != FLORES200_SPM_SHA256:
        return False, f"{path} has sha256 {got[:12]}..., not the FLORES-200 model"
    return True, str(path)


def _metrics(tgt_lang: str) -> dict:
    from sacrebleu.metrics import BLEU, CHRF

    out = {"bleu": BLEU(tokenize=bleu_tokenizer(tgt_lang)), "chrf++": CHRF(word_order=2)}
    if spbleu_status()[0]:
        out["spbleu"] = BLEU(tokenize="flores200")
    return out


def corpus_scores(hyps: list[str], refs: list[str], tgt_lang: str) -> dict:
    """BLEU, chrF++ and (where its model is present) spBLEU, each with its signature."""
    out = {}
    for name, metric in _metrics(tgt_lang).items():
        s = metric.corpus_score(hyps, [refs])
        out[name] = {"score": round(s.score, 4), "signature": str(metric.get_signature())}
        if name == "bleu":
            out[name]["length_ratio"] = round(s.sys_len / max(s.ref_len, 1), 4)
    if "spbleu" not in out:
        out["spbleu"] = {"score": None, "available": False, "reason": spbleu_status()[1]}
    return out


def termination_stats(continuations: list[dict]) -> dict:
    n = max(len(continuations), 1)
    return {"eos_rate": sum(c["stopped_eos"] for c in continuations) / n,
            "newline_rate": sum(c["stopped_newline"] for c in continuations) / n,
            "cap_rate": sum(c["hit_cap"] for c in continuations) / n,
            "mean_new_tokens": sum(c["n_tokens"] for c in continuations) / n}


def mean_words(hyps: list[str]) -> float:
    return sum(len(h.split()) for h in hyps) / max(len(hyps), 1)


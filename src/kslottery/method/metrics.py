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

import numpy as np

from .bootstrap import resamples

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


def _resample_counts(size: int, n: int, seed: int) -> np.ndarray:
    """``n`` bootstrap resamples of ``size`` sentences, as per-sentence counts (one row per resample)."""
    return np.stack([r[0][1] for r in resamples([size], n, seed)])


def _paired_deltas(m, hyps_a: list[str], hyps_b: list[str], refs: list[str], counts: np.ndarray):
    """(score(b) - score(a), the same difference on every resample). sacrebleu's per-sentence sufficient
    statistics are summed per resample, so nothing is re-tokenized."""
    def score(row):
        return m._compute_score_from_stats(row.round().astype(int).tolist()).score

    sa = np.asarray(m._extract_corpus_statistics(hyps_a, [refs]), dtype=np.float64)
    sb = np.asarray(m._extract_corpus_statistics(hyps_b, [refs]), dtype=np.float64)
    boot = np.array([score(b) - score(a) for a, b in zip(counts @ sa, counts @ sb)])
    a, b = score(sa.sum(0)), score(sb.sum(0))
    return b - a, boot, a, b


def gain_decomposition(base: dict[str, list[str]], arm: dict[str, list[str]], refs: list[str], tgt_lang: str,
                       metric: str = "chrf++", n: int = 1000, seed: int = 0) -> dict:
    """An arm's gain over the base model under each extraction rule (keys of ``base``/``arm``, which must
    include ``whole`` and ``first_line``) and its collapse 1 - gain(first_line) / gain(whole), each with a
    95 % percentile interval from the same ``n`` paired resamples of sentences (so the ratio's interval
    respects the correlation of its two gains). The collapse is 0 when the gain survives the first-line
    rule and 1 when it is all in stopping; its interval is unreliable when gain(whole) is near 0."""
    m = _metrics(tgt_lang)[metric]
    counts = _resample_counts(len(refs), n, seed)
    gains, boot = {}, {}
    for rule in base:
        gains[rule], boot[rule], _, _ = _paired_deltas(m, base[rule], arm[rule], refs, counts)
    out = {"metric": metric, "n_resamples": n, "seed": seed}
    for rule in base:
        low, high = np.percentile(boot[rule], [2.5, 97.5])
        out[rule] = {"gain": round(gains[rule], 4), "ci95": [round(float(low), 4), round(float(high), 4)]}
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = 1 - boot["first_line"] / boot["whole"]
    ratio = ratio[np.isfinite(ratio)]
    collapse = 1 - gains["first_line"] / gains["whole"] if gains["whole"] else float("nan")
    low, high = np.percentile(ratio, [2.5, 97.5]) if len(ratio) else (float("nan"), float("nan"))
    out["collapse"] = {"value": round(collapse, 4), "ci95": [round(float(low), 4), round(float(high), 4)]}
    return out

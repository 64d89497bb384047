"""A prompt longer than the model's context: said once, before generation spends minutes on it.

A 1 MB source line became a 200,001-token prompt on an 8,192-token model and ran for 211 s without a word.
Nothing is cut (a run is named by its data, and truncating the source would change what is scored); the user
learns which sentence is too long and what to do.
"""

from __future__ import annotations

import sys


def context_length(model) -> int | None:
    """The positions the model was trained on (``max_position_embeddings`` of its text config), if it says."""
    config = getattr(model, "config", None)
    if config is None:
        return None
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    n = getattr(text, "max_position_embeddings", None)
    return n if isinstance(n, int) and n > 0 else None


def warn_long_prompts(ids: list[list[int]], model, max_new_tokens: int) -> list[int]:
    """Print one warning naming the sentences whose prompt plus ``max_new_tokens`` exceeds the model's context;
    returns their indices (empty when every prompt fits or the context is unknown)."""
    n = context_length(model)
    if n is None:
        return []
    long = [i for i, p in enumerate(ids) if len(p) + max_new_tokens > n]
    if long:
        worst = max(len(ids[i]) for i in long)
        print(f"warning: {len(long)} prompt{'s' if len(long) > 1 else ''} (sentence {long[0]}"
              f"{' and others' if len(long) > 1 else ''}, up to {worst:,} tokens) plus {max_new_tokens} new tokens "
              f"exceed the model's context of {n:,} tokens; generation will be slow and its output unreliable: "
              "shorten or split those source lines", file=sys.stderr)
    return long

"""What trains and what it minimises, per tuning mode: the row delta that stands in for the embedding rows
(``embed``, ``rows``), PEFT adapters (``lora``, ``prefix``), all weights (``full``), and the loss over target
tokens only (logits are computed at target positions, never for the whole sequence)."""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from . import models, prompts
from .ticket import ticket_ids

# --- the row delta ----------------------------------------------------------------------------

class RowDelta(torch.nn.Module):
    """A frozen embedding plus a trainable float32 delta on selected rows."""

    def __init__(self, base: torch.nn.Embedding, ids: torch.Tensor):
        super().__init__()
        self.base = base
        base.weight.requires_grad_(False)
        vocab, hidden = base.weight.shape
        self.register_buffer("ids", ids.long().clone(), persistent=False)
        slot = torch.full((vocab,), -1, dtype=torch.long)
        slot[self.ids] = torch.arange(len(ids))
        self.register_buffer("slot", slot, persistent=False)
        self.delta = torch.nn.Parameter(torch.zeros(len(ids), hidden, dtype=torch.float32))
        self.embedding_dim = hidden

    @property
    def weight(self):
        return self.base.weight

    def forward(self, input_ids):
        out = self.base(input_ids)
        slot = self.slot[input_ids]
        add = self.delta[slot.clamp(min=0)] * (slot >= 0).unsqueeze(-1)
        scale = getattr(self.base, "embed_scale", None)   # Gemma scales its embedding by sqrt(hidden)
        if scale is not None:
            add = add * scale
        return out + add.to(out.dtype)

    def rows_after(self) -> torch.Tensor:
        return self.base.weight[self.ids].float() + self.delta.detach()


# --- the loss ---------------------------------------------------------------------------------

class TargetLoss(torch.nn.Module):
    """Sum of cross-entropy over target tokens, logits computed only where a label exists."""

    def __init__(self, lm, target_only: bool = True):
        super().__init__()
        self.lm, self.target_only = lm, target_only

    def forward(self, input_ids, attention_mask, labels):
        labels = labels[:, 1:]
        keep = labels != prompts.IGNORE_INDEX
        if not self.target_only:
            logits = self.lm(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
            return F.cross_entropy(logits[keep].float(), labels[keep], reduction="sum")
        hidden = self.lm.get_decoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][keep])
        cap = getattr(self.lm.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return F.cross_entropy(logits.float(), labels[keep], reduction="sum")


class PeftLoss(torch.nn.Module):
    """Prefix tuning needs PEFT's own forward (it injects the prefix as past key values)."""

    def __init__(self, peft_model):
        super().__init__()
        self.lm = peft_model

    def forward(self, input_ids, attention_mask, labels):
        logits = self.lm(input_ids=input_ids, attention_mask=attention_mask).logits[:, -input_ids.shape[1]:]
        labels = labels[:, 1:]
        keep = labels != prompts.IGNORE_INDEX
        return F.cross_entropy(logits[:, :-1][keep].float(), labels[keep], reduction="sum")


# --- model preparation per mode ---------------------------------------------------------------

def prepare_model(lm: models.LoadedModel, cfg, examples: list[dict]):
    """Freeze what must not train; return (module computing the loss, trainable parameters)."""
    model = lm.model
    model.requires_grad_(False)
    if cfg.mode in ("embed", "rows"):
        models.untie(model)
        if cfg.mode == "rows":
            ids = torch.tensor(ticket_ids(cfg.ticket, lm.info.vocab_size))
        else:
            ids = torch.tensor(sorted({t for e in examples for t in e["input_ids"]}))
        if cfg.sparse_rows:
            model.set_input_embeddings(RowDelta(model.get_input_embeddings(), ids))
            return TargetLoss(model), [model.get_input_embeddings().delta]
        emb = model.get_input_embeddings().weight
        emb.requires_grad_(True)
        return TargetLoss(model, target_only=False), [emb]
    if cfg.mode == "full":
        model.requires_grad_(True)
        return TargetLoss(model), [p for p in model.parameters() if p.requires_grad]
    import peft

    if cfg.mode == "lora":
        pcfg = peft.LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, lora_dropout=0.0,
                               target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
        lm.model = pm = peft.get_peft_model(model, pcfg)   # export saves the adapter, not the base
        return TargetLoss(pm.get_base_model()), [p for p in pm.parameters() if p.requires_grad]
    pcfg = peft.PrefixTuningConfig(num_virtual_tokens=cfg.prefix_tokens, task_type="CAUSAL_LM",
                                   init_weights="zero" if cfg.prefix_init == "zero" else None)
    lm.model = pm = peft.get_peft_model(model, pcfg)
    return PeftLoss(pm), [p for p in pm.parameters() if p.requires_grad]


def schedule(optimizer, cfg, total: int):
    warm = int(round(cfg.warmup_ratio * total))

    def factor(step):
        if step < warm:
            return (step + 1) / (warm + 1)
        if cfg.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(total - warm, 1)))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def n_trainable(params) -> int:
    return sum(p.numel() for p in params)


@contextlib.contextmanager
def deterministic():
    """Bit-identical training for the same parameters on the same machine. Without it torch's CPU scatter-adds (the
    embedding's backward) sum in an order that varies from run to run: three runs of one tiny config, in one
    process, differed by up to 1e-4 after 4 Adam steps. A tune run archived without its weights
    (:mod:`kslottery.method.archive`) is then computed again to the same values."""
    was = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)   # an op with no such kernel (CUDA) warns, not fails
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was[0], warn_only=was[1])

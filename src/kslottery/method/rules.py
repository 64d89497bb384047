"""Ticket selection rules and their one spelling (``bh_0.05``, ``topk_18``), without torch: profiles are checked
against them before any model or tensor library loads."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import KSLError

RULES = ("alpha", "bonferroni", "bh", "topk")
SIGNIFICANCE_RULES = RULES[:3]   # the rules that threshold a p-value (topk ranks D)
# How the book names each rule for readers.
RULE_NAMES = {"alpha": "uncorrected", "bonferroni": "Bonferroni", "bh": "Benjamini-Hochberg", "topk": "top-k by D"}


@dataclass(frozen=True)
class Rule:
    """A selection rule at its level, in the one spelling profiles, tables and code share (``bh_0.05``,
    ``topk_18``); :attr:`key` names the rule's ticket inside a ks run (``bh-0.05``, its file ``ticket-bh-0.05.json``).

    >>> r = Rule.parse("bh_0.05"); r.rule, r.level, str(r), r.key, r.label
    ('bh', 0.05, 'bh_0.05', 'bh-0.05', 'Benjamini-Hochberg at 0.05')
    """
    rule: str
    level: float   # alpha for a significance rule, k for topk

    @classmethod
    def parse(cls, text: str) -> Rule:
        rule, _, level = str(text).rpartition("_")
        try:
            value = int(level) if rule == "topk" else float(level)
        except ValueError:
            value = None
        if rule not in RULES or value is None or not (0 < value < 1 or (rule == "topk" and value >= 1)):
            raise KSLError(f"unknown ticket rule {text!r}", "write RULE_LEVEL: alpha_0.05, bonferroni_0.05, bh_0.05 or "
                                                            "topk_18")
        return cls(rule, value)

    def __str__(self) -> str:
        return f"{self.rule}_{self.level:g}"

    @property
    def key(self) -> str:
        return f"{self.rule}-{self.level}"

    @property
    def label(self) -> str:
        return f"{RULE_NAMES[self.rule]} at {self.level:g}"

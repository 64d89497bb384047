"""KS-Lottery, reproduced and audited.

    >>> from kslottery.method import models, data, prompts, generate, metrics
    >>> lm = models.load("gemma3-270m")                        # doctest: +SKIP
    >>> bitext = data.load_flores("eng_Latn-cat_Latn", "devtest", limit=8)  # doctest: +SKIP
"""

__version__ = "0.1.0"

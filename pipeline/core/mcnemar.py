"""McNemar's test: do two runs' out-of-fold predictions differ beyond chance?

Two runs trained on the same train.csv predict every row once out of fold,
so their predictions are paired.  Only the rows one gets right and the other
wrong tell them apart; McNemar's test asks whether those discordant rows
split unevenly enough to call one run better.  A change of one row in
2,000 is noise, and this is what says so.

scipy is imported inside `mcnemar` only (``scipy.special``, lighter than
``scipy.stats``), so the commands start fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

ALPHA = 0.05  # significance level
EXACT_BELOW = 25  # discordant pairs below which the exact binomial test is used


@dataclass
class McNemar:
    """McNemar's test on the paired predictions of runs A and B on the same rows."""

    rows: int  # rows predicted by both runs
    both_correct: int
    a_only: int  # rows A gets right and B wrong
    b_only: int  # rows B gets right and A wrong
    both_wrong: int
    method: str  # "exact" (binomial) or "chi2" (with continuity correction)
    statistic: float
    p_value: float
    alpha: float = ALPHA

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    @property
    def better(self) -> str | None:
        """``"a"`` or ``"b"`` when the difference is significant, else None."""
        if not self.significant:
            return None
        return "b" if self.b_only > self.a_only else "a"

    def as_dict(self) -> dict[str, Any]:
        """The test as the JSON of ``digits compare --format json`` shows it."""
        return {
            "rows": self.rows,
            "both_correct": self.both_correct,
            "a_only_correct": self.a_only,
            "b_only_correct": self.b_only,
            "both_wrong": self.both_wrong,
            "method": self.method,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "significant": self.significant,
            "better": self.better,
        }


def mcnemar(labels: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, alpha: float = ALPHA) -> McNemar:
    """McNemar's test of whether two classifiers' error rates differ on the same rows.

    Only the discordant rows count: ``b`` = A right and B wrong, ``c`` = the
    reverse.  With fewer than 25 of them the exact two-sided binomial test
    (p = 2 P(X <= min(b, c)), X ~ Bin(b + c, 1/2)) is used, otherwise the
    chi-squared statistic ``(|b - c| - 1)^2 / (b + c)`` with one degree of
    freedom (Edwards' continuity correction).
    """
    from scipy import special

    labels, pred_a, pred_b = np.asarray(labels), np.asarray(pred_a), np.asarray(pred_b)
    right_a, right_b = pred_a == labels, pred_b == labels
    b, c = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    n = b + c
    if n < EXACT_BELOW:
        method, statistic = "exact", float(min(b, c))
        p = 1.0 if n == 0 else min(1.0, 2.0 * float(special.bdtr(min(b, c), n, 0.5)))
    else:
        method, statistic = "chi2", (abs(b - c) - 1) ** 2 / n
        p = float(special.chdtrc(1, statistic))
    return McNemar(
        rows=int(len(labels)),
        both_correct=int((right_a & right_b).sum()),
        a_only=b,
        b_only=c,
        both_wrong=int((~right_a & ~right_b).sum()),
        method=method,
        statistic=float(statistic),
        p_value=p,
        alpha=alpha,
    )

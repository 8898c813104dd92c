"""Fisher's exact test, one-sided, for the gates' concentrated-failure rule (``rollout.core.gates``, rule 7).

Exact in log space, without scipy: ``fisher_exact_greater(2, 0, 0, 198)`` is ``1 / C(200, 2)``,
and the tests check it against ``scipy.stats.fisher_exact`` over thousands of tables.
"""

from __future__ import annotations

import math


def fisher_exact_greater(a: int, b: int, c: int, d: int) -> float:
    """One-sided p that a cohort with ``a`` failures, ``b`` successes fails more than the rest
    (``c``, ``d``): P(X >= a), X hypergeometric with the table's margins. Same as
    ``scipy.stats.fisher_exact([[a, b], [c, d]], alternative="greater")``."""
    return math.exp(log_fisher_greater(a, b, c, d))


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def log_fisher_greater(a: int, b: int, c: int, d: int) -> float:
    """log P(X >= a). Terms are summed outward from the larger end of the tail (``a`` or the mode),
    each from the previous by the pmf ratio, so nothing overflows and the sum stops once negligible."""
    n, k, total = a + b, a + c, a + b + c + d
    low, high = max(0, n - (total - k)), min(n, k)
    if a <= low:
        return 0.0
    start = max(a, (n + 1) * (k + 1) // (total + 2))  # the tail's largest term
    log_start = _log_choose(k, start) + _log_choose(total - k, n - start) - _log_choose(total, n)
    s, term, x = 1.0, 1.0, start
    while x < high and term > 1e-17 * s:
        term *= (k - x) * (n - x) / ((x + 1) * (total - k - n + x + 1))
        s, x = s + term, x + 1
    term, x = 1.0, start
    while x > a and term > 1e-17 * s:
        term *= x * (total - k - n + x) / ((k - x + 1) * (n - x + 1))
        s, x = s + term, x - 1
    return min(0.0, log_start + math.log(s))

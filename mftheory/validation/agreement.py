"""How well ``depth < 6 xi_c`` predicts which trained networks learn: shares, intervals, baselines.

The trainability experiment (``mftheory.validation.experiments``) scores every cell (one
network: a depth, a ``sigma_w2``, a seed) as *trained* or not and as *predicted trainable* or
not. This module splits the cells by side of the critical line (ordered: ``sigma_w2`` below
the critical value, chaotic: above) and by prediction, and reports for each group the share
of cells where measurement and prediction agree, its 95% Wilson score interval, and the
agreement two trivial predictors would score on the same cells ("every network trains",
"no network trains"). A prediction is only informative where it beats both.

Plain numpy; no torch.

Notes
-----
docs/theory.md section 5 (the ``6 xi_c`` rule); docs/validation.md section 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["Z_95", "agreement_groups", "side_of", "wilson_interval"]

Z_95 = 1.959963984540054
"""The two-sided 95% standard normal quantile, ``Phi^{-1}(0.975)``."""


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval for a binomial share ``k / n``.

    Parameters
    ----------
    k, n : int
        Successes and trials, ``0 <= k <= n``.
    z : float
        The normal quantile (default: 95% two-sided).

    Returns
    -------
    (low, high) : tuple of float
        ``(c -+ h)`` with ``c = (k + z^2/2) / (n + z^2)`` and
        ``h = z / (n + z^2) * sqrt(k (n - k) / n + z^2 / 4)``; ``(nan, nan)`` when ``n = 0``.
        Unlike the normal (Wald) interval it stays inside [0, 1] and is not empty at
        ``k = 0`` or ``k = n``.

    Notes
    -----
    Cells are counted as independent trials; docs/validation.md section 1 says what that
    assumes.
    """
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return math.nan, math.nan
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4)
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exactly 0 and 1 at the ends, no
    high = 1.0 if k == n else min(1.0, centre + half)  # rounding residue
    return low, high


def side_of(sigma_w2: float, critical_sigma_w2: float) -> str:
    """``"ordered"`` below the critical ``sigma_w2``, ``"chaotic"`` above, else ``"critical"``."""
    if sigma_w2 < critical_sigma_w2:
        return "ordered"
    if sigma_w2 > critical_sigma_w2:
        return "chaotic"
    return "critical"


def _group(name: str, side: str, prediction: str, rows: Sequence[Mapping[str, Any]]) -> dict:
    n = len(rows)
    agree = sum(bool(r["agrees"]) for r in rows)
    trained = sum(bool(r["trained"]) for r in rows)
    low, high = wilson_interval(agree, n)

    def share(k: int) -> float | None:
        return k / n if n else None

    return {
        "group": name,
        "side": side,
        "prediction": prediction,
        "cells": n,
        "agreeing": agree,
        "agreement": share(agree),
        "ci95_low": None if math.isnan(low) else low,
        "ci95_high": None if math.isnan(high) else high,
        "all_train_baseline": share(trained),
        "none_train_baseline": share(n - trained),
    }


def agreement_groups(
    rows: Sequence[Mapping[str, Any]], critical_sigma_w2: float
) -> list[dict[str, Any]]:
    """Agreement per group of cells, with the 95% Wilson interval and the two baselines.

    Parameters
    ----------
    rows : sequence of dict
        One per cell, with ``sigma_w2``, ``trained``, ``predicted_trainable`` and ``agrees``.
    critical_sigma_w2 : float
        The boundary between the ordered and the chaotic side.

    Returns
    -------
    list of dict
        The groups ``all``, ``ordered``, ``chaotic`` and, within each, the cells predicted
        trainable and predicted untrainable (``critical`` groups only when a cell sits exactly
        on the critical line), each with ``group`` (its name), ``side``, ``prediction``
        (``"any"``, ``"trainable"``, ``"untrainable"``), ``cells``, ``agreeing``,
        ``agreement`` (share, None for no cells), ``ci95_low``, ``ci95_high`` (Wilson score
        interval), ``all_train_baseline`` (the agreement of predicting "trainable" for every
        cell: the share that trained) and ``none_train_baseline`` (the share that did not).

    Notes
    -----
    docs/theory.md section 5; docs/validation.md section 1.
    """
    sides = ["ordered", "chaotic"]
    if any(side_of(float(r["sigma_w2"]), critical_sigma_w2) == "critical" for r in rows):
        sides.append("critical")
    out = [_group("all", "all", "any", rows)]
    for side in ["all", *sides]:
        here = [
            r
            for r in rows
            if side == "all" or side_of(float(r["sigma_w2"]), critical_sigma_w2) == side
        ]
        if side != "all":
            out.append(_group(side, side, "any", here))
        for prediction, flag in (("trainable", True), ("untrainable", False)):
            chosen = [r for r in here if bool(r["predicted_trainable"]) == flag]
            out.append(_group(f"{side}, predicted {prediction}", side, prediction, chosen))
    return out

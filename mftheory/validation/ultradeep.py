"""The ultra-deep experiment's analysis: steps to an accuracy, the learning-rate rule, depth.

The question (the paper's Fig. 1, docs/theory.md section 7): does the number of training
steps a critical Delta-Orthogonal tanh CNN needs to reach a fixed training accuracy grow
with depth, and does that of a critical Gaussian one beside it? Each (depth, scheme) is
trained at every learning rate of a grid fixed in advance; the rule that picks the reported
rate is also fixed in advance (``select_lr``):

- a run's count is the first evaluated step at which its training accuracy is at least
  the threshold (``steps_to_accuracy``); a run that diverged, or that never reached the
  threshold within the step budget, has no count;
- the reported rate of a (depth, scheme) is the one with the fewest steps; ties go to the
  smaller rate; no rate reaching the threshold means "not reached";
- the growth with depth is the least-squares slope of log(steps) against log(depth) over
  the depths where the threshold was reached, with a 95% t-interval (``depth_slope``):
  steps ~ depth ** slope, so slope 0 is the paper's depth-independence.

Nothing here imports torch: plain numpy and scipy on the cells' JSON results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy import stats

__all__ = ["depth_slope", "select_lr", "steps_to_accuracy", "ultra_deep_summary"]


def steps_to_accuracy(
    steps: Sequence[float], accuracies: Sequence[float | None], threshold: float
) -> float | None:
    """The first step whose accuracy is at least ``threshold``, or None if none is.

    Parameters
    ----------
    steps, accuracies : sequence
        A learning curve: evaluated steps (increasing) and the training accuracy at each
        (None for an evaluation of a diverged network, never counted).
    threshold : float

    Returns
    -------
    float or None

    Notes
    -----
    docs/theory.md section 7 (the paper counts training time to a fixed accuracy).
    """
    for step, acc in zip(steps, accuracies, strict=True):
        if acc is not None and math.isfinite(float(acc)) and float(acc) >= threshold:
            return float(step)
    return None


def select_lr(counts: Mapping[float, float | None]) -> tuple[float | None, float | None]:
    """The learning rate with the fewest steps to the threshold, ties to the smaller rate.

    Parameters
    ----------
    counts : mapping
        Learning rate -> steps to the threshold, None where the run did not reach it
        (diverged, or not within the step budget).

    Returns
    -------
    (lr, steps)
        ``(None, None)`` when no rate reached the threshold.

    Notes
    -----
    docs/theory.md section 7; the rule is stated in docs/validation.md section 3.
    """
    reached = [(float(n), float(lr)) for lr, n in counts.items() if n is not None]
    if not reached:
        return None, None
    n, lr = min(reached)  # fewest steps, then the smaller rate
    return lr, n


def depth_slope(
    depths: Sequence[float], steps: Sequence[float], level: float = 0.95
) -> dict[str, Any]:
    """Least-squares slope of log(steps) against log(depth), with a t-interval.

    Parameters
    ----------
    depths, steps : sequence of float
        Positive; one point per depth (the reported rate's count).
    level : float
        Confidence level of the interval.

    Returns
    -------
    dict
        ``slope`` (None with fewer than 2 points), ``ci`` (``[low, high]``, None with fewer
        than 3 points), ``n``, ``level``.

    Notes
    -----
    ``steps ~ depth ** slope``: slope 0 is a count that does not grow with depth,
    slope 1 one proportional to depth (docs/theory.md section 7).
    """
    x = np.log(np.asarray(depths, dtype=float))
    y = np.log(np.asarray(steps, dtype=float))
    n = len(x)
    out: dict[str, Any] = {"slope": None, "ci": None, "n": n, "level": level}
    if n < 2 or np.ptp(x) == 0:
        return out
    dx = x - x.mean()
    slope = float(np.sum(dx * (y - y.mean())) / np.sum(dx**2))
    out["slope"] = slope
    if n >= 3:
        resid = y - y.mean() - slope * dx
        stderr = math.sqrt(float(np.sum(resid**2)) / (n - 2) / float(np.sum(dx**2)))
        half = float(stats.t.ppf(0.5 + level / 2, n - 2)) * stderr
        out["ci"] = [slope - half, slope + half]
    return out


def _verdict(name: str, fit: Mapping[str, Any], missing: Sequence[int]) -> str:
    """One sentence: does the count grow with depth?"""
    if missing:
        return f"{name}: not reached at depth {', '.join(map(str, missing))} within the budget"
    if fit["slope"] is None:
        return f"{name}: too few depths for a slope"
    slope = f"slope {fit['slope']:.2f}"
    if fit["ci"] is None:
        return f"{name}: {slope} (no interval with 2 depths)"
    lo, hi = fit["ci"]
    ci = f"{slope}, 95% CI [{lo:.2f}, {hi:.2f}]"
    if lo > 0:
        return f"{name}: grows with depth ({ci})"
    if hi < 0:
        return f"{name}: shrinks with depth ({ci})"
    return f"{name}: no significant growth with depth ({ci})"


def _table(rows: Sequence[Mapping[str, Any]], thresholds: Mapping[str, float]) -> list[dict]:
    """One row per (depth, scheme): per rate and threshold the count; the selected rate."""
    groups: dict[tuple[int, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((int(r["depth"]), str(r["scheme"])), []).append(r)
    table = []
    for (depth, scheme), cells in sorted(groups.items()):
        entry: dict[str, Any] = {"depth": depth, "scheme": scheme}
        for name in thresholds:
            # repeats (seeds) of one rate: their median count, None if any missed
            by_lr: dict[float, list[float | None]] = {}
            for c in cells:
                count = None if c["diverged"] else c[f"steps_to_{name}"]
                by_lr.setdefault(float(c["lr"]), []).append(count)
            counts = {
                lr: None if any(v is None for v in vs) else float(np.median(vs))  # type: ignore[arg-type]
                for lr, vs in by_lr.items()
            }
            lr, n = select_lr(counts)
            entry[f"steps_{name}"] = {f"{k:g}": v for k, v in sorted(counts.items())}
            entry[f"best_lr_{name}"], entry[f"best_steps_{name}"] = lr, n
        table.append(entry)
    return table


def ultra_deep_summary(
    rows: Sequence[Mapping[str, Any]], thresholds: Mapping[str, float], budget: int
) -> dict[str, Any]:
    """The table per depth x scheme, the slopes against depth and the verdict.

    Parameters
    ----------
    rows : sequence of dict
        One per finished cell, with ``depth``, ``scheme``, ``lr``, ``diverged`` and
        ``steps_to_<name>`` for every name of ``thresholds``.
    thresholds : mapping
        Name -> training accuracy, the first the main one (e.g. ``{"threshold": 0.55,
        "low": 0.3}``).
    budget : int
        The step budget of a cell (for the sentence).

    Returns
    -------
    dict
        ``table`` (per depth and scheme: the counts per rate and the selected rate and
        count per threshold), ``slopes`` (per threshold and scheme, ``depth_slope`` of the
        selected counts plus ``missing`` depths), ``ratio`` (per threshold and scheme,
        count at the deepest over the shallowest depth), ``verdict`` and ``headline``.

    Notes
    -----
    docs/theory.md section 7 (Fig. 1: depth-independent learning time).
    """
    table = _table(rows, thresholds)
    schemes = list(dict.fromkeys(str(r["scheme"]) for r in rows))
    slopes: dict[str, dict[str, Any]] = {}
    ratios: dict[str, dict[str, float | None]] = {}
    verdicts = []
    for name, thr in thresholds.items():
        slopes[name], ratios[name] = {}, {}
        for sc in schemes:
            mine = [e for e in table if e["scheme"] == sc]
            hit = [e for e in mine if e[f"best_steps_{name}"] is not None]
            fit = depth_slope([e["depth"] for e in hit], [e[f"best_steps_{name}"] for e in hit])
            missing = [e["depth"] for e in mine if e[f"best_steps_{name}"] is None]
            slopes[name][sc] = fit | {"missing": missing}
            first, last = (mine[0], mine[-1]) if mine else ({}, {})
            a, b = first.get(f"best_steps_{name}"), last.get(f"best_steps_{name}")
            ratios[name][sc] = None if a is None or b is None or len(mine) < 2 else b / a
            verdicts.append(f"[accuracy {thr:.3g}] " + _verdict(sc, fit, missing))
    main = next(iter(thresholds))
    head = "; ".join(_verdict(sc, slopes[main][sc], slopes[main][sc]["missing"]) for sc in schemes)
    return {
        "table": table,
        "slopes": slopes,
        "ratio": ratios,
        "verdict": verdicts,
        "headline": f"steps to training accuracy {thresholds[main]:.3f} (budget {budget}) "
        f"against depth: {head}",
    }

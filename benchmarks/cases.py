"""The benchmarks, one small function each (``CASES`` maps their names to them).

Every case appends :class:`~benchmarks.report.Row` objects (and accuracy checks) to the
:class:`Context`. The fast core is timed first, with nothing else running; the slow path of
:mod:`mftheory.reference` runs afterwards on random points of the same inputs (seeded with
:func:`numpy.random.default_rng`), one after another in this process for its per-point time,
and in ``--jobs`` worker processes for the larger accuracy samples.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from mftheory import FixedPoint, critical_point, fixed_point, get_activation
from mftheory.reference import ref_critical_sigma_w2, ref_fixed_point

from .report import AccuracyCheck, Row
from .timing import Timing, cold_call, log, measure, parallel_map, timed_map
from .torch_init import case_init_orthogonal

__all__ = [
    "CASES",
    "FIELDS",
    "RESULT_FIELDS",
    "SOLVER_ENV",
    "Config",
    "Context",
    "grid_solver",
]

#: Quantities whose accuracy issue 3 sets a target for; ``EXTRA_FIELDS`` are reported too.
FIELDS = ("q_star", "c_star", "chi_1", "chi_c", "xi_c")
EXTRA_FIELDS = ("chi_q", "xi_q")
#: The computed arrays of a FixedPoint (what a grid costs in memory).
RESULT_FIELDS = (*FixedPoint.FIELDS, "phase")

#: The grid of the issue's targets: sigma_w2 in [0.5, 4] (columns), sigma_b2 in [0.01, 1].
W_RANGE = (0.5, 4.0)
B_RANGE = (0.01, 1.0)
#: tanh written so that it is not recognised as the built-in (2 sigmoid(2x) - 1 = tanh x).
USER_TANH = "2*sigmoid(2*x) - 1"
#: "Near the critical line": |sigma_w2 / critical sigma_w2 - 1| at most this.
NEAR_CRITICAL = 1e-3

#: Environment variable that forces the pointwise stand-in for the grid solver.
SOLVER_ENV = "MFTHEORY_BENCH_SOLVER"

Range = tuple[float, float, int]
Solver = Callable[..., FixedPoint]


@dataclass
class Config:
    """What to run and how hard (``quick`` shrinks every size for a CI smoke run)."""

    quick: bool = False
    repeat: int = 5
    accuracy_points: int = 200
    ref_points: int = 10
    jobs: int = 2
    large: bool = False
    seed: int = 20240503
    fresh_cold: bool = True

    @property
    def grid_n(self) -> int:
        return 100 if self.quick else 1000

    @property
    def critical_n(self) -> int:
        return 1000 if self.quick else 10_000

    @property
    def points_n(self) -> int:
        return 200 if self.quick else 1000

    @property
    def memory_sizes(self) -> list[int]:
        sizes = [100, 200] if self.quick else [1000, 2000]
        return [*sizes, 4000] if self.large else sizes


@dataclass
class Context:
    """Shared state of one run: settings, results, and measurements cases reuse."""

    cfg: Config
    rows: list[Row] = field(default_factory=list)
    checks: list[AccuracyCheck] = field(default_factory=list)
    ref_per_point: dict[str, tuple[float, int]] = field(default_factory=dict)
    ref_phase_means: dict[str, dict[str, tuple[float, int, float]]] = field(default_factory=dict)
    grids: dict[str, tuple[Timing, FixedPoint]] = field(default_factory=dict)

    def rng(self, salt: int) -> np.random.Generator:
        """A generator of its own for each use, so that cases do not depend on each other."""
        return np.random.default_rng([self.cfg.seed, salt])


# --- the operations (module level, so that a fresh process can run them) -------------------


def _stand_in(act: Any, *, sigma_w2: Any, sigma_b2: Any, **kwargs: Any) -> FixedPoint:
    """``phase_grid``'s contract on top of the pointwise solver (before the fast grid exists)."""
    w = np.asarray(sigma_w2, dtype=np.float64)
    b = np.asarray(sigma_b2, dtype=np.float64)
    kwargs.setdefault("method", "pointwise")
    return fixed_point(act, sigma_w2=w[None, :], sigma_b2=b[:, None], **kwargs)


def grid_solver() -> tuple[Solver, str]:
    """``mftheory.meanfield.grid.phase_grid`` and its name, or the pointwise stand-in.

    The stand-in (``fixed_point`` on the broadcast grid) is used where ``mftheory.meanfield.grid``
    does not exist, or where the environment variable ``MFTHEORY_BENCH_SOLVER`` is
    ``fixed_point`` (``--solver fixed_point``; worker processes inherit it).
    """
    if os.environ.get(SOLVER_ENV, "") == "fixed_point":
        return _stand_in, "fixed_point stand-in"
    try:
        from mftheory.meanfield.grid import phase_grid  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return _stand_in, "fixed_point stand-in"
    return phase_grid, "phase_grid"  # type: ignore[no-any-return,unused-ignore]


def axis(r: Range) -> NDArray[np.float64]:
    """``START:STOP:COUNT`` as the CLI reads it: evenly spaced, both ends included."""
    return np.linspace(r[0], r[1], r[2])


def op_grid(spec: str, w: Range, b: Range) -> FixedPoint:
    """The grid of ``w`` (columns) by ``b`` (rows) for activation ``spec``."""
    solve, _ = grid_solver()
    return solve(get_activation(spec), sigma_w2=axis(w), sigma_b2=axis(b))


def op_critical(spec: str, b: Range) -> object:
    return critical_point(get_activation(spec), sigma_b2=axis(b))


def random_points(seed: int, n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``n`` points drawn uniformly from the benchmark box."""
    rng = np.random.default_rng([seed, 5])
    return rng.uniform(*W_RANGE, n), rng.uniform(*B_RANGE, n)


def op_points(spec: str, seed: int, n: int) -> FixedPoint:
    w, b = random_points(seed, n)
    return fixed_point(get_activation(spec), sigma_w2=w, sigma_b2=b)


def ref_point(task: tuple[str, float, float]) -> dict[str, Any]:
    """The slow path at one point (a worker task)."""
    spec, w, b = task
    return ref_fixed_point(get_activation(spec), w, b)


def ref_critical(task: tuple[str, float]) -> float:
    spec, b = task
    return ref_critical_sigma_w2(get_activation(spec), b)


# --- comparisons --------------------------------------------------------------------------


def rel_err(fast: float, ref: float) -> float:
    """``|fast - ref| / |ref|`` (absolute where ``ref = 0``); equal infinities and NaNs are 0."""
    if fast == ref or (math.isnan(fast) and math.isnan(ref)):
        return 0.0
    if not (math.isfinite(fast) and math.isfinite(ref)):
        return math.inf
    return abs(fast - ref) / abs(ref) if ref != 0 else abs(fast)


def _at(fp: FixedPoint, index: tuple[int, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {
        k: float(np.asarray(getattr(fp, k))[index]) for k in (*FIELDS, *EXTRA_FIELDS)
    }
    out["phase"] = str(np.asarray(fp.phase)[index])
    shape = np.asarray(fp.q_star).shape
    for x in ("sigma_w2", "sigma_b2"):
        out[x] = float(np.broadcast_to(np.asarray(getattr(fp, x), dtype=np.float64), shape)[index])
    return out


def _check(
    case: str,
    group: str,
    fast: Sequence[dict[str, Any]],
    ref: Sequence[dict[str, Any]],
    note: str = "",
) -> AccuracyCheck:
    worst = {
        k: max((rel_err(f[k], r[k]) for f, r in zip(fast, ref, strict=True)), default=math.nan)
        for k in (*FIELDS, *EXTRA_FIELDS)
    }
    mismatches = sum(f["phase"] != r["phase"] for f, r in zip(fast, ref, strict=True))
    # where the largest error of a target quantity occurs (in the JSON, for diagnosis)
    at: dict[str, Any] = {}
    for f, r in zip(fast, ref, strict=True):
        for k in FIELDS:
            e = rel_err(f[k], r[k])
            if e > at.get("rel_err", -1.0):
                at = {"field": k, "rel_err": e, "fast": f[k], "ref": r[k], "phase": r["phase"]}
                at |= {x: f[x] for x in ("sigma_w2", "sigma_b2") if x in f}
    return AccuracyCheck(case, group, len(fast), worst, mismatches, note, at)


def _compare_grids(case: str, fp: FixedPoint, ref: FixedPoint, note: str) -> AccuracyCheck:
    """:func:`_check` over every point of two grids at once (vectorised)."""
    worst = {}
    for k in (*FIELDS, *EXTRA_FIELDS):
        a = np.asarray(getattr(fp, k), dtype=np.float64)
        r = np.asarray(getattr(ref, k), dtype=np.float64)
        same = (a == r) | (np.isnan(a) & np.isnan(r))
        with np.errstate(divide="ignore", invalid="ignore"):
            err = np.where(r != 0, np.abs(a - r) / np.abs(r), np.abs(a))
        err = np.where(same, 0.0, np.where(np.isfinite(a) & np.isfinite(r), err, np.inf))
        worst[k] = float(err.max()) if err.size else math.nan
    mismatches = int((np.asarray(fp.phase) != np.asarray(ref.phase)).sum())
    return AccuracyCheck(case, "all grid points", int(np.asarray(fp.q_star).size), worst,
                         mismatches, note)  # fmt: skip


def _worst(checks: Sequence[AccuracyCheck], fields: Sequence[str] = FIELDS) -> float:
    values = [c.max_rel[k] for c in checks for k in fields if not math.isnan(c.max_rel[k])]
    return max(values, default=math.nan)


def _met(value: float | None, limit: float, cold: float | None = None) -> str:
    """``yes``/``no`` for ``value <= limit``; ``median only`` if the cold time misses it."""
    if value is None or math.isnan(value):
        return "-"
    if value > limit:
        return "no"
    if cold is not None and cold > limit:
        return "median only"
    return "yes"


def _phase_costs(ctx: Context, key: str) -> str:
    """The slow path's seconds per point by phase, as measured for ``key``."""
    means = ctx.ref_phase_means.get(key, {})
    return "slow path " + ", ".join(
        f"{m:.2g} s/{name} pt" for name, (m, n, _) in means.items() if n
    )


def _size(n_rows: int, n_cols: int) -> str:
    return f"{n_cols} x {n_rows}"


def _speed_sample(
    ctx: Context, key: str, spec: str, fp: FixedPoint, k: int, salt: int
) -> tuple[list[tuple[int, ...]], list[dict[str, Any]], float]:
    """Time the slow path at ``k`` random points of ``fp``'s inputs, one after another.

    The points are drawn per phase of the fast result, in proportion to the phase's share
    (at least one from each phase holding 1% of the points or more), because the slow path
    costs ~100x more per chaotic point than per ordered one. The slow seconds per point
    extrapolated to the whole input, ``sum_p share_p * mean_p``, is remembered under ``key``.
    Returns the indices into ``fp``, the slow results there and that per-point time.
    """
    phase = np.asarray(fp.phase)
    flat = phase.ravel()
    names, counts = np.unique(flat, return_counts=True)
    share = counts / flat.size
    k = min(k, flat.size)
    alloc = np.zeros(names.size, dtype=int)
    for i in np.argsort(-counts):  # one from each phase that matters, largest first
        if share[i] >= 0.01 and alloc.sum() < k:
            alloc[i] = 1
    while alloc.sum() < k:  # the rest by largest shortfall against the proportional share
        room = np.where(alloc < counts, k * share - alloc, -np.inf)
        alloc[int(np.argmax(room))] += 1
    rng = ctx.rng(salt)
    picks: list[int] = []
    for i, m in enumerate(alloc):
        if m:
            members = np.flatnonzero(flat == names[i])
            picks += [int(x) for x in rng.choice(members, size=int(m), replace=False)]
    index = [tuple(int(x) for x in np.unravel_index(f, phase.shape)) for f in picks]
    w_all = np.broadcast_to(np.asarray(fp.sigma_w2, dtype=np.float64), phase.shape)
    b_all = np.broadcast_to(np.asarray(fp.sigma_b2, dtype=np.float64), phase.shape)
    tasks = [(spec, float(w_all[ij]), float(b_all[ij])) for ij in index]
    log(f"  slow path on {len(tasks)} random points ({key})")
    refs, secs = timed_map(ref_point, tasks)
    overall = float(np.mean(secs))
    means = {}
    for i, name in enumerate(names):
        mine = [t for t, f in zip(secs, picks, strict=True) if flat[f] == name]
        means[str(name)] = (float(np.mean(mine)) if mine else overall, len(mine), float(share[i]))
    per_point = sum(m * sh for m, _, sh in means.values())
    ctx.ref_per_point[key] = (per_point, len(tasks))
    ctx.ref_phase_means[key] = means
    return index, refs, per_point


# --- the cases ----------------------------------------------------------------------------


def case_phase_grid(ctx: Context) -> None:
    """1. The tanh grid: time, speed-up, accuracy in both phases and near the critical line."""
    cfg = ctx.cfg
    n = cfg.grid_n
    wr: Range = (*W_RANGE, n)
    br: Range = (*B_RANGE, n)
    w, b = axis(wr), axis(br)
    solve, label = grid_solver()
    act = get_activation("tanh")
    log(f"phase_grid tanh {n} x {n} ({label})")
    cold = cold_call(op_grid, "tanh", wr, br) if cfg.fresh_cold else None
    timing, fp = measure(lambda: solve(act, sigma_w2=w, sigma_b2=b), cfg.repeat, cold)
    ctx.grids["tanh"] = (timing, fp)

    key = f"tanh grid {n}"
    sample, refs, per_point = _speed_sample(ctx, key, "tanh", fp, cfg.ref_points, 1)
    uniform = _check(
        "phase_grid", "random", [_at(fp, ij) for ij in sample], refs, "speed-up sample"
    )
    limit = 2.0
    ctx.rows.append(
        Row(
            case="phase_grid",
            operation=f"{label} tanh",
            size=_size(n, n),
            points=n * n,
            cold=timing.cold,
            seconds=timing.median,
            times=timing.times,
            ref_seconds_per_point=per_point,
            ref_points=len(sample),
            check=f"{int((np.asarray(fp.phase) == 'chaotic').sum())} chaotic points; "
            + _phase_costs(ctx, key),
            target="<= 2 s (1000 x 1000)",
            met=_met(timing.median, limit, timing.cold) if n == 1000 else "n/a (quick)",
            extra={"solver": label, "slow_path_by_phase": ctx.ref_phase_means[key]},
        )
    )
    _phase_grid_accuracy(ctx, fp, act.name, w, b, uniform)


def _phase_grid_accuracy(
    ctx: Context,
    fp: FixedPoint,
    spec: str,
    w: NDArray[np.float64],
    b: NDArray[np.float64],
    uniform: AccuracyCheck,
) -> None:
    cfg = ctx.cfg
    total = cfg.accuracy_points
    if total <= 0:
        ctx.checks.append(uniform)
        return
    rng = ctx.rng(2)
    n_near = round(0.2 * total)
    n_ord = round(0.4 * total)
    n_chaos = total - n_near - n_ord

    wc = np.asarray(critical_point(spec, sigma_b2=b).sigma_w2, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        near = np.abs(w[None, :] / wc[:, None] - 1.0) <= NEAR_CRITICAL
    phase = np.asarray(fp.phase)

    def pick(mask: NDArray[np.bool_], k: int) -> list[tuple[int, int]]:
        rows, cols = np.nonzero(mask)
        chosen = rng.choice(rows.size, size=min(k, rows.size), replace=False)
        return [(int(rows[c]), int(cols[c])) for c in np.sort(chosen)]

    groups: dict[str, list[tuple[int, int]]] = {
        "ordered": pick((phase == "ordered") & ~near, n_ord),
        "chaotic": pick((phase == "chaotic") & ~near, n_chaos),
        "near critical": pick(near, n_near),
    }
    points: dict[str, list[tuple[float, float]]] = {
        g: [(float(w[j]), float(b[i])) for i, j in idx] for g, idx in groups.items()
    }
    fast: dict[str, list[dict[str, Any]]] = {
        g: [_at(fp, ij) for ij in idx] for g, idx in groups.items()
    }
    # Too few grid columns within 1e-3 of the line (coarse --quick grids): add points off the
    # grid at random relative distances in [-1e-3, 1e-3], each solved as a 1 x 1 grid.
    missing = n_near - len(groups["near critical"])
    if missing > 0:
        solve, _ = grid_solver()
        rows = rng.choice(b.size, size=missing)
        extra = [
            (float(wc[i] * (1.0 + rng.uniform(-NEAR_CRITICAL, NEAR_CRITICAL))), float(b[i]))
            for i in rows
        ]
        points["near critical, off grid"] = extra
        fast["near critical, off grid"] = [
            _at(solve(spec, sigma_w2=np.array([x]), sigma_b2=np.array([y])), (0, 0))
            for x, y in extra
        ]
    tasks = [(spec, x, y) for g in points for x, y in points[g]]
    log(f"  accuracy: slow path at {len(tasks)} points on {cfg.jobs} processes")
    refs, _ = parallel_map(ref_point, tasks, cfg.jobs)
    # The exact pointwise path at the same points: a control for what double precision allows.
    flat_pts = [p for g in points for p in points[g]]
    flat_fast = [f for g in points for f in fast[g]]
    exact = fixed_point(
        spec,
        sigma_w2=np.array([p[0] for p in flat_pts]),
        sigma_b2=np.array([p[1] for p in flat_pts]),
        method="pointwise",
    )
    control = [_at(exact, (i,)) for i in range(len(flat_pts))]
    labels = []
    k = 0
    for g, pts in points.items():
        for _ in pts:  # near-critical points are split by the slow path's phase
            side = refs[k]["phase"]
            labels.append(g.replace("critical", f"critical, {side}", 1) if "near" in g else g)
            k += 1
    names = sorted(set(labels), key=labels.index)
    checks, controls = [], []
    for name in names:
        idx = [i for i, x in enumerate(labels) if x == name]
        sub = [refs[i] for i in idx]
        checks.append(_check("phase_grid", name, [flat_fast[i] for i in idx], sub))
        controls.append(_check("exact fixed_point", name, [control[i] for i in idx], sub))
    ctx.checks += [*checks, uniform, *controls]

    # xi_c = -1/log(chi_c) is ill-conditioned next to the line. In the chaotic phase an error
    # of a few ulp (eps) in the C-map moves c* and chi_c by about eps / (1 - chi_c), and xi_c
    # by that over log(1/chi_c) relative: about eps / (1 - chi_c)^2, which no double-precision
    # path (the slow one included) resolves better. Errors of xi_c below this floor are
    # counted as conditioning-limited rather than as misses of the fast path.
    eps = float(np.finfo(np.float64).eps)
    limited = 0
    worst_core = max(
        rel_err(f[k], r[k])
        for f, r in zip(flat_fast, refs, strict=True)
        for k in FIELDS
        if k != "xi_c"
    )
    worst_xi = 0.0
    misses = []
    for f, r, c in zip(flat_fast, refs, control, strict=True):
        e = rel_err(f["xi_c"], r["xi_c"])
        chi = float(r["chi_c"])
        floor = 0.0
        if 0 < chi < 1:
            floor = 4 * eps / -math.log(chi)  # a few ulp of chi_c itself
            floor /= (1 - chi) if r["phase"] == "chaotic" else 1.0
        if e > 1e-8:
            misses.append(
                {"sigma_w2": f["sigma_w2"], "sigma_b2": f["sigma_b2"], "phase": r["phase"],
                 "chi_c": chi, "rel_err": e, "floor": floor,
                 "exact_rel_err": rel_err(c["xi_c"], r["xi_c"])}
            )  # fmt: skip
        if e > 1e-8 and e <= floor:
            limited += 1
        elif e > worst_xi:
            worst_xi = e
    worst = _worst([*checks, uniform])
    mismatches = sum(c.phase_mismatches for c in [*checks, uniform])
    counts = "/".join(
        str(sum(c.points for c in checks if c.group.startswith(g)))
        for g in ("ordered", "chaotic", "near")
    )
    n_all = sum(c.points for c in checks) + uniform.points
    if worst <= 1e-8 and mismatches == 0:
        met = "yes"
    elif max(worst_core, worst_xi, _worst([uniform])) <= 1e-8 and mismatches == 0:
        met = f"no: xi_c at {limited} ill-conditioned pts"
    else:
        met = "no"
    ctx.rows.append(
        Row(
            case="phase_grid",
            operation="  accuracy vs slow path",
            size=f"{n_all} points",
            points=n_all,
            check=f"max rel err {worst:.1e} ({counts} ord/chaos/near + {uniform.points} random)"
            + (f"; without xi_c {worst_core:.1e}" if worst_core < worst else "")
            + (
                f"; exact fixed_point {_worst(controls):.1e} at the same points"
                if worst > 1e-8
                else ""
            )
            + (f", {mismatches} phase mismatches" if mismatches else ""),
            target="<= 1e-8 relative",
            met=met,
            extra={
                "max_rel": worst,
                "max_rel_without_xi_c": worst_core,
                "xi_c_conditioning_limited_points": limited,
                "exact_fixed_point_max_rel": _worst(controls),
                "phase_mismatches": mismatches,
                "xi_c_above_1e-8": misses,
            },
        )
    )


def case_expression(ctx: Context) -> None:
    """2. The same grid for tanh as a user expression that is not the built-in."""
    cfg = ctx.cfg
    n = cfg.grid_n
    wr: Range = (*W_RANGE, n)
    br: Range = (*B_RANGE, n)
    w, b = axis(wr), axis(br)
    solve, label = grid_solver()
    user = get_activation(USER_TANH)
    assert user.name != "tanh" and user.closed_form is None, "expression became the built-in"
    if "tanh" not in ctx.grids:
        log(f"phase_grid tanh {n} x {n} (built-in, for the ratio)")
        cold = cold_call(op_grid, "tanh", wr, br) if cfg.fresh_cold else None
        tanh = get_activation("tanh")
        ctx.grids["tanh"] = measure(lambda: solve(tanh, sigma_w2=w, sigma_b2=b), cfg.repeat, cold)
    base, fp_tanh = ctx.grids["tanh"]
    log(f"phase_grid {USER_TANH!r} {n} x {n} ({label})")
    cold = cold_call(op_grid, USER_TANH, wr, br) if cfg.fresh_cold else None
    timing, fp = measure(lambda: solve(user, sigma_w2=w, sigma_b2=b), cfg.repeat, cold)

    every = _compare_grids("expression", fp, fp_tanh, "vs built-in tanh")
    ctx.checks.append(every)
    ratio = timing.median / base.median
    cold_ratio = (
        timing.cold / base.cold if timing.cold is not None and base.cold is not None else None
    )
    per_point: float | None = None
    k = 0 if cfg.quick else min(cfg.ref_points, 3)
    if k:
        _, _, per_point = _speed_sample(ctx, f"user tanh grid {n}", USER_TANH, fp, k, 3)
    ctx.rows.append(
        Row(
            case="expression",
            operation=f"{label} {USER_TANH!r}",
            size=_size(n, n),
            points=n * n,
            cold=timing.cold,
            seconds=timing.median,
            times=timing.times,
            ref_seconds_per_point=per_point,
            ref_points=k,
            check=f"{ratio:.2f}x built-in"
            + (f" (cold {cold_ratio:.2f}x)" if cold_ratio is not None else "")
            + f"; max rel diff {_worst([every]):.1e}",
            target="<= 3x built-in",
            met=_met(ratio, 3.0, cold_ratio) if n == 1000 else "n/a (quick)",
            extra={"ratio": ratio, "cold_ratio": cold_ratio},
        )
    )


def case_critical(ctx: Context) -> None:
    """3. The critical line at many biases: time and accuracy against the slow root."""
    cfg = ctx.cfg
    n = cfg.critical_n
    br: Range = (0.0, 2.0, n)
    b = axis(br)
    act = get_activation("tanh")
    log(f"critical_point tanh at {n} biases")
    cold = cold_call(op_critical, "tanh", br) if cfg.fresh_cold else None
    timing, cp = measure(lambda: critical_point(act, sigma_b2=b), cfg.repeat, cold)
    ws = np.asarray(cp.sigma_w2, dtype=np.float64)
    # b = 0 is left out: there the slow root is only resolved to ~1e-8 (reference docs)
    k = cfg.ref_points
    idx = np.sort(ctx.rng(4).choice(np.arange(1, n), size=min(k, n - 1), replace=False))
    log(f"  slow path at {idx.size} biases")
    refs, secs = timed_map(ref_critical, [("tanh", float(b[i])) for i in idx])
    errs = [rel_err(float(ws[i]), r) for i, r in zip(idx, refs, strict=True)]
    worst = max(errs, default=math.nan)
    per_point = float(np.mean(secs))
    ctx.checks.append(
        AccuracyCheck("critical", "random biases", int(idx.size), {"sigma_w2": worst})
    )
    ctx.rows.append(
        Row(
            case="critical",
            operation="critical_point tanh",
            size=f"{n} biases",
            points=n,
            cold=timing.cold,
            seconds=timing.median,
            times=timing.times,
            ref_seconds_per_point=per_point,
            ref_points=int(idx.size),
            check=f"max rel err {worst:.1e} ({idx.size} pts)",
            target="<= 0.5 s (10,000), <= 1e-10",
            met=(_met(timing.median, 0.5, timing.cold) if n == 10_000 else "n/a (quick)")
            + ("" if worst <= 1e-10 else "; accuracy no"),
            extra={"max_rel": worst},
        )
    )


def case_fixed_point(ctx: Context) -> None:
    """5. The pointwise solver on random (unstructured) points, for reference."""
    cfg = ctx.cfg
    n = cfg.points_n
    act = get_activation("tanh")
    w, b = random_points(cfg.seed, n)
    log(f"fixed_point tanh at {n} random points")
    cold = cold_call(op_points, "tanh", cfg.seed, n) if cfg.fresh_cold else None
    timing, fp = measure(lambda: fixed_point(act, sigma_w2=w, sigma_b2=b), cfg.repeat, cold)
    sample, refs, per_point = _speed_sample(ctx, f"tanh points {n}", "tanh", fp, cfg.ref_points, 5)
    k = len(sample)
    check = _check("fixed_point", "random points", [_at(fp, ij) for ij in sample], refs)
    ctx.checks.append(check)
    ctx.rows.append(
        Row(
            case="fixed_point",
            operation="fixed_point tanh (pointwise)",
            size=f"{n} points",
            points=n,
            cold=timing.cold,
            seconds=timing.median,
            times=timing.times,
            ref_seconds_per_point=per_point,
            ref_points=k,
            check=f"max rel err {_worst([check]):.1e} ({k} pts)",
            target="(reference)",
        )
    )


def _mftheory_command() -> list[str]:
    """The ``mftheory`` script of this interpreter's environment (``-m`` as a fallback)."""
    here = Path(sys.executable).parent / "mftheory"
    if here.exists():
        return [str(here)]
    found = shutil.which("mftheory")
    return [found] if found else [sys.executable, "-m", "mftheory.cli"]


def _run(cmd: Sequence[str], output: Path) -> None:
    output.unlink(missing_ok=True)
    out = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if out.returncode != 0 or not output.exists():
        raise RuntimeError(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr[-2000:]}")


def _parse_range(text: str) -> Range:
    start, stop, count = text.split(":")
    return float(start), float(stop), int(count)


def case_cli(ctx: Context) -> None:
    """4. The CLI from the shell, start-up included: a grid to .npz and the default figure."""
    from mftheory.cli.commands.phase_diagram import DEFAULT_SIGMA_B2_RANGE, DEFAULT_SIGMA_W2_RANGE

    cfg = ctx.cfg
    n = cfg.grid_n
    exe = _mftheory_command()
    with tempfile.TemporaryDirectory(prefix="mftheory-bench-") as tmp:
        npz = Path(tmp) / "grid.npz"
        grid_cmd = [*exe, "phase-diagram", "--act", "tanh", "--sigma-w2", f"0.5:4:{n}",
                    "--sigma-b2", f"0.01:1:{n}", "-o", str(npz)]  # fmt: skip
        log(f"CLI: {' '.join(grid_cmd[len(exe) - 1 :])}")
        timing, _ = measure(lambda: _run(grid_cmd, npz), cfg.repeat)
        with np.load(npz) as data:
            shape = data["q_star"].shape
            missing = [k for k in FIELDS if k not in data.files]
        key = f"tanh grid {n}"
        if key not in ctx.ref_per_point:
            solve, _ = grid_solver()
            grid = solve("tanh", sigma_w2=axis((*W_RANGE, n)), sigma_b2=axis((*B_RANGE, n)))
            _speed_sample(ctx, key, "tanh", grid, min(cfg.ref_points, 5), 1)
        per_point, k = ctx.ref_per_point[key]
        ctx.rows.append(
            Row(
                case="cli",
                operation="CLI phase-diagram -o grid.npz",
                size=_size(n, n),
                points=n * n,
                cold=timing.cold,
                seconds=timing.median,
                times=timing.times,
                ref_seconds_per_point=per_point,
                ref_points=k,
                check=f"q_star {shape}" + (f"; missing {missing}" if missing else ""),
                target="<= 3 s wall (1000 x 1000)",
                met=_met(timing.median, 3.0, timing.cold) if n == 1000 else "n/a (quick)",
            )
        )

        png = Path(tmp) / "phase.png"
        fig_cmd = [*exe, "phase-diagram", "-o", str(png)]
        log(f"CLI: {' '.join(fig_cmd[len(exe) - 1 :])}")
        timing, _ = measure(lambda: _run(fig_cmd, png), cfg.repeat)
        size = png.stat().st_size
    wr, br = _parse_range(DEFAULT_SIGMA_W2_RANGE), _parse_range(DEFAULT_SIGMA_B2_RANGE)
    solve, _ = grid_solver()
    grid = solve("tanh", sigma_w2=axis(wr), sigma_b2=axis(br))
    sample, _, per_point = _speed_sample(
        ctx, "tanh default figure grid", "tanh", grid, min(cfg.ref_points, 5), 6
    )
    ctx.rows.append(
        Row(
            case="cli",
            operation="CLI phase-diagram -o phase.png",
            size=_size(br[2], wr[2]) + " (default)",
            points=br[2] * wr[2],
            cold=timing.cold,
            seconds=timing.median,
            times=timing.times,
            ref_seconds_per_point=per_point,
            ref_points=len(sample),
            check=f"png {size / 1024:.0f} KiB",
            target="< 3 s wall",
            met=_met(timing.median, 3.0, timing.cold),
        )
    )


def case_memory(ctx: Context) -> None:
    """6. Peak resident memory of phase_grid in a fresh process, for growing grids."""
    cfg = ctx.cfg
    runs = []
    for n in cfg.memory_sizes:
        log(f"memory: phase_grid {n} x {n} in a fresh process")
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks._memory_probe", str(n)],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
        if out.returncode != 0:
            raise RuntimeError(f"memory probe {n} failed: {out.stderr[-2000:]}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    mib = 2**20
    for i, r in enumerate(runs):
        n, pts = r["n"], r["n"] ** 2
        grown = (r["peak_bytes"] - r["base_bytes"]) / pts
        check = (
            f"peak {r['peak_bytes'] / mib:,.0f} MiB: import {r['base_bytes'] / mib:.0f} MiB + "
            f"{grown:.0f} B/pt (result {r['result_bytes'] / pts:.0f} B/pt)"
        )
        met, target = "", ""
        if i > 0:
            prev = runs[i - 1]
            marginal = (r["peak_bytes"] - prev["peak_bytes"]) / (pts - prev["n"] ** 2)
            ratio = marginal / (r["result_bytes"] / pts)
            check += f"; {marginal:.0f} B/added pt = {ratio:.2f}x result"
            target = "linear, chunked (<= 2x result per added point)"
            met = ("yes" if ratio <= 2.0 else "no") if not cfg.quick else "n/a (quick)"
        ctx.rows.append(
            Row(
                case="memory",
                operation=f"{r['solver']} peak RSS",
                size=_size(n, n),
                points=pts,
                cold=r["seconds"],
                check=check,
                target=target,
                met=met,
                extra=r,
            )
        )
    if cfg.large:
        _cli_large(ctx, max(cfg.memory_sizes))


#: Runs a command and prints its wall time and peak RSS as JSON. A small process of its own, so
#: that the child's ``ru_maxrss`` (which survives ``execve``) starts from a small parent.
_WRAPPER = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
p = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=False)
dt = time.perf_counter() - t
kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": p.returncode, "seconds": dt, "peak_kb": kb, "stderr": p.stderr[-2000:]}))
"""


def _cli_large(ctx: Context, n: int) -> None:
    """The n x n grid from the shell: wall time, peak memory and what stderr says."""
    log(f"memory: CLI phase-diagram {n} x {n} -o grid.npz")
    with tempfile.TemporaryDirectory(prefix="mftheory-bench-") as tmp:
        npz = Path(tmp) / "grid.npz"
        cmd = [*_mftheory_command(), "phase-diagram", "--sigma-w2", f"0.5:4:{n}",
               "--sigma-b2", f"0.01:1:{n}", "-o", str(npz)]  # fmt: skip
        out = subprocess.run(
            [sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True, check=False
        )
        r = json.loads(out.stdout.strip().splitlines()[-1])
        ok = r["rc"] == 0 and npz.exists()
        mib = r["peak_kb"] * (1 if sys.platform == "darwin" else 1024) / 2**20  # macOS: bytes
        note = " / ".join(x.strip() for x in r["stderr"].strip().splitlines()[:2] if x.strip())
        ctx.rows.append(
            Row(
                case="memory",
                operation="CLI phase-diagram -o grid.npz",
                size=_size(n, n),
                points=n * n,
                cold=r["seconds"],
                check=f"peak {mib:,.0f} MiB; stderr (not a terminal): {note or 'nothing'}"
                if ok
                else f"FAILED ({r['rc']}): {r['stderr'][-300:]}",
                target="chunked, progress on stderr",
                met="-" if ok else "error",
                extra=r,
            )
        )


# --- issue 4: images through the CNN covariance map ----------------------------------------


def _image(n: int, seed: int) -> NDArray[np.float64]:
    """A seeded stand-in for an image: intensities in [0, 1], smooth plus noise."""
    rng = np.random.default_rng(seed)
    a = np.arange(n)
    smooth = 0.5 + 0.3 * np.sin(2 * np.pi * a / n)[:, None] * np.cos(2 * np.pi * a / n)[None, :]
    return np.clip(smooth + 0.2 * rng.standard_normal((n, n)), 0.0, 1.0)[None, None]


def op_propagate(n: int, depth: int, seed: int) -> Any:
    """``propagate`` of one n x n image (tanh, sigma_w2 1.76, sigma_b2 0.05, uniform 3x3)."""
    from mftheory.cnn.modes import variance_vector
    from mftheory.cnn.propagation import propagate

    v = variance_vector("uniform", kernel=3, dim=2)
    return propagate("tanh", v=v, sigma_w2=1.76, sigma_b2=0.05, depth=depth, images=_image(n, seed))


def case_propagate(ctx: Context) -> None:
    """7. ``propagate`` of one image: 8x8 for 1000 layers, 32x32 for 100 (issue 4), against
    the entry-by-entry spatial map (:func:`mftheory.cnn.spatial.covariance_map`) in this run."""
    import tracemalloc

    from mftheory.cnn.modes import variance_vector
    from mftheory.cnn.propagation import input_covariance
    from mftheory.cnn.spatial import covariance_map

    cfg = ctx.cfg
    v = variance_vector("uniform", kernel=3, dim=2)
    sizes = [(8, 100), (16, 20)] if cfg.quick else [(8, 1000), (32, 100)]
    targets = {(8, 1000): 1.0, (32, 100): 10.0}
    for n, depth in sizes:
        log(f"propagate tanh {n}x{n}, {depth} layers")
        repeat = cfg.repeat if n <= 8 else max(1, min(cfg.repeat, 2))
        cold = cold_call(op_propagate, n, depth, cfg.seed) if cfg.fresh_cold else None
        timing, res = measure(partial(op_propagate, n, depth, cfg.seed), repeat, cold)
        tracemalloc.start()
        op_propagate(n, depth, cfg.seed)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # the slow path: the entry-by-entry map for a few layers from the same start
        k = 3 if n <= 8 else 1
        log(f"  slow map, {k} layer(s)")
        slow = input_covariance(_image(n, cfg.seed), v, sigma_w2=1.76, sigma_b2=0.05)
        t0 = time.perf_counter()
        for _ in range(k):
            slow = covariance_map("tanh", slow, v, image_shape=(n, n), sigma_w2=1.76, sigma_b2=0.05)
        per_layer = (time.perf_counter() - t0) / k
        fast = op_propagate(n, k + 1, cfg.seed).covariance
        err = float(np.max(np.abs(fast - slow)) / np.max(np.abs(np.diag(slow))))
        limit = targets.get((n, depth))
        ctx.rows.append(
            Row(
                case="propagate",
                operation="propagate tanh (one image)",
                size=f"{n}x{n} image, {depth} layers",
                points=depth,
                cold=timing.cold,
                seconds=timing.median,
                times=timing.times,
                ref_seconds_per_point=per_layer,
                ref_points=k,
                check=f"vs slow map ({k} layer(s)) {err:.1e} rel; peak {peak / 2**20:.0f} MiB",
                target="" if limit is None else f"<= {limit:g} s",
                met="n/a (quick)" if limit is None else _met(timing.median, limit, timing.cold),
                extra={"peak_bytes": peak, "max_rel_vs_slow": err, "methods": res.methods},
            )
        )


# --- orthogonal convolution kernels (docs/theory.md section 6) -----------------------------------


def op_orthogonal_kernel(size: int, c_in: int, c_out: int, seed: int) -> NDArray[np.float64]:
    """``orthogonal_kernel`` in 2D (module level, so that a fresh process can run it)."""
    from mftheory.cnn.kernels import orthogonal_kernel

    return orthogonal_kernel(size, c_in, c_out, dim=2, seed=seed)


def case_kernels(ctx: Context) -> None:
    """8. ``orthogonal_kernel(3, 512, 512, dim=2)`` (Algorithm 1), checked orthogonal by the
    FFT test of :func:`mftheory.cnn.kernels.check_kernel` on a few image sizes."""
    from mftheory.cnn.kernels import check_kernel, kernel_variance_share

    cfg = ctx.cfg
    size, c = 3, 512
    log(f"orthogonal_kernel {size}x{size}, {c} -> {c} channels")
    cold = cold_call(op_orthogonal_kernel, size, c, c, cfg.seed) if cfg.fresh_cold else None
    timing, kernel = measure(partial(op_orthogonal_kernel, size, c, c, cfg.seed), cfg.repeat, cold)
    n_values = [3] if cfg.quick else [3, 4]
    log(f"  check_kernel on n = {n_values}")
    t0 = time.perf_counter()
    res = check_kernel(kernel, gain=1.0, n_values=n_values)
    check_seconds = time.perf_counter() - t0
    share = kernel_variance_share(kernel)
    ctx.rows.append(
        Row(
            case="kernels",
            operation="orthogonal_kernel 2D",
            size=f"{size}x{size}x{c}x{c}",
            points=1,
            cold=timing.cold,
            seconds=timing.median,
            times=timing.times,
            check=f"max |sigma - 1| {res.max_deviation:.1e} on n = {n_values}"
            f" ({check_seconds:.1f} s); centre share {float(share[1, 1]):.3f}",
            target="<= 2 s",
            met=_met(timing.median, 2.0, timing.cold) if res.orthogonal else "no: not orthogonal",
            extra={
                "check": res.as_dict(),
                "check_seconds": check_seconds,
                "variance_share": share.tolist(),
            },
        )
    )


def case_spectrum(ctx: Context) -> None:
    """9. The predicted Jacobian spectrum at depth 1,000 on 1,000 points (issue 7: < 1 s),
    against a Monte Carlo network of the same depth (the baseline), timed in the same run."""
    from mftheory.montecarlo.jacobians import sample_jacobian_spectrum
    from mftheory.spectrum.density import jacobian_spectrum

    cfg = ctx.cfg
    depth = 1000
    width = 64 if cfg.quick else 200
    for weights, b2 in (("gaussian", 0.05), ("orthogonal", 0.05)):
        log(f"jacobian_spectrum tanh depth {depth}, {weights}, 1000 points")
        op = partial(jacobian_spectrum, "tanh", depth=depth, sigma_b2=b2, weights=weights)
        cold = cold_call(op) if cfg.fresh_cold else None
        timing, spec = measure(op, cfg.repeat, cold)
        log(f"  baseline: one sampled network of width {width}")
        t0 = time.perf_counter()
        sampled = sample_jacobian_spectrum(
            "tanh",
            sigma_w2=spec.sigma_w2,
            sigma_b2=b2,
            depth=depth,
            width=width,
            weights=weights,
            q0=spec.q_star,
            seed=cfg.seed,
        )
        mc_seconds = time.perf_counter() - t0
        mean_err = abs(spec.checks["mean"] / spec.mean - 1.0)
        ctx.rows.append(
            Row(
                case="spectrum",
                operation=f"jacobian_spectrum tanh {weights}",
                size=f"depth {depth}, {spec.log_x.size} points",
                points=1,
                cold=timing.cold,
                seconds=timing.median,
                times=timing.times,
                ref_seconds_per_point=mc_seconds,
                ref_points=1,
                check=f"density mass {spec.checks['mass']:.5f}, |mean/chi^L - 1| {mean_err:.1e};"
                f" baseline = 1 sampled net N = {width} (mean {sampled.mean:.3g})",
                target="< 1 s",
                met=_met(timing.median, 1.0, timing.cold),
                extra={"checks": spec.checks, "mc_seconds": mc_seconds, "mc_width": width},
            )
        )


#: The benchmarks in the order they run (names for ``--only``).
CASES: dict[str, Callable[[Context], None]] = {
    "phase_grid": case_phase_grid,
    "expression": case_expression,
    "critical": case_critical,
    "cli": case_cli,
    "fixed_point": case_fixed_point,
    "memory": case_memory,
    "propagate": case_propagate,
    "kernels": case_kernels,
    "spectrum": case_spectrum,
    "init_orthogonal": case_init_orthogonal,
}

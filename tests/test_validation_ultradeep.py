"""Issue 16 (lane G): the ultra-deep experiment's learning-rate sweep and its analysis.

The rules (steps to an accuracy, the learning-rate choice, the slope against depth) are
checked against hand-made learning curves whose answers are read off by eye, and the slope's
interval against scipy's ``linregress`` (its slope and standard error; the code sums the
least-squares formulas itself). The plan is checked for the grid docs/validation.md
section 3 states; the early stop on a real (tiny) training run.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from mftheory.validation.experiments import plan_experiment, summarise
from mftheory.validation.ultradeep import (
    depth_slope,
    select_lr,
    steps_to_accuracy,
    ultra_deep_summary,
)

# --- steps to an accuracy ------------------------------------------------------------------------


def test_steps_to_accuracy_is_the_first_crossing() -> None:
    steps = [0, 10, 20, 30, 40]
    acc = [0.1, 0.25, 0.31, 0.2, 0.6]
    assert steps_to_accuracy(steps, acc, 0.3) == 20.0  # first at or above, later dips ignored
    assert steps_to_accuracy(steps, acc, 0.31) == 20.0  # equal counts as reached
    assert steps_to_accuracy(steps, acc, 0.55) == 40.0
    assert steps_to_accuracy(steps, acc, 0.61) is None  # never reached
    assert steps_to_accuracy(steps, acc, 0.0) == 0.0


def test_steps_to_accuracy_skips_missing_and_nan() -> None:
    assert steps_to_accuracy([0, 10, 20], [None, math.nan, 0.9], 0.5) == 20.0
    assert steps_to_accuracy([], [], 0.5) is None


# --- the learning-rate rule --------------------------------------------------------------------


def test_select_lr_fewest_steps_ties_to_the_smaller_rate() -> None:
    assert select_lr({1e-3: 120.0, 3e-4: 90.0, 3e-3: None}) == (3e-4, 90.0)
    assert select_lr({1e-3: 60.0, 3e-4: 60.0, 3e-3: 60.0}) == (3e-4, 60.0)  # tie
    assert select_lr({3e-3: 50.0, 1e-3: 60.0}) == (3e-3, 50.0)  # no bias to small rates
    assert select_lr({1e-3: None, 3e-4: None}) == (None, None)
    assert select_lr({}) == (None, None)


# --- the slope against depth -------------------------------------------------------------------


def test_depth_slope_of_an_exact_power_law() -> None:
    depths = [32, 64, 128, 256, 512, 1024]
    for power in (0.0, 0.5, 1.0):
        fit = depth_slope(depths, [7.0 * d**power for d in depths])
        assert fit["slope"] == pytest.approx(power, abs=1e-12)  # exact up to rounding
        lo, hi = fit["ci"]
        assert hi - lo == pytest.approx(0.0, abs=1e-9)  # no scatter, no width


def test_depth_slope_interval_against_scipy_linregress() -> None:
    depths = np.array([32, 64, 128, 256, 512, 1024], dtype=float)
    steps = np.array([80, 70, 110, 90, 130, 120], dtype=float)
    ref = stats.linregress(np.log(depths), np.log(steps))
    slope, half = ref.slope, stats.t.ppf(0.975, len(depths) - 2) * ref.stderr
    fit = depth_slope(depths, steps)
    # tolerance: two ways of summing six floats agree to rounding
    assert fit["slope"] == pytest.approx(slope, rel=1e-12)
    assert fit["ci"] == pytest.approx([slope - half, slope + half], rel=1e-10)
    assert fit["n"] == 6 and fit["level"] == 0.95


def test_depth_slope_with_too_few_points() -> None:
    assert depth_slope([32], [100])["slope"] is None
    two = depth_slope([32, 64], [100, 200])
    assert two["slope"] == pytest.approx(1.0) and two["ci"] is None


# --- the summary over hand-made cells ----------------------------------------------------------


def _row(depth: int, scheme: str, lr: float, hi: float | None, lo: float | None,
         diverged: bool = False) -> dict[str, Any]:  # fmt: skip
    return {"depth": depth, "scheme": scheme, "lr": lr, "diverged": diverged,
            "steps_to_threshold": hi, "steps_to_low": lo}  # fmt: skip


def test_ultra_deep_summary_table_and_verdict() -> None:
    rows = []
    for d in (32, 64, 128, 256):
        # Delta-Orthogonal: the same count at every depth, at lr 1e-3 (3e-4 slower, 3e-3
        # diverged after reaching the low threshold: it counts as not reaching it)
        rows += [
            _row(d, "delta-orthogonal", 3e-4, 150.0, 90.0),
            _row(d, "delta-orthogonal", 1e-3, 100.0, 50.0),
            _row(d, "delta-orthogonal", 3e-3, None, 20.0, diverged=True),
        ]
        # Gaussian: count proportional to depth at the low threshold, main one never reached
        rows += [_row(d, "gaussian", 3e-4, None, d / 2), _row(d, "gaussian", 1e-3, None, d / 2)]
    out = ultra_deep_summary(rows, {"threshold": 0.55, "low": 0.3}, 200)
    delta = [e for e in out["table"] if e["scheme"] == "delta-orthogonal"]
    assert [e["best_lr_threshold"] for e in delta] == [1e-3] * 4
    assert [e["best_steps_low"] for e in delta] == [50.0] * 4  # not the diverged 20
    gauss = [e for e in out["table"] if e["scheme"] == "gaussian"]
    assert [e["best_lr_low"] for e in gauss] == [3e-4] * 4  # tie to the smaller rate
    assert [e["best_steps_low"] for e in gauss] == [16.0, 32.0, 64.0, 128.0]
    assert all(e["best_lr_threshold"] is None for e in gauss)
    assert out["slopes"]["threshold"]["delta-orthogonal"]["slope"] == pytest.approx(0.0)
    assert out["slopes"]["low"]["gaussian"]["slope"] == pytest.approx(1.0)
    assert out["slopes"]["threshold"]["gaussian"]["missing"] == [32, 64, 128, 256]
    assert out["ratio"]["low"] == {"delta-orthogonal": 1.0, "gaussian": pytest.approx(8.0)}
    assert "delta-orthogonal: no significant growth" in out["headline"]
    assert "gaussian: not reached at depth 32, 64, 128, 256" in out["headline"]
    assert any(v.startswith("[accuracy 0.3] gaussian: grows") for v in out["verdict"])


def test_seeds_of_one_rate_count_by_their_median_and_a_miss_is_a_miss() -> None:
    rows = [
        _row(32, "delta-orthogonal", 1e-3, 100.0, None),
        _row(32, "delta-orthogonal", 1e-3, 140.0, None),
        _row(32, "delta-orthogonal", 1e-3, 120.0, None),
        _row(32, "delta-orthogonal", 3e-4, 50.0, None),
        _row(32, "delta-orthogonal", 3e-4, None, None),
    ]
    (entry,) = ultra_deep_summary(rows, {"threshold": 0.55}, 200)["table"]
    assert entry["steps_threshold"] == {"0.0003": None, "0.001": 120.0}
    assert (entry["best_lr_threshold"], entry["best_steps_threshold"]) == (1e-3, 120.0)


# --- the plan ----------------------------------------------------------------------------------


def test_cpu_plan_is_the_stated_sweep_cheapest_first() -> None:
    plan = plan_experiment("ultra-deep", "cpu")
    s = plan.settings
    assert s["depths"] == [32, 64, 128, 256, 512, 1024]
    assert s["schemes"] == ["delta-orthogonal", "gaussian"]
    assert s["lr_times_depth"] == [0.003, 0.01, 0.03] and s["optimizer"] == "adam"
    assert s["steps"] == 200 and s["eval_every"] == 10
    assert s["threshold"] == 0.4 and s["low_threshold"] == 0.3
    assert len(plan.cells) == 6 * 2 * 3
    depths = [c.config["depth"] for c in plan.cells]
    assert depths == sorted(depths)  # cheap (shallow) cells first
    for c in plan.cells:
        assert c.config["stop_at"] == 0.4 and c.config["test_at_end"] is True
        assert c.config["v"] == "uniform" and c.config["sigma_b2"] == 1e-5
    # the rates: the grid divided by the depth (1024 layers: 2.9e-6 .. 2.9e-5)
    rates: dict[int, set[float]] = {}
    for c in plan.cells:
        rates.setdefault(c.config["depth"], set()).add(c.config["lr"])
    for d, lrs in rates.items():
        assert sorted(lrs) == pytest.approx([0.003 / d, 0.01 / d, 0.03 / d], rel=1e-15)
    # the rates of one (depth, scheme) start from the same weights; the schemes differ
    seeds: dict[tuple[int, str], set[int]] = {}
    for c in plan.cells:
        seeds.setdefault((c.config["depth"], c.config["scheme"]), set()).add(c.config["seed"])
    assert all(len(v) == 1 for v in seeds.values())
    assert len({next(iter(v)) for v in seeds.values()}) == len(seeds)


def test_lr_and_threshold_options_replace_the_sweep() -> None:
    plan = plan_experiment("ultra-deep", "cpu", {"lr": 0.01, "threshold": 0.5, "seeds": 2})
    assert {c.config["lr"] for c in plan.cells} == {0.01}
    assert {c.config["stop_at"] for c in plan.cells} == {0.5}
    assert len(plan.cells) == 6 * 2 * 2
    fixed = plan_experiment("ultra-deep", "cpu", {"lrs": [1e-3, 1e-4], "depths": [32, 64]})
    assert [c.config["lr"] for c in fixed.cells[:2]] == [1e-4, 1e-3]  # same at every depth
    assert {c.config["lr"] for c in fixed.cells} == {1e-4, 1e-3}
    assert "lr_times_depth" not in fixed.settings
    assert len(plan_experiment("ultra-deep", "paper").cells) == 4  # unchanged: one scheme


def test_summarise_ultra_deep_from_hand_made_curves() -> None:
    plan = plan_experiment(
        "ultra-deep", "cpu", {"depths": [32, 64], "lrs": [1e-3, 3e-3], "threshold": 0.55}
    )
    results = []
    for c in plan.cells:
        fast = c.config["lr"] == 1e-3
        acc = [0.1, 0.35, 0.6] if fast else [0.1, 0.2, 0.32]
        results.append(
            {"status": "done", "key": c.key, "config": c.config,
             "final": {"train_accuracy": acc[-1], "test_accuracy": acc[-1]},
             "curve": {"step": [0, 10, 20], "epoch": [0.0, 0.2, 0.4], "train_accuracy": acc},
             "diverged": False, "chance": 0.1, "wall_time_s": 1.0}
        )  # fmt: skip
    summary = summarise(plan, results)
    assert summary["thresholds"] == {"threshold": pytest.approx(0.55), "low": 0.3}
    for e in summary["table"]:
        assert (e["best_lr_threshold"], e["best_steps_threshold"]) == (1e-3, 20.0)
        assert (e["best_lr_low"], e["best_steps_low"]) == (1e-3, 10.0)
    assert {r["steps_to_low"] for r in summary["cells"]} == {10.0, 20.0}


# --- the early stop in training ----------------------------------------------------------------


def test_a_cell_stops_at_its_first_evaluation_reaching_stop_at() -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from mftheory.validation.train import train_cell

    plan = plan_experiment(
        "ultra-deep", "tiny", {"depths": [2], "steps": 12, "eval_every": 4, "threads": 1}
    )
    config = plan.cells[0].config | {"stop_at": 1e-9, "test_at_end": True}
    r = train_cell(config)
    # any accuracy reaches 1e-9 at the first evaluation (step 0): stop there, test set once
    assert r["stopped_at_step"] == 0 and r["curve"]["step"] == [0]
    assert r["curve"]["test_accuracy"][0] is not None
    mid = train_cell(plan.cells[0].config | {"stop_at": 1.0, "test_at_end": True})
    assert mid["curve"]["step"] == [0, 4, 8, 12] and mid["stopped_at_step"] is None
    assert mid["curve"]["test_accuracy"][:3] == [None] * 3
    assert mid["curve"]["test_accuracy"][3] is not None
    full = train_cell(plan.cells[0].config)  # no stop: the budget
    assert full["stopped_at_step"] is None and full["curve"]["step"] == [0, 4, 8, 12]
    assert None not in full["curve"]["test_accuracy"]  # test set at every evaluation


def test_ultra_deep_figure_draws_both_schemes_and_misses() -> None:
    pytest.importorskip("matplotlib")
    from mftheory.validation.figures import ultra_deep_figure

    plan = plan_experiment("ultra-deep", "cpu", {"depths": [32, 64], "lrs": [1e-3, 3e-3]})
    results = []
    for c in plan.cells:
        reached = c.config["scheme"] == "delta-orthogonal" or c.config["depth"] == 32
        acc = [0.1, 0.35, 0.45] if reached else [0.1, 0.12, 0.15]
        results.append(
            {"status": "done", "key": c.key, "config": c.config,
             "final": {"train_accuracy": acc[-1], "test_accuracy": acc[-1]},
             "curve": {"step": [0, 10, 20], "epoch": [0.0, 0.2, 0.4], "train_accuracy": acc},
             "diverged": False, "chance": 0.1, "wall_time_s": 1.0}
        )  # fmt: skip
    fig = ultra_deep_figure(summarise(plan, results), results)
    left, right = fig.axes
    labels = [line.get_label() for line in left.get_lines()]
    assert "delta-orthogonal, accuracy 0.40" in labels and "gaussian, accuracy 0.30" in labels
    # Gaussian misses both accuracies at depth 64: one x marker each, drawn above the budget
    misses = [ln for ln in left.get_lines() if ln.get_marker() == "x"]
    assert [list(ln.get_xdata()) for ln in misses] == [[64], [64]]
    assert all(y > 20 for ln in misses for y in ln.get_ydata())
    assert len(right.get_lines()) == 4 + 2  # one curve per depth x scheme, two thresholds

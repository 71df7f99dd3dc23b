"""Issue 16: trainability is scored on both sides of the critical line, with intervals and
baselines; cells stop early at the threshold; ``--scale tiny`` is a smoke test.

References: the Wilson interval against the roots of its defining quadratic (computed here,
not by the code under test) and scipy's normal quantile; the per-group shares against counts
made by hand on small examples; early stopping against the same cell trained without it
(training is bit-for-bit repeatable on the CPU with one thread).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from scipy import stats

from mftheory.meanfield.fixed_points import fixed_point
from mftheory.validation.agreement import Z_95, agreement_groups, side_of, wilson_interval
from mftheory.validation.experiments import (
    SMOKE_TEST_NOTICE,
    plan_experiment,
    summarise,
)
from mftheory.validation.report import markdown_report

W2C = 1.7609546  # critical sigma_w2 of tanh at sigma_b2 = 0.05 (test_validation checks it)


def _wilson_by_quadratic(k: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's interval is the set of p with (k/n - p)^2 <= z^2 p (1 - p) / n: the roots of
    (n + z^2) p^2 - (2 k + z^2) p + k^2 / n = 0."""
    a, b, c = n + z * z, -(2 * k + z * z), k * k / n
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def test_z_is_the_normal_quantile() -> None:
    assert pytest.approx(stats.norm.ppf(0.975), rel=1e-15) == Z_95


@pytest.mark.parametrize(("k", "n"), [(7, 10), (1, 3), (51, 55), (0, 5), (5, 5), (18, 36)])
def test_wilson_interval_against_the_quadratic(k: int, n: int) -> None:
    low, high = wilson_interval(k, n)
    ref_low, ref_high = _wilson_by_quadratic(k, n, Z_95)
    # both are a few floating-point operations on numbers of order 1: 1e-12 is rounding
    assert low == pytest.approx(max(0.0, ref_low), abs=1e-12)
    assert high == pytest.approx(min(1.0, ref_high), abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0


def test_wilson_interval_ends_and_textbook_value() -> None:
    # k = 0: [0, z^2 / (n + z^2)]; k = n: [n / (n + z^2), 1], exactly at the outer end
    z2 = Z_95**2
    assert wilson_interval(0, 10) == (0.0, pytest.approx(z2 / (10 + z2), rel=1e-12))
    assert wilson_interval(10, 10) == (pytest.approx(10 / (10 + z2), rel=1e-12), 1.0)
    # a value often tabulated: 8 of 10 -> [0.490, 0.943] (3 decimals)
    low, high = wilson_interval(8, 10)
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_sides() -> None:
    assert side_of(1.0, W2C) == "ordered"
    assert side_of(4.0, W2C) == "chaotic"
    assert side_of(W2C, W2C) == "critical"


def _row(w2: float, predicted: bool, trained: bool) -> dict[str, Any]:
    return {
        "sigma_w2": w2,
        "predicted_trainable": predicted,
        "trained": trained,
        "agrees": predicted == trained,
    }


def test_agreement_groups_by_hand() -> None:
    rows = [
        # ordered: 2 predicted trainable (1 trains), 2 predicted untrainable (none trains)
        _row(1.0, True, True),
        _row(1.0, True, False),
        _row(0.5, False, False),
        _row(0.5, False, False),
        # chaotic: 1 predicted trainable (trains), 3 predicted untrainable (one trains)
        _row(4.0, True, True),
        _row(20.0, False, True),
        _row(20.0, False, False),
        _row(20.0, False, False),
    ]
    groups = {g["group"]: g for g in agreement_groups(rows, W2C)}
    assert "critical" not in groups
    expected = {  # group: (cells, agreeing, trained)
        "all": (8, 6, 3),
        "all, predicted trainable": (3, 2, 2),
        "all, predicted untrainable": (5, 4, 1),
        "ordered": (4, 3, 1),
        "ordered, predicted trainable": (2, 1, 1),
        "ordered, predicted untrainable": (2, 2, 0),
        "chaotic": (4, 3, 2),
        "chaotic, predicted trainable": (1, 1, 1),
        "chaotic, predicted untrainable": (3, 2, 1),
    }
    assert list(groups) == list(expected)
    for name, (n, k, trained) in expected.items():
        g = groups[name]
        assert (g["cells"], g["agreeing"]) == (n, k), name
        assert g["agreement"] == pytest.approx(k / n)
        assert g["all_train_baseline"] == pytest.approx(trained / n)
        assert g["none_train_baseline"] == pytest.approx(1 - trained / n)
        ref_low, ref_high = _wilson_by_quadratic(k, n, Z_95)
        assert g["ci95_low"] == pytest.approx(max(0.0, ref_low), abs=1e-12)
        assert g["ci95_high"] == pytest.approx(min(1.0, ref_high), abs=1e-12)
    empty = agreement_groups([_row(1.0, True, True)], W2C)
    none = {g["group"]: g for g in empty}["chaotic"]
    assert none["cells"] == 0 and none["agreement"] is None and none["ci95_low"] is None


def test_cpu_grid_tests_both_sides_with_independent_seeds() -> None:
    plan = plan_experiment("trainability", "cpu")
    s = plan.settings
    assert s["seeds"] >= 3 and max(s["depths"]) >= 32
    sides = {"ordered": [False, False], "chaotic": [False, False]}  # [trainable, untrainable]
    # the core's xi_c (test_validation checks it against the slow reference)
    fp = fixed_point("tanh", sigma_w2=np.array(s["sigma_w2"]), sigma_b2=s["sigma_b2"])
    for w2, xi_c in zip(s["sigma_w2"], np.asarray(fp.xi_c), strict=True):
        six_xi = 6 * float(xi_c)
        side = side_of(w2, W2C)
        for d in s["depths"]:
            sides[side][0 if d < six_xi else 1] = True
    # each side has cells predicted trainable and cells predicted untrainable
    assert sides == {"ordered": [True, True], "chaotic": [True, True]}
    seeds = [c.config["seed"] for c in plan.cells]
    assert len(set(seeds)) == len(seeds)
    assert {c.config["replicate"] for c in plan.cells} == set(range(s["seeds"]))
    assert all(c.key.endswith(f"_seed={c.config['replicate']}") for c in plan.cells)
    assert all(c.config["stop_at"] == "auto" for c in plan.cells)


def _fake(plan: Any, trained: dict[str, bool]) -> list[dict[str, Any]]:
    out = []
    for c in plan.cells:
        acc = 0.9 if trained[c.key] else 0.1
        out.append(
            {
                "status": "done",
                "key": c.key,
                "config": c.config,
                "final": {"train_accuracy": acc, "test_accuracy": acc},
                "curve": {"step": [0, 8], "epoch": [0.0, 1.0], "train_accuracy": [0.1, acc]},
                "diverged": False,
                "stopped_at_step": 8 if trained[c.key] else None,
                "chance": 0.1,
                "wall_time_s": 1.0,
            }
        )
    return out


def test_summary_reports_sides_interval_baselines_and_the_smoke_notice() -> None:
    # 6 xi_c: 7.1 at 0.5 (ordered), 41.9 at 4.0 (chaotic); depths 4 and 16, 2 seeds
    plan = plan_experiment(
        "trainability", "tiny", {"depths": [4, 16], "sigma_w2": [0.5, 4.0], "seeds": 2}
    )
    assert len(plan.cells) == 8
    trained = {c.key: c.config["depth"] == 4 for c in plan.cells}  # only the shallow ones
    summary = summarise(plan, _fake(plan, trained))
    # predicted: (4, 0.5) yes, (16, 0.5) no, (4, 4.0) yes, (16, 4.0) yes; only the last
    # disagrees (2 seeds): 6 of 8 agree; ordered 4/4, chaotic 2/4
    assert summary["agreeing_cells"] == 6
    ref = _wilson_by_quadratic(6, 8, Z_95)
    assert summary["agreement_ci95"] == pytest.approx(list(ref), abs=1e-12)
    groups = {g["group"]: g for g in summary["agreement_groups"]}
    assert (groups["ordered"]["agreeing"], groups["ordered"]["cells"]) == (4, 4)
    assert (groups["chaotic"]["agreeing"], groups["chaotic"]["cells"]) == (2, 4)
    assert groups["all"]["all_train_baseline"] == pytest.approx(4 / 8)
    assert "ordered 4/4; chaotic 2/4" in summary["headline"]
    assert "Wilson" in summary["headline"]
    assert [r["stopped_at_step"] for r in summary["cells"]] == [
        8 if trained[r["key"]] else None for r in summary["cells"]
    ]
    assert summary["notice"] == SMOKE_TEST_NOTICE
    meta = {"command_line": "mftheory validate trainability", "finished_at": "now"}
    text = markdown_report(plan, summary, meta, None)
    assert SMOKE_TEST_NOTICE in text and "Wilson score interval" in text
    assert "| ordered, predicted untrainable | 2 | 2 | 1 |" in text
    cpu = plan_experiment("trainability", "cpu", {"depths": [4], "sigma_w2": [1.0]})
    assert "notice" not in summarise(
        cpu, _fake(cpu, dict.fromkeys((c.key for c in cpu.cells), True))
    )


def test_every_tiny_experiment_is_a_smoke_test() -> None:
    for experiment in ("learning-speed", "ultra-deep", "spatial-modes"):
        plan = plan_experiment(experiment, "tiny")
        summary = summarise(plan, _fake(plan, dict.fromkeys((c.key for c in plan.cells), True)))
        assert summary["notice"] == SMOKE_TEST_NOTICE


def test_early_stop_is_the_full_run_cut_at_the_threshold() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    del torch
    from mftheory.validation.train import train_cell

    plan = plan_experiment("trainability", "tiny", {"depths": [2], "sigma_w2": [1.76]})
    cfg = plan.cells[0].config | {"threads": 1, "steps": 8, "eval_every": 2}
    cfg |= {"optimizer": "adam", "lr": 0.01}
    full = train_cell(cfg | {"stop_at": None})
    acc = full["curve"]["train_accuracy"]
    assert full["stopped_at_step"] is None and full["curve"]["step"][-1] == 8
    # stop at an accuracy the full run reaches first after step 0
    target = max(acc[1:])
    first = next(i for i, a in enumerate(acc) if a >= target)
    stopped = train_cell(cfg | {"stop_at": target})
    assert stopped["stopped_at_step"] == full["curve"]["step"][first]
    assert stopped["curve"] == {k: v[: first + 1] for k, v in full["curve"].items()}
    assert stopped["final"]["train_accuracy"] >= target
    # "auto": halfway from chance to 1, recorded
    auto = train_cell(cfg | {"steps": 2, "stop_at": "auto"})
    assert auto["stop_at"] == pytest.approx(0.5 * (1 + auto["chance"]))


@pytest.mark.slow  # a CLI run of 4 tiny cells (test_validation runs tiny end to end already)
def test_cli_seeds_and_the_agreement_table(tmp_path: Any) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from test_cli import run

    args = ["validate", "trainability", "--scale", "tiny", "--depths", "2", "--sigma-w2"]
    args += ["1.0,4.0", "--seeds", "2", "--steps", "2", "--jobs", "1", "-o", str(tmp_path)]
    result = run(*args)
    assert result.exit_code == 0, result.output
    keys = sorted(p.stem for p in (tmp_path / "cells").glob("*.json"))
    assert keys == [f"depth=00002_sigma_w2={w:.4f}_seed={k}" for w in (1.0, 4.0) for k in (0, 1)]
    assert "smoke test, not a result" in result.stderr
    for name in ("ordered, predicted trainable", "chaotic, predicted untrainable", "ci95_low"):
        assert name in result.stdout

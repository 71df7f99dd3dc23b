"""The four validation experiments: their grids of cells, and what their results say.

Each experiment is a sweep of independent training runs (cells, run by
``mftheory.validation.runner`` with ``mftheory.validation.train.train_cell``), at one
of three scales:

- ``tiny``: a few seconds on a CPU, for the test suite;
- ``cpu``: minutes on a laptop CPU, scikit-learn's 8x8 digits, 16 channels;
- ``paper``: the paper's scale (docs/theory.md section 7) on MNIST from ``--data-dir``, for a GPU.

The experiments (docs/theory.md sections 5 and 7):

1. ``trainability`` (Fig. 2): Gaussian tanh CNNs over ``sigma_w2 x depth`` at fixed
   ``sigma_b2``; a cell is *trainable* when its training accuracy reaches the threshold
   (halfway from chance to 1 unless given), *predicted trainable* when
   ``depth < 6 xi_c(sigma_w2, sigma_b2)`` (the core's ``fixed_point``);
   the summary reports the share of cells where the two agree.
2. ``learning-speed`` (Fig. 5): one deep critical network, Gaussian against orthogonal
   (Algorithm 1) and Delta-Orthogonal kernels: accuracy against steps.
3. ``ultra-deep`` (Fig. 1): Delta-Orthogonal (and, at the cpu scale, Gaussian) networks at
   criticality over depths, each at every rate of a learning-rate grid: the steps each depth
   needs to reach a training accuracy at its best rate, and whether they grow with depth
   (``mftheory.validation.ultradeep``).
4. ``spatial-modes`` (Fig. 3/4): critical Gaussian kernels with the variance vectors GS0 ..
   GS4: test accuracy against depth, beside how many Fourier modes each vector keeps.

Nothing here imports torch: plans and summaries are plain numpy and the core.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mftheory.cnn.modes import mode_eigenvalues, variance_vector
from mftheory.errors import MFTheoryError
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import fixed_point, trainable_depth
from mftheory.validation.agreement import agreement_groups, wilson_interval
from mftheory.validation.runner import Cell
from mftheory.validation.ultradeep import ultra_deep_summary

__all__ = [
    "EXPERIMENTS",
    "SCALES",
    "SMOKE_TEST_NOTICE",
    "Plan",
    "plan_experiment",
    "summarise",
]

EXPERIMENTS: tuple[str, ...] = ("trainability", "learning-speed", "ultra-deep", "spatial-modes")
SCALES: tuple[str, ...] = ("tiny", "cpu", "paper")
SCHEME_NAMES: tuple[str, ...] = ("gaussian", "orthogonal", "delta-orthogonal")
GS_PRESETS: tuple[str, ...] = ("gs0", "gs1", "gs2", "gs3", "gs4")

# Per scale: the data, the width, the optimiser and how often to evaluate.
_COMMON: dict[str, dict[str, Any]] = {
    "tiny": {
        "dataset": "digits",
        "max_train": 256,
        "max_test": 128,
        "channels": 4,
        "batch_size": 32,
        "lr": 0.01,
        "momentum": 0.9,
        "optimizer": "sgd",
        "eval_size": 256,
    },
    "cpu": {
        "dataset": "digits",
        "max_train": None,
        "max_test": None,
        "channels": 16,
        "batch_size": 64,
        "lr": 0.002,
        "momentum": 0.9,
        "optimizer": "sgd",
        "eval_size": 2000,
    },
    "paper": {
        "dataset": "mnist",
        "max_train": None,
        "max_test": None,
        "channels": None,  # 256 for depth <= 256, else 128 (docs/theory.md section 7)
        "batch_size": 128,
        "lr": 0.001,
        "momentum": 0.9,
        "optimizer": "sgd",
        "eval_size": 10000,
    },
}

# Per experiment and scale: the grid and the budget (in steps, or epochs for ultra-deep).
_GRIDS: dict[str, dict[str, dict[str, Any]]] = {
    "trainability": {
        "tiny": {"depths": [2, 8], "sigma_w2": [0.5, 1.76, 4.0], "steps": 8, "eval_every": 4},
        # both sides of the line (critical sigma_w2 = 1.761 at sigma_b2 = 0.05): 6 xi_c = 12.3
        # (0.75), 21.8 (1.0), 94.7 (1.5) ordered; 70.8 (2.5), 41.9 (4.0), 20.8 (20.0) chaotic;
        # every sigma_w2 has depths on both sides of 6 xi_c; 3 seeds per cell: 108 cells,
        # ~1 hour on one idle core (a failing depth-128 cell runs its 200 steps in ~70 s)
        "cpu": {
            "depths": [4, 8, 16, 32, 64, 128],
            "sigma_w2": [0.75, 1.0, 1.5, 2.5, 4.0, 20.0],
            "seeds": 3,
            "steps": 200,
            "eval_every": 25,
            "eval_size": 500,
            "optimizer": "adam",
            "lr": 0.001,
        },
        "paper": {
            "depths": [10, 50, 100, 200, 300, 400, 500, 600],
            "sigma_w2": [0.5, 1.0, 1.5, 1.76, 2.0, 2.5, 3.0, 3.5, 4.0],
            "seeds": 3,
            "steps": 3000,
            "eval_every": 500,
        },
    },
    "learning-speed": {
        "tiny": {"depths": [6], "steps": 8, "eval_every": 4},
        "cpu": {"depths": [64], "steps": 400, "eval_every": 20, "lr": 0.01},
        "paper": {"depths": [4000], "steps": 20000, "eval_every": 500},
    },
    "ultra-deep": {
        "tiny": {"depths": [4, 16], "epochs": 1.0, "evals_per_epoch": 2},
        # The lr sweep's grid, the step budget and the thresholds are fixed here in advance
        # (docs/validation.md section 3); a cell stops once it reaches the highest threshold.
        "cpu": {
            "depths": [32, 64, 128, 256, 512, 1024],
            "schemes": ["delta-orthogonal", "gaussian"],
            # Adam moves every layer's weights by about lr a step, so the network's function
            # by about depth x lr: the grid is in lr x depth (depth 32: 9.4e-5, 3.1e-4, 9.4e-4)
            "lr_times_depth": [0.003, 0.01, 0.03],
            "optimizer": "adam",
            "steps": 200,
            "eval_every": 10,
            "eval_size": 256,
            "batch_size": 32,
            "threshold": 0.4,
            "low_threshold": 0.3,
            "test_at_end": True,
        },
        "paper": {"depths": [1250, 2500, 5000, 10000], "epochs": 10.0, "evals_per_epoch": 4},
    },
    "spatial-modes": {
        "tiny": {"depths": [2, 8], "steps": 8, "eval_every": 4},
        "cpu": {
            "depths": [4, 16, 64],
            "steps": 300,
            "eval_every": 50,
            "optimizer": "adam",
            "lr": 0.001,
        },
        "paper": {"depths": [32, 128, 512, 2048], "steps": 20000, "eval_every": 1000},
    },
}
SMOKE_TEST_NOTICE = (
    "smoke test, not a result: --scale tiny only checks that the experiment runs end to end"
    " (a handful of tiny networks trained for a few steps); its numbers say nothing about"
    " the theory"
)
"""The line ``--scale tiny`` puts on stderr, in ``report.md`` and in ``summary.json``."""

_SIGMA_B2 = {"trainability": 0.05, "learning-speed": 1e-5, "ultra-deep": 1e-5}
_DEFAULT_SIGMA_B2 = 0.05  # spatial-modes: the line of Schoenholz et al.


@dataclass(frozen=True)
class Plan:
    """The cells of one experiment and the settings they share.

    Attributes
    ----------
    experiment, scale : str
    settings : dict
        Everything the cells share and the experiment-level choices (``sigma_b2``, the grid
        axes, ``threshold``), as JSON-able values.
    cells : tuple of Cell
    """

    experiment: str
    scale: str
    settings: dict[str, Any]
    cells: tuple[Cell, ...] = field(repr=False)


def cell_seed(base_seed: int, key: str) -> int:
    """A seed for one cell from the sweep's seed and the cell's key (not its position)."""
    ss = np.random.SeedSequence([int(base_seed), zlib.crc32(key.encode())])
    return int(ss.generate_state(1)[0] & 0x7FFFFFFF)


def _positive_ints(name: str, values: Sequence[Any], minimum: int = 1) -> list[int]:
    out = []
    for x in values:
        f = float(x)
        if not math.isfinite(f) or f != int(f) or f < minimum:
            raise MFTheoryError(f"{name} must be whole numbers >= {minimum}, got {x!r}")
        out.append(int(f))
    if not out:
        raise MFTheoryError(f"{name} is empty")
    return sorted(set(out))


def _variances(name: str, values: Sequence[Any]) -> list[float]:
    out = []
    for x in values:
        f = float(x)
        if not math.isfinite(f) or f < 0:
            raise MFTheoryError(f"{name} must be finite and >= 0, got {x!r}")
        out.append(f)
    if not out:
        raise MFTheoryError(f"{name} is empty")
    return sorted(set(out))


def _critical_sigma_w2(sigma_b2: float) -> float:
    cp = critical_point("tanh", sigma_b2=sigma_b2)
    if str(cp.status) != "ok":
        raise MFTheoryError(f"tanh has no finite critical point at sigma_b2={sigma_b2:g}")
    return float(cp.sigma_w2)


def plan_experiment(
    experiment: str, scale: str = "cpu", overrides: Mapping[str, Any] | None = None
) -> Plan:
    """The cells of ``experiment`` at ``scale``, with any setting overridden.

    Parameters
    ----------
    experiment : str
        One of ``EXPERIMENTS``.
    scale : str
        One of ``SCALES``.
    overrides : mapping, optional
        Settings to replace, None values ignored: ``dataset``, ``data_dir``, ``max_train``,
        ``max_test``, ``channels``, ``depths``, ``sigma_w2`` (the trainability axis),
        ``sigma_b2``, ``seeds`` (trainability: networks per grid point; ultra-deep: repeats
        per rate), ``schemes`` (learning-speed, ultra-deep), ``v_presets`` (spatial-modes);
        ultra-deep: ``lrs`` (a grid of rates, the same at every depth), ``lr_times_depth``
        (a grid of ``lr x depth``: rates ``g / depth``), ``low_threshold`` (a second, lower
        accuracy counted);
        ``steps``, ``epochs`` (ultra-deep; or any experiment, instead of steps),
        ``eval_every``, ``batch_size``, ``lr``, ``momentum``, ``eval_size``, ``seed``,
        ``split_seed``, ``device``, ``threads``, ``threshold``; ``n_train`` (the training
        set's size, when known, for converting epochs to steps).

    Returns
    -------
    Plan

    Raises
    ------
    MFTheoryError
        Unknown experiment, scale, scheme or preset; negative or non-finite variances;
        depths or sizes that are not whole positive numbers; a non-positive learning rate.

    Notes
    -----
    docs/theory.md section 7 (the architecture and the paper's scales).
    """
    if experiment not in EXPERIMENTS:
        raise MFTheoryError(
            f"unknown experiment {experiment!r}; choose one of {', '.join(EXPERIMENTS)}"
        )
    if scale not in SCALES:
        raise MFTheoryError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    s: dict[str, Any] = dict(_COMMON[scale]) | dict(_GRIDS[experiment][scale])
    s |= {"data_dir": None, "seed": 0, "split_seed": 0, "device": "cpu", "threads": 0}
    s["sigma_b2"] = _SIGMA_B2.get(experiment, _DEFAULT_SIGMA_B2)
    s.setdefault("threshold", None)
    s |= given
    if "epochs" in given and "steps" in s:
        del s["steps"]
    if experiment == "ultra-deep" and ("lr" in given or "lrs" in given):
        s.pop("lr_times_depth", None)  # the rates given, the same at every depth
    if experiment == "ultra-deep" and ("lr" in given or "lrs" not in s):
        s["lrs"] = [s["lr"]]  # --lr: that one rate instead of the sweep
    s["depths"] = _positive_ints("depths", s["depths"], minimum=0)
    (s["sigma_b2"],) = _variances("sigma_b2", [s["sigma_b2"]])
    for name in ("batch_size", "eval_size"):
        (s[name],) = _positive_ints(name, [s[name]])
    for name in ("lr", "momentum"):
        f = float(s[name])
        if not math.isfinite(f) or f < 0 or (name == "lr" and f == 0):
            raise MFTheoryError(f"{name} must be finite and {'> 0' if name == 'lr' else '>= 0'}")
    if s["optimizer"] not in ("sgd", "adam"):
        raise MFTheoryError(f"optimizer must be sgd or adam, got {s['optimizer']!r}")
    if s["threshold"] is not None and not 0 < float(s["threshold"]) <= 1:
        raise MFTheoryError(f"threshold must be in (0, 1], got {s['threshold']!r}")
    s["experiment"], s["scale"] = experiment, scale
    cells = _cells(experiment, s)
    return Plan(experiment, scale, s, tuple(cells))


def _budget(s: dict[str, Any], n_train: int | None) -> tuple[int, int]:
    """``(steps, eval_every)`` from steps or epochs (an epoch is ``n_train / batch`` steps)."""
    if "steps" in s:
        (steps,) = _positive_ints("steps", [s["steps"]])
        (every,) = _positive_ints("eval_every", [s.get("eval_every", max(1, steps // 10))])
        return steps, every
    epochs = float(s["epochs"])
    if not math.isfinite(epochs) or epochs <= 0:
        raise MFTheoryError(f"epochs must be > 0, got {s['epochs']!r}")
    n = s.get("n_train") or n_train or _TRAIN_SIZES.get(str(s["dataset"]), 60000)
    per_epoch = max(1, round(n / int(s["batch_size"])))
    steps = max(1, round(epochs * per_epoch))
    every = max(1, per_epoch // int(s.get("evals_per_epoch", 4)))
    return steps, every


_TRAIN_SIZES = {"digits": 1437, "mnist1d": 4000, "mnist": 60000, "cifar10": 50000}


# A cell of ultra-deep stops at its first evaluation at or above this training accuracy when
# no --threshold is given: just above halfway from chance to 1 for ten balanced classes
# (0.5515 at the digits' chance 0.103), so the halfway threshold is reached first.
_ULTRA_DEEP_STOP_AT = 0.56


def _schemes(s: dict[str, Any], default: Sequence[str]) -> list[str]:
    schemes = [str(x).lower() for x in s.get("schemes", default)]
    for sc in schemes:
        if sc not in SCHEME_NAMES:
            raise MFTheoryError(f"unknown scheme {sc!r}; choose from {', '.join(SCHEME_NAMES)}")
    if not schemes:
        raise MFTheoryError("schemes is empty")
    return list(dict.fromkeys(schemes))


def _ultra_deep_variants(s: dict[str, Any], w2c: float) -> list[tuple[str, dict[str, Any]]]:
    """ultra-deep's cells: depth x scheme x learning rate x repeat, cheapest (shallowest)
    first; the repeats of a (depth, scheme) share their initial weights across the lrs."""
    s["schemes"] = schemes = _schemes(s, ["delta-orthogonal"])
    lrs = [float(x) for x in s["lrs"]]
    if not lrs or any(not math.isfinite(x) or x <= 0 for x in lrs):
        raise MFTheoryError(f"lrs must be finite and > 0, got {s['lrs']!r}")
    s["lrs"] = lrs = sorted(set(lrs))
    (s["seeds"],) = _positive_ints("seeds", [s.get("seeds", 1)])
    s["stop_at"] = float(s["threshold"]) if s["threshold"] is not None else _ULTRA_DEEP_STOP_AT
    grid = s.get("lr_times_depth")
    if grid is not None:
        s["lr_times_depth"] = grid = sorted({float(g) for g in grid})
        if not grid or any(not math.isfinite(g) or g <= 0 for g in grid):
            raise MFTheoryError(f"lr_times_depth must be finite and > 0, got {grid!r}")
    out = []
    for d in s["depths"]:
        rates = [(g / max(d, 1), f"lrxdepth={g:g}") for g in grid] if grid else None
        for sc in schemes:
            for rep in range(s["seeds"]):
                for lr, tag in rates or [(lr, f"lr={lr:g}") for lr in lrs]:
                    cfg = {"depth": d, "sigma_w2": w2c, "scheme": sc, "v": "uniform", "lr": lr}
                    cfg |= {"rep": rep, "seed_key": f"depth={d:05d}_scheme={sc}_rep={rep}"}
                    out.append((f"depth={d:05d}_scheme={sc}_{tag}_rep={rep}", cfg))
    return out


def _cells(experiment: str, s: dict[str, Any]) -> list[Cell]:
    n_train = s["max_train"]
    if n_train is not None:
        n_train = min(int(n_train), _TRAIN_SIZES.get(str(s["dataset"]), int(n_train)))
    steps, every = _budget(s, n_train)
    s["steps"], s["eval_every"] = steps, every
    base = {
        k: s[k]
        for k in (
            "dataset",
            "data_dir",
            "split_seed",
            "max_train",
            "max_test",
            "lr",
            "momentum",
            "optimizer",
            "batch_size",
            "eval_size",
            "device",
            "threads",
        )
    }
    base |= {"steps": steps, "eval_every": every, "sigma_b2": s["sigma_b2"]}
    variants: list[tuple[str, dict[str, Any]]] = []
    if experiment == "trainability":
        s["sigma_w2"] = _variances("sigma_w2", s["sigma_w2"])
        (s["seeds"],) = _positive_ints("seeds", [s.get("seeds", 1)])
        # a cell stops at its first evaluation that reaches the threshold: same verdict
        base["stop_at"] = "auto" if s["threshold"] is None else float(s["threshold"])
        s["stop_at"] = base["stop_at"]
        for d in s["depths"]:
            for w2 in s["sigma_w2"]:
                for k in range(s["seeds"]):
                    variants.append(
                        (
                            f"depth={d:05d}_sigma_w2={w2:.4f}_seed={k}",
                            {
                                "depth": d,
                                "sigma_w2": w2,
                                "scheme": "gaussian",
                                "v": "uniform",
                                "replicate": k,
                            },
                        )
                    )
    else:
        s["sigma_w2_critical"] = w2c = _critical_sigma_w2(s["sigma_b2"])
        if experiment == "learning-speed":
            s["schemes"] = schemes = _schemes(s, SCHEME_NAMES)
            for sc in schemes:
                for d in s["depths"]:
                    cfg = {"depth": d, "sigma_w2": w2c, "scheme": sc, "v": "uniform"}
                    variants.append((f"scheme={sc}_depth={d:05d}", cfg))
        elif experiment == "ultra-deep":
            variants += _ultra_deep_variants(s, w2c)
        else:
            presets = [str(x).lower() for x in s.get("v_presets", GS_PRESETS)]
            for p in presets:
                variance_vector(p)  # refuses an unknown preset
            s["v_presets"] = presets
            for p in presets:
                for d in s["depths"]:
                    cfg = {"depth": d, "sigma_w2": w2c, "scheme": "gaussian", "v": p}
                    variants.append((f"v={p}_depth={d:05d}", cfg))
    cells = []
    if experiment == "ultra-deep":
        base |= {"test_at_end": bool(s.get("test_at_end", False)), "stop_at": s["stop_at"]}
    for key, cfg in variants:
        channels = s["channels"]
        if channels is None:
            channels = 256 if cfg["depth"] <= 256 else 128
        (channels,) = _positive_ints("channels", [channels])
        seed = cell_seed(s["seed"], cfg.pop("seed_key", key))
        config = base | cfg | {"channels": channels, "seed": seed}
        config |= {"experiment": experiment}
        cells.append(Cell(key=key, config=config))
    return cells


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


def _threshold(settings: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> float:
    """The accuracy that counts as trained: given, or halfway from chance to 1."""
    if settings.get("threshold") is not None:
        return float(settings["threshold"])
    chance = max((float(r.get("chance", 0.1)) for r in results), default=0.1)
    return 0.5 * (1.0 + chance)


def _final(r: Mapping[str, Any], name: str) -> float:
    """A final accuracy, 0.0 for a diverged run (it learnt nothing usable)."""
    value = r["final"].get(name)
    return 0.0 if value is None else float(value)


def _first_reaching(r: Mapping[str, Any], threshold: float, axis: str) -> float | None:
    """The first ``axis`` value (step or epoch) where training accuracy reaches threshold."""
    curve = r["curve"]
    for x, acc in zip(curve[axis], curve["train_accuracy"], strict=True):
        if acc is not None and acc >= threshold:
            return float(x)
    return None


def summarise(plan: Plan, results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the finished cells say, beside the predictions of the mean-field core.

    Parameters
    ----------
    plan : Plan
    results : sequence of dict
        ``run_cells``' results for ``plan.cells``, in order
        (failed cells are left out of the tables and counted).

    Returns
    -------
    dict
        Always ``experiment``, ``scale``, ``threshold``, ``cells`` (one row a finished
        cell, with ``stopped_at_step`` where it stopped early at the threshold), ``failed``
        (count) and ``headline`` (one sentence); ``notice`` (``SMOKE_TEST_NOTICE``) at scale
        ``tiny``. Per experiment:

        - trainability: ``agreement`` (share of cells where trainable == predicted),
          ``agreeing_cells``, ``agreement_ci95`` (95% Wilson score interval),
          ``agreement_groups`` (per side and prediction, with the "all train" and "none
          train" baselines: ``mftheory.validation.agreement.agreement_groups``),
          ``critical_sigma_w2``, ``curve`` (``sigma_w2`` and ``six_xi_c`` on a fine grid);
        - learning-speed, ultra-deep: per row ``steps_to_threshold`` /
          ``epochs_to_threshold``;
        - spatial-modes: per preset ``modes_alive`` (share of the 8x8 Fourier modes with
          ``|lambda_f| >= 0.5``).

    Notes
    -----
    docs/theory.md section 5 (``L < 6 xi_c``) and section 4 (``lambda_f``).
    """
    done = [r for r in results if r.get("status") == "done"]
    thr = _threshold(plan.settings, done)
    rows: list[dict[str, Any]] = []
    for r in done:
        c = r["config"]
        rows.append(
            {
                "key": r["key"],
                "depth": c["depth"],
                "sigma_w2": c["sigma_w2"],
                "scheme": c["scheme"],
                "v": c["v"],
                "train_accuracy": r["final"].get("train_accuracy"),
                "test_accuracy": r["final"].get("test_accuracy"),
                "diverged": r["diverged"],
                "trained": _final(r, "train_accuracy") >= thr,
                "replicate": c.get("replicate", 0),
                "stopped_at_step": r.get("stopped_at_step"),
                "steps_to_threshold": _first_reaching(r, thr, "step"),
                "epochs_to_threshold": _first_reaching(r, thr, "epoch"),
                "wall_time_s": r["wall_time_s"],
            }
        )
    out: dict[str, Any] = {
        "experiment": plan.experiment,
        "scale": plan.scale,
        "threshold": thr,
        "sigma_b2": plan.settings["sigma_b2"],
        "cells": rows,
        "failed": len(results) - len(done),
        "wall_time_s": float(sum(r["wall_time_s"] for r in rows)),
    }
    if plan.scale == "tiny":
        out["notice"] = SMOKE_TEST_NOTICE
    exp = plan.experiment
    if exp == "ultra-deep":
        out |= _ultra_deep(plan, done, rows, thr)
    elif exp == "trainability":
        out |= _trainability(plan, rows)
    elif exp == "spatial-modes":
        out |= _spatial(plan, rows, thr)
    else:
        out["sigma_w2_critical"] = plan.settings["sigma_w2_critical"]
        reached = [
            f"{row['scheme'] if exp == 'learning-speed' else 'depth ' + str(row['depth'])}: "
            + (
                "not reached"
                if row["steps_to_threshold"] is None
                else f"step {row['steps_to_threshold']:.0f}"
                + f" ({row['epochs_to_threshold']:.2f} epochs)"
            )
            for row in rows
        ]
        out["headline"] = f"training accuracy {thr:.2f} reached at " + "; ".join(reached)
    return out


def _ultra_deep(
    plan: Plan, done: Sequence[Mapping[str, Any]], rows: list[dict[str, Any]], thr: float
) -> dict[str, Any]:
    """The lr sweep's table and the verdict on depth (``mftheory.validation.ultradeep``)."""
    thresholds = {"threshold": thr}
    low = plan.settings.get("low_threshold")
    if low is not None and float(low) < thr:
        thresholds["low"] = float(low)
    for r, row in zip(done, rows, strict=True):
        row["lr"] = r["config"]["lr"]
        row["rep"] = r["config"].get("rep", 0)
        row["steps_to_threshold"] = _first_reaching(r, thr, "step")
        if "low" in thresholds:
            row["steps_to_low"] = _first_reaching(r, thresholds["low"], "step")
    out = ultra_deep_summary(rows, thresholds, int(plan.settings["steps"]))
    out["thresholds"] = thresholds
    out["sigma_w2_critical"] = plan.settings["sigma_w2_critical"]
    return out


def _trainability(plan: Plan, rows: list[dict[str, Any]]) -> dict[str, Any]:
    b2 = float(plan.settings["sigma_b2"])
    w2 = np.array([row["sigma_w2"] for row in rows], dtype=float)
    fp = fixed_point("tanh", sigma_w2=w2, sigma_b2=b2) if len(rows) else None
    agree = 0
    for i, row in enumerate(rows):
        assert fp is not None
        six_xi = float(trainable_depth(np.asarray(fp.xi_c)[i]))
        row["six_xi_c"] = six_xi if math.isfinite(six_xi) else None
        row["predicted_trainable"] = bool(row["depth"] < six_xi)
        row["agrees"] = row["predicted_trainable"] == row["trained"]
        agree += row["agrees"]
    lo = min(plan.settings["sigma_w2"])
    hi = max(plan.settings["sigma_w2"])
    fine = np.linspace(lo, hi, 400) if hi > lo else np.array([lo])
    fine_xi = fixed_point("tanh", sigma_w2=fine, sigma_b2=b2).xi_c
    share = agree / len(rows) if rows else math.nan
    w2c = _critical_sigma_w2(b2)
    groups = agreement_groups(rows, w2c)
    low, high = wilson_interval(agree, len(rows))
    trained = sum(bool(row["trained"]) for row in rows)
    base = max(trained, len(rows) - trained) / len(rows) if rows else math.nan
    per_side = "; ".join(
        f"{g['side']} {g['agreeing']}/{g['cells']}"
        for g in groups
        if g["prediction"] == "any" and g["side"] != "all" and g["cells"]
    )
    return {
        "agreement": share,
        "agreeing_cells": agree,
        "agreement_ci95": [low, high] if rows else None,
        "agreement_groups": groups,
        "critical_sigma_w2": w2c,
        "curve": {
            "sigma_w2": fine.tolist(),
            "six_xi_c": [
                x if math.isfinite(x) else None
                for x in np.asarray(trainable_depth(fine_xi)).tolist()
            ],
        },
        "headline": (
            f"trainable (training accuracy >= threshold) agrees with depth < 6 xi_c in"
            f" {agree} of {len(rows)} cells ({100 * share:.0f}%, 95% Wilson interval"
            f" {100 * low:.0f}-{100 * high:.0f}%; {per_side}); the better trivial baseline"
            f" ('all train' or 'none train') scores {100 * base:.0f}%"
        ),
    }


# (spatial dimensions, side) of the body's feature maps per dataset (network.stem_strides)
_BODY_GRID = {"digits": (2, 8), "mnist": (2, 7), "cifar10": (2, 8), "mnist1d": (1, 10)}


def _spatial(plan: Plan, rows: list[dict[str, Any]], thr: float) -> dict[str, Any]:
    dim, side = _BODY_GRID.get(str(plan.settings["dataset"]), (2, 8))
    alive: dict[str, float] = {}
    for p in plan.settings["v_presets"]:
        lam = np.abs(mode_eigenvalues(variance_vector(p, kernel=3, dim=dim), side)[1])
        alive[p] = float(np.mean(lam >= 0.5))
    for row in rows:
        row["modes_alive"] = alive[row["v"]]
    deepest = max(plan.settings["depths"])
    parts = []
    for p in plan.settings["v_presets"]:
        acc = [r["test_accuracy"] for r in rows if r["v"] == p and r["depth"] == deepest]
        shown = "n/a" if not acc or acc[0] is None else f"{acc[0]:.3f}"
        parts.append(f"{p} {shown} ({100 * alive[p]:.0f}% modes alive)")
    return {
        "modes_alive": alive,
        "headline": f"test accuracy at depth {deepest}: " + ", ".join(parts),
    }

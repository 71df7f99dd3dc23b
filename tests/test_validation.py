"""Issue 6: the validation experiments (plans, the network, training, summaries, the CLI).

The mean-field numbers in the summaries are checked against the slow reference path
(:func:`mftheory.reference.ref_fixed_point`); the network's initial weights against the
variances the theory assumes; training against a direct recount of the accuracies; and one
real trainability contrast (a shallow critical network learns, a deep ordered one does not),
which fails if the prediction ``L < 6 xi_c`` were wrong at that point.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from test_cli import assert_one_line_error, run, strict_json  # noqa: E402

from mftheory.activations.builtins import get_activation  # noqa: E402
from mftheory.errors import MFTheoryError  # noqa: E402
from mftheory.reference import ref_fixed_point  # noqa: E402
from mftheory.validation.experiments import (  # noqa: E402
    EXPERIMENTS,
    cell_seed,
    plan_experiment,
    summarise,
)
from mftheory.validation.network import build_network, stem_strides  # noqa: E402
from mftheory.validation.train import train_cell  # noqa: E402

# --- plans ------------------------------------------------------------------------------------


def test_plans_have_the_grid_they_say() -> None:
    plan = plan_experiment("trainability", "cpu")
    s = plan.settings
    assert len(plan.cells) == len(s["depths"]) * len(s["sigma_w2"]) * s["seeds"]
    assert {c.config["scheme"] for c in plan.cells} == {"gaussian"}
    speed = plan_experiment("learning-speed", "tiny")
    assert [c.config["scheme"] for c in speed.cells] == [
        "gaussian",
        "orthogonal",
        "delta-orthogonal",
    ]
    # critical sigma_w2 of every non-trainability cell: chi_1 = 1 by the slow reference
    for c in speed.cells:
        ref = ref_fixed_point(get_activation("tanh"), c.config["sigma_w2"], c.config["sigma_b2"])
        assert ref["chi_1"] == pytest.approx(1.0, abs=1e-8)
    modes = plan_experiment("spatial-modes", "tiny", {"v_presets": ["gs0", "GS4"]})
    assert sorted({c.config["v"] for c in modes.cells}) == ["gs0", "gs4"]
    deep = plan_experiment("ultra-deep", "tiny")
    assert {c.config["scheme"] for c in deep.cells} == {"delta-orthogonal"}


def test_paper_scale_widths_follow_the_paper() -> None:
    plan = plan_experiment("ultra-deep", "paper", {"depths": [256, 1250]})
    widths = {c.config["depth"]: c.config["channels"] for c in plan.cells}
    assert widths == {256: 256, 1250: 128}
    assert all(c.config["dataset"] == "mnist" for c in plan.cells)


def test_epochs_become_steps() -> None:
    plan = plan_experiment("ultra-deep", "tiny", {"epochs": 2.0})
    # 256 training samples, batch 32: 8 steps an epoch
    assert plan.settings["steps"] == 16
    assert plan.cells[0].config["steps"] == 16


def test_cell_seeds_depend_on_key_not_position() -> None:
    a = plan_experiment("trainability", "tiny", {"sigma_w2": [1.0, 2.0]})
    b = plan_experiment("trainability", "tiny", {"sigma_w2": [2.0]})
    seeds_a = {c.key: c.config["seed"] for c in a.cells}
    for c in b.cells:
        assert seeds_a[c.key] == c.config["seed"]
    assert len(set(seeds_a.values())) == len(seeds_a)
    assert cell_seed(0, "x") != cell_seed(1, "x")


@pytest.mark.parametrize(
    ("experiment", "scale", "overrides", "mentions"),
    [
        ("nope", "cpu", {}, "unknown experiment"),
        ("trainability", "huge", {}, "unknown scale"),
        ("trainability", "tiny", {"sigma_w2": [-1.0]}, "sigma_w2"),
        ("trainability", "tiny", {"sigma_w2": [math.nan]}, "sigma_w2"),
        ("trainability", "tiny", {"sigma_b2": -0.1}, "sigma_b2"),
        ("trainability", "tiny", {"depths": [2.5]}, "depths"),
        ("trainability", "tiny", {"lr": 0.0}, "lr"),
        ("trainability", "tiny", {"optimizer": "lbfgs"}, "optimizer"),
        ("trainability", "tiny", {"threshold": 1.5}, "threshold"),
        ("learning-speed", "tiny", {"schemes": ["he"]}, "unknown scheme"),
        ("spatial-modes", "tiny", {"v_presets": ["gs9"]}, "gs9"),
    ],
)
def test_plan_refuses(
    experiment: str, scale: str, overrides: dict[str, Any], mentions: str
) -> None:
    with pytest.raises(MFTheoryError, match=mentions):
        plan_experiment(experiment, scale, overrides)


# --- the network -------------------------------------------------------------------------------


def test_stem_reaches_the_papers_sides() -> None:
    assert stem_strides(28) == (1, 2, 2)  # MNIST: 28 -> 14 -> 7
    assert stem_strides(32) == (1, 2, 2)  # CIFAR-10: 32 -> 16 -> 8
    assert stem_strides(8) == (1, 1, 1)  # digits stay 8x8
    net, _ = build_network((1, 28, 28), 10, channels=4, depth=2, sigma_w2=1.0, sigma_b2=0.0)
    h = net.body(net.stem(torch.zeros(1, 1, 28, 28)))
    assert tuple(h.shape) == (1, 4, 7, 7)
    net1, _ = build_network((1, 40), 10, channels=4, depth=2, sigma_w2=1.0, sigma_b2=0.0)
    assert tuple(net1(torch.zeros(3, 1, 40)).shape) == (3, 10)


@pytest.mark.parametrize("scheme", ["orthogonal", "delta-orthogonal"])
def test_orthogonal_body_layers_are_exact(scheme: str) -> None:
    """Every square body convolution: sum w^2 / c_out = sigma_w2 (Parseval), and the operator
    is sqrt(sigma_w2) times an isometry, to float32 rounding (the weights are float32: 1e-6)."""
    g = torch.Generator().manual_seed(3)
    net, _ = build_network(
        (1, 8, 8), 10, channels=8, depth=3, sigma_w2=1.7, sigma_b2=0.05, scheme=scheme, generator=g
    )
    for m in net.body:
        if isinstance(m, torch.nn.Conv2d):
            w = m.weight.detach().double()
            assert float((w**2).sum() / w.shape[0]) == pytest.approx(1.7, rel=1e-6)
            # the operator on 8x8 periodic images: every frequency's matrix is sqrt(1.7) Q
            k = torch.fft.fft2(w, s=(8, 8)).permute(2, 3, 0, 1)
            gram = k.conj().transpose(-1, -2) @ k
            eye = torch.eye(8, dtype=gram.dtype).expand_as(gram)
            assert torch.allclose(gram, 1.7 * eye, atol=1e-5)


def test_gaussian_layers_have_the_theorys_variance() -> None:
    """Var w = sigma_w2 v_b / c_in, measured over the body of a wide network (3 se)."""
    g = torch.Generator().manual_seed(5)
    net, _ = build_network(
        (1, 8, 8), 10, channels=64, depth=4, sigma_w2=2.5, sigma_b2=0.3, scheme="gaussian",
        v="gs2", generator=g,
    )  # fmt: skip
    convs = [m for m in net.body if isinstance(m, torch.nn.Conv2d)]
    w = torch.stack([m.weight.detach().double() for m in convs])  # (4, 64, 64, 3, 3)
    var = (w**2).mean(dim=(0, 1, 2)) * 64 / 2.5  # estimates v_b
    v = np.full((3, 3), 0.5 / 9)
    v[1, 1] += 0.5  # gs2 = delta/2 + uniform/2
    n = 4 * 64 * 64
    se = np.sqrt(2.0 / n) * v  # chi-square: Var of mean w^2 = 2 sigma^4 / n
    assert np.all(np.abs(var.numpy() - v) < 3 * se + 1e-12)
    b = torch.cat([m.bias.detach().double() for m in convs])
    assert float(b.var()) == pytest.approx(0.3, rel=3 * math.sqrt(2 / len(b)))


# --- training ----------------------------------------------------------------------------------


def _tiny_config(**kw: Any) -> dict[str, Any]:
    plan = plan_experiment("trainability", "tiny", {"depths": [2], "sigma_w2": [1.76]})
    return plan.cells[0].config | {"threads": 1, "stop_at": None} | kw  # no early stop


def test_train_cell_is_reproducible_and_counts_right() -> None:
    cfg = _tiny_config(steps=6, eval_every=3)
    a = train_cell(cfg)
    b = train_cell(cfg)
    assert a["curve"] == b["curve"]
    assert a["curve"]["step"] == [0, 3, 6]
    assert a["diverged"] is False
    json.dumps(a, allow_nan=False)
    # the reported accuracy is a real count: recount it with the same network trained again
    from mftheory.validation.data import load_dataset

    data = load_dataset("digits", max_train=cfg["max_train"], max_test=cfg["max_test"])
    n_correct = a["final"]["test_accuracy"] * len(data.y_test)
    assert n_correct == pytest.approx(round(n_correct), abs=1e-9)
    assert a["chance"] == pytest.approx(np.bincount(data.y_test).max() / len(data.y_test))


def test_divergence_is_recorded_not_raised() -> None:
    cfg = _tiny_config(lr=1e38, momentum=0.9, steps=20, eval_every=1)  # weights overflow
    r = train_cell(cfg)
    assert r["diverged"] is True
    assert r["diverged_at_step"] is not None and r["diverged_at_step"] <= 20
    assert r["final"]["train_accuracy"] is None
    json.dumps(r, allow_nan=False)


def test_shallow_critical_trains_deep_ordered_does_not() -> None:
    """The prediction at two points: depth 2 at criticality (6 xi_c = inf) learns in 120 Adam
    steps; depth 24 at sigma_w2 = 0.5 (6 xi_c = 7.1) stays at chance. Measured over seeds 0-4:
    0.68-0.84 and 0.109-0.125 training accuracy; the bounds 0.5 and 0.2 leave room for other
    BLAS / thread counts."""
    ref = ref_fixed_point(get_activation("tanh"), 0.5, 0.05)
    assert 6 * ref["xi_c"] < 24
    common = {"channels": 8, "steps": 120, "eval_every": 120, "optimizer": "adam", "lr": 0.005}
    common |= {"max_train": 512, "eval_size": 512}
    good = train_cell(_tiny_config(**common, depth=2, sigma_w2=1.7609546))
    bad = train_cell(_tiny_config(**common, depth=24, sigma_w2=0.5))
    assert good["final"]["train_accuracy"] >= 0.5
    assert bad["final"]["train_accuracy"] < 0.2


# --- summaries ---------------------------------------------------------------------------------


def _fake_results(plan: Any, accuracy: dict[str, float | None]) -> list[dict[str, Any]]:
    out = []
    for c in plan.cells:
        acc = accuracy[c.key]
        curve_acc = [0.1, acc] if acc is not None else [0.1]
        out.append(
            {
                "status": "done",
                "key": c.key,
                "config": c.config,
                "final": {"train_accuracy": acc, "test_accuracy": acc},
                "curve": {"step": [0, 8][: len(curve_acc)], "epoch": [0.0, 1.0][: len(curve_acc)],
                          "train_accuracy": curve_acc},
                "diverged": acc is None,
                "chance": 0.1,
                "wall_time_s": 1.0,
            }
        )  # fmt: skip
    return out


def test_trainability_agreement_against_the_reference() -> None:
    plan = plan_experiment("trainability", "tiny", {"depths": [4, 30], "sigma_w2": [0.5, 1.5, 3.0]})
    tanh = get_activation("tanh")
    six_xi = {w2: 6 * ref_fixed_point(tanh, w2, 0.05)["xi_c"] for w2 in (0.5, 1.5, 3.0)}
    # measured: everything trains except depth 30 at sigma_w2 = 0.5, and one diverged cell
    acc = {c.key: 0.9 for c in plan.cells}
    acc["depth=00030_sigma_w2=0.5000_seed=0"] = 0.1
    acc["depth=00004_sigma_w2=3.0000_seed=0"] = None
    summary = summarise(plan, _fake_results(plan, acc))
    assert summary["threshold"] == pytest.approx(0.55)
    agree = 0
    for row in summary["cells"]:
        assert row["six_xi_c"] == pytest.approx(six_xi[row["sigma_w2"]], rel=1e-8)
        predicted = row["depth"] < six_xi[row["sigma_w2"]]
        trained = acc[row["key"]] is not None and acc[row["key"]] >= 0.55
        assert row["predicted_trainable"] == predicted and row["trained"] == trained
        agree += predicted == trained
    assert summary["agreeing_cells"] == agree
    assert summary["agreement"] == pytest.approx(agree / 6)
    assert summary["critical_sigma_w2"] == pytest.approx(1.7609546, rel=1e-6)


def test_steps_to_threshold() -> None:
    plan = plan_experiment("ultra-deep", "tiny", {"threshold": 0.5})
    results = _fake_results(plan, {c.key: 0.9 for c in plan.cells})
    summary = summarise(plan, results)
    assert [r["steps_to_threshold"] for r in summary["cells"]] == [8.0, 8.0]
    assert [r["epochs_to_threshold"] for r in summary["cells"]] == [1.0, 1.0]


def test_spatial_modes_alive_share() -> None:
    """gs0 (delta) keeps every mode (|lambda_f| = 1); gs4 (uniform 3x3) on 8x8 keeps those
    with |(1 + 2 cos(2 pi f1/8))(1 + 2 cos(2 pi f2/8))| / 9 >= 0.5, counted here directly."""
    plan = plan_experiment("spatial-modes", "tiny", {"v_presets": ["gs0", "gs4"]})
    summary = summarise(plan, _fake_results(plan, {c.key: 0.5 for c in plan.cells}))
    c = 1 + 2 * np.cos(2 * np.pi * np.arange(8) / 8)
    expected = float(np.mean(np.abs(np.outer(c, c)) / 9 >= 0.5))
    assert summary["modes_alive"] == {"gs0": 1.0, "gs4": pytest.approx(expected)}


# --- the command line --------------------------------------------------------------------------


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_validate_tiny_end_to_end(tmp_path: Path, experiment: str) -> None:
    out = tmp_path / experiment
    args = ["validate", experiment, "--scale", "tiny", "--out", str(out), "--jobs", "1"]
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = strict_json(result.stdout)
    assert doc["command"] == "validate" and doc["version"]
    assert doc["summary"]["experiment"] == experiment
    assert doc["summary"]["failed"] == 0
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk["settings"]["scale"] == "tiny"
    assert on_disk["mftheory_version"] == doc["version"]
    assert (out / f"{experiment}.png").stat().st_size > 1000
    assert "![" in (out / "report.md").read_text()
    # tiny is a smoke test, and says so everywhere (issue 16)
    assert "smoke test, not a result" in result.stderr
    assert "smoke test, not a result" in doc["summary"]["notice"]
    assert "smoke test, not a result" in (out / "report.md").read_text()
    cells = sorted((out / "cells").glob("*.json"))
    assert len(cells) == len(doc["summary"]["cells"])
    # a rerun resumes: nothing is trained again, the files are untouched
    stamps = [json.loads(p.read_text())["finished_at"] for p in cells]
    again = run(*args)
    assert again.exit_code == 0, again.output
    assert again.stderr.count("already done") == len(cells)
    assert [json.loads(p.read_text())["finished_at"] for p in cells] == stamps


def test_validate_mnist1d_uses_1d_convolutions(tmp_path: Path) -> None:
    pytest.importorskip("mnist1d")
    out = tmp_path / "m1d"
    args = ["spatial-modes", "--scale", "tiny", "--dataset", "mnist1d", "--v", "gs0,gs4"]
    result = run("validate", *args, "--depths", "2", "--out", str(out), "--format", "json")
    assert result.exit_code == 0, result.output
    doc = strict_json(result.stdout)
    # 1D body on 10 positions: gs4 = (1,1,1)/3 keeps |1 + 2 cos(2 pi f / 10)| / 3 >= 0.5
    f = np.arange(10)
    expected = float(np.mean(np.abs(1 + 2 * np.cos(2 * np.pi * f / 10)) / 3 >= 0.5))
    assert doc["summary"]["modes_alive"]["gs4"] == pytest.approx(expected)
    cell = json.loads(next((out / "cells").glob("*.json")).read_text())
    assert cell["dataset"]["input_shape"] == [1, 40]


def test_validate_on_a_dask_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        result = run("validate", "trainability", "--scale", "tiny", "--depths", "2",
                     "--sigma-w2", "1,2", "--out", str(tmp_path), "--scheduler",
                     cluster.scheduler_address, "--format", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = strict_json(result.stdout)
    assert len(doc["summary"]["cells"]) == 2
    # the same cells trained here give the same numbers: a cell is reproducible anywhere
    here = str(tmp_path / "here")
    local = run("validate", "trainability", "--scale", "tiny", "--depths", "2",
                "--sigma-w2", "1,2", "--out", here, "--format", "json")  # fmt: skip
    assert [r["train_accuracy"] for r in strict_json(local.stdout)["summary"]["cells"]] == [
        r["train_accuracy"] for r in doc["summary"]["cells"]
    ]


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["nope"], "unknown experiment"),
        (["trainability", "--scale", "big"], "unknown scale"),
        (["trainability", "--sigma-w2", "-1"], "--sigma-w2"),
        (["trainability", "--sigma-w2", "nan"], "--sigma-w2"),
        (["trainability", "--steps", "3", "--epochs", "1"], "--steps or --epochs"),
        (["trainability", "--depths", "a,b"], "--depths"),
        (["trainability", "--lr", "0"], "--lr"),
        (["trainability", "--optimizer", "rmsprop"], "--optimizer"),
        (["trainability", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], "--scheduler"),
        (["trainability", "--dataset", "mnist"], "--data-dir"),
        (["trainability", "--dataset", "mnist", "--data-dir", "/nonexistent/x"], "nonexistent"),
        (["trainability", "--device", "cuda:7"], "cuda"),
        (["trainability", "--dataset", "imagenet"], "imagenet"),
    ],
)
def test_validate_bad_input_is_one_line(tmp_path: Path, args: list[str], mentions: str) -> None:
    if args[-1] == "cuda" and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    scale = [] if "--scale" in args else ["--scale", "tiny"]
    result = run("validate", *args, *scale, "--out", str(tmp_path / "o"), "--quiet")
    assert_one_line_error(result, mentions=mentions)

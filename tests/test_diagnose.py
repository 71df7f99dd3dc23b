"""``mftheory.meanfield.diagnosis`` and ``mftheory diagnose``: where common initialisations sit.

References: the closed forms of docs/theory.md §3 (erf's q-map, ReLU's critical sigma_w2 = 2) and
the independent slow path :mod:`mftheory.reference`; the schemes' variances from their
definitions (torch.nn.init conventions, written out here).
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from test_cli import assert_one_line_error, run, run_json

from mftheory.activations.builtins import get_activation
from mftheory.errors import MFTheoryError
from mftheory.meanfield.diagnosis import diagnose_init, init_scale
from mftheory.reference import ref_critical_sigma_w2, ref_fixed_point


def test_pytorch_tanh_gain_is_chaotic_without_bias() -> None:
    """calculate_gain('tanh') = 5/3 and zero biases: sigma_w2 = 25/9 > 1, the critical value of
    tanh at sigma_b2 = 0 (chi_1 = sigma_w2 tanh'(0)^2 at q* = 0), so chaotic."""
    d = diagnose_init("tanh", sigma_w2=(5 / 3) ** 2, sigma_b2=0.0)
    assert str(d.fixed.phase) == "chaotic"
    assert d.nearest_critical_sigma_w2 == pytest.approx(1.0, abs=1e-9)
    ref = ref_fixed_point(get_activation("tanh"), (5 / 3) ** 2, 0.0)
    assert d.max_trainable_depth == pytest.approx(6 * ref["xi_c"], rel=1e-9)


def test_erf_closed_form_depth(cf: SimpleNamespace) -> None:
    w2, b2 = 1.5, 0.2
    d = diagnose_init("erf", sigma_w2=w2, sigma_b2=b2)
    q = cf.q_star("erf", {}, w2, b2)
    chi1 = w2 * (4 / math.pi) / math.sqrt(1 + 4 * q)
    assert str(d.fixed.phase) == "ordered" and chi1 < 1
    assert d.max_trainable_depth == pytest.approx(-6 / math.log(chi1), rel=1e-10)
    assert d.nearest_critical_sigma_w2 == pytest.approx(
        cf.critical_sigma_w2("erf", {}, b2), rel=1e-10
    )


def test_he_is_critical_for_relu_and_divergence_is_reported() -> None:
    w2, _ = init_scale("he")
    d = diagnose_init("relu", sigma_w2=w2, sigma_b2=0.0)
    assert str(d.fixed.phase) == "critical" and math.isinf(d.max_trainable_depth)
    over = diagnose_init("relu", sigma_w2=2.5, sigma_b2=0.1)
    assert str(over.fixed.phase) == "divergent" and over.max_trainable_depth == 0.0
    assert "divergent" in over.verdict()


def test_init_scales_from_their_definitions() -> None:
    assert init_scale("he") == (2.0, None)
    assert init_scale("lecun") == (1.0, None)
    assert init_scale("xavier", gain=5 / 3) == pytest.approx(((5 / 3) ** 2, None))
    # kaiming_uniform_(a=sqrt(5)): bound = sqrt(6 / ((1 + a^2) fan_in)) = 1 / sqrt(fan_in), so
    # Var w = bound^2 / 3; bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)): variance 1 / (3 fan_in)
    w2, b2 = init_scale("pytorch-default", fan_in=64)
    assert w2 == pytest.approx(64 * (1 / math.sqrt(64)) ** 2 / 3)
    assert b2 == pytest.approx(1 / (3 * 64))
    with pytest.raises(MFTheoryError, match="unknown initialisation"):
        init_scale("orthogonal-ish")
    with pytest.raises(MFTheoryError, match="fixes its gain"):
        init_scale("he", gain=2.0)


def test_nearest_critical_against_slow_root() -> None:
    d = diagnose_init("tanh", sigma_w2=2.0, sigma_b2=0.05)
    ref = ref_critical_sigma_w2(get_activation("tanh"), 0.05)
    assert d.nearest_critical_sigma_w2 == pytest.approx(ref, rel=1e-10)


# --- CLI ------------------------------------------------------------------------------------


def test_cli_json_has_the_fixed_point_fields_and_more() -> None:
    data = run_json("diagnose", "--act", "tanh", "--gain", "5/3")
    fixed = run_json("fixed-point", "--act", "tanh", "--sigma-w", str(5 / 3), "--sigma-b2", "0")
    for key in ("sigma_w2", "sigma_b2", "q_star", "c_star", "chi_1", "chi_c", "chi_q", "xi_c",
                "xi_q", "sigma_w", "sigma_b"):  # fmt: skip
        assert data[key] == pytest.approx(fixed[key], rel=1e-12), key
    assert data["phase"] == fixed["phase"] == "chaotic"
    assert data["max_trainable_depth"] == pytest.approx(6 * fixed["xi_c"], rel=1e-12)
    assert data["nearest_critical_sigma_w2"] == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(
    ("args", "w2", "b2"),
    [
        (["--gain", "sqrt(2)"], 2.0, 0.0),
        (["--init", "xavier", "--gain", "2"], 4.0, 0.0),
        (["--init", "pytorch-default", "--fan-in", "100"], 1 / 3, 1 / 300),
        (["--sigma-w", "1.2", "--sigma-b", "0.1"], 1.44, 0.01),
        (["--init", "lecun", "--sigma-b2", "0.05"], 1.0, 0.05),
    ],
)
def test_cli_weight_and_bias_sources(args: list[str], w2: float, b2: float) -> None:
    data = run_json("diagnose", *args)
    assert data["sigma_w2"] == pytest.approx(w2, rel=1e-12)
    assert data["sigma_b2"] == pytest.approx(b2, rel=1e-12)


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        ([], "give the weights"),
        (["--gain", "x+1"], "depends on x"),
        (["--gain", "__import__('os')"], "--gain"),
        (["--gain", "-1"], "--gain"),
        (["--init", "he", "--gain", "2"], "fixes its gain"),
        (["--init", "pytorch-default"], "--fan-in"),
        (["--init", "magic"], "unknown initialisation"),
        (["--sigma-w2", "1", "--init", "he"], "one way"),
        (["--gain", "1", "--sigma-b2", "nan"], "sigma-b2"),
    ],
)
def test_cli_errors(args: list[str], mentions: str) -> None:
    assert_one_line_error(run("diagnose", *args), mentions=mentions)


def test_cli_table() -> None:
    result = run("diagnose", "--act", "tanh", "--init", "pytorch-default", "--fan-in", "256")
    assert result.exit_code == 0, result.output
    assert "max_trainable_depth" in result.stdout and "ordered" in result.stdout

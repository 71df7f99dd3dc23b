"""Overflow and stray warnings never reach the user (issue 15, item 3).

Extreme values (1e308, 1e-320, products beyond the largest double) end in a named state
(``none``, ``divergent``) or a one-line refusal; a Python warning that escapes anyway is a
one-line ``internal warning`` failure (exit 1), never warning text. pytest turns warnings
into errors, so every core call here also checks that no warning is emitted.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mftheory.activations import get_activation
from mftheory.cli import app
from mftheory.cnn.kernels import check_kernel, delta_orthogonal_kernel, gaussian_kernel
from mftheory.errors import MFTheoryError
from mftheory.gaussian.qtable import node_moments
from mftheory.gaussian.quadrature import DEFAULT_SETTINGS
from mftheory.meanfield.critical import critical_point

runner = CliRunner()


def run(*args: str) -> Any:
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


def assert_clean(result: Any, code: int) -> list[str]:
    """Exit ``code``, no traceback or warning text; the stderr lines."""
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output and "Warning" not in result.output, result.output
    return result.stderr.strip().splitlines()


def assert_refused(result: Any, mentions: str) -> None:
    lines = assert_clean(result, 2)
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert mentions in lines[0], lines[0]


# --- the examples -------------------------------------------------------------------


@pytest.mark.parametrize("bias", ["1e308", "0:1e308:3", "1e300:1e308:2"])
def test_critical_near_the_largest_double_is_a_named_state(bias: str) -> None:
    """`critical --sigma-b2 1e308` printed RuntimeWarning: overflow; now status none, exit 0."""
    result = run("critical", "--sigma-b2", bias, "--format", "csv")
    assert_clean(result, 0)
    assert result.stdout.strip().splitlines()[-1].endswith(",none")


def test_critical_point_core_has_no_overflow_warning() -> None:
    cp = critical_point("tanh", sigma_b2=np.array([0.05, 1e308, np.finfo(float).max]))
    assert list(cp.status) == ["ok", "none", "none"]
    assert np.isnan(cp.sigma_w2[1:]).all()


def test_spectrum_of_exp_power_is_refused() -> None:
    """`spectrum --act "exp(x)**100" --depth 10` ended in a traceback."""
    assert_refused(run("spectrum", "--act", "exp(x)**100", "--depth", "10"), "exp(x)**100")


def test_phase_diagram_figure_beyond_the_drawable_range(tmp_path: Path) -> None:
    """`phase-diagram --sigma-b2 0:1e308:3 -o p.png` ended in a matplotlib traceback."""
    png = tmp_path / "p.png"
    assert_refused(run("phase-diagram", "--sigma-b2", "0:1e308:3", "-o", str(png)), "1e+307")
    assert not png.exists()
    data = tmp_path / "p.npz"  # the same grid as data: divergent points, exit 0
    assert_clean(run("phase-diagram", "--sigma-b2", "0:1e308:3", "-o", str(data)), 0)
    with np.load(data) as grid:
        assert (grid["phase"][1:] == "divergent").all()


def test_phase_diagram_of_an_overflowing_activation_is_one_line(tmp_path: Path) -> None:
    for act in ("exp(x)**100", "exp(exp(x))"):
        out = str(tmp_path / "g.npz")
        result = run("phase-diagram", "--act", act, "--sigma-w2", "0.5:4:5", "--sigma-b2", "0:1:4")
        assert_refused(result, act)
        assert_refused(run("phase-diagram", "--act", act, "-o", out), "quadrature cut-off")


def test_node_moments_of_an_overflowing_phi_warn_nothing() -> None:
    values, _, _ = node_moments(
        get_activation("exp(x)**100"), np.array([0.1, 1.0]), DEFAULT_SETTINGS
    )
    assert not np.isfinite(values[0]).all()  # refused later by the tail checks


# --- kernels --------------------------------------------------------------------------------


@pytest.mark.parametrize("gain", ["1e-320", "1e-300", "1e308", "1e154"])
def test_kernel_gain_whose_square_overflows_is_refused(gain: str) -> None:
    assert_refused(run("kernel", "--cin", "4", "--cout", "4", "--gain", gain), "gain must be 0")


def test_kernel_gain_range_in_the_core() -> None:
    with pytest.raises(MFTheoryError, match="between 1e-100 and 1e"):
        delta_orthogonal_kernel(3, 2, 2, gain=1e-200)
    with pytest.raises(MFTheoryError, match="between 1e-100 and 1e"):
        gaussian_kernel(np.array([0.0, 1.0, 0.0]), 2, 2, gain=1e200)
    k = delta_orthogonal_kernel(3, 2, 2, gain=1e-100)  # the ends are accepted
    assert check_kernel(k, gain=1e-100, n_values=[3]).orthogonal


def test_kernel_entries_whose_squares_overflow_are_refused(tmp_path: Path) -> None:
    k = np.zeros((3, 3, 2, 2))
    k[1, 1] = 1e200 * np.eye(2)
    np.save(tmp_path / "big.npy", k)
    assert_refused(run("kernel", "--check", str(tmp_path / "big.npy")), "exceeds 1e+100")


def test_check_kernel_with_a_gain_whose_square_underflows() -> None:
    """It divided by gain^2 = 0 (ZeroDivisionError); now the Gram deviation is nan."""
    k = np.zeros((3, 2, 2))
    k[1] = 1e-200 * np.eye(2)
    result = check_kernel(k, n_values=[3])
    assert result.orthogonal and np.isnan(result.max_gram_deviation)


# --- the last line of defence ---------------------------------------------------------------


def test_a_stray_warning_is_a_one_line_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    """A warning that escapes the code becomes `Error: internal warning: ...`, exit 1."""
    import mftheory.meanfield.fixed_points as module

    real = module.fixed_point

    def leaky(*args: Any, **kwargs: Any) -> Any:
        np.log(np.zeros(1))  # RuntimeWarning: divide by zero
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "fixed_point", leaky)
    with warnings.catch_warnings():
        warnings.simplefilter("default")  # as a user's interpreter, not pytest's "error"
        result = run("fixed-point", "--sigma-w2", "1.5")
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # the one line, no warning text of its own
    assert lines[-1].startswith("Error: internal warning: RuntimeWarning: divide by zero")
    assert "please report it" in lines[-1]


def test_propagate_without_fixed_point_whose_variance_overflows(tmp_path: Path) -> None:
    """Found by the long fuzz: with no finite q*, `propagate --sigma-w 1e154` iterated the
    covariance and the mean of a diagonal near the largest double overflowed (internal warning,
    exit 1); now the variance is named as diverging, exit 2."""
    img = tmp_path / "img.npy"
    np.save(img, np.random.default_rng(0).normal(size=(8, 8)))
    result = run("propagate", "--sigma-w", "1e154", "--image", str(img), "--depth", "5")
    lines = assert_clean(result, 2)
    assert lines[-1].startswith("Error: ") and "stopped being finite" in lines[-1], lines

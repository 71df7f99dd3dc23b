"""The chaotic fixed point next to the critical line, against a 40-digit judge.

There xi_c = -1/log(chi_c*) ~ 1/(1 - chi_c*) is very sensitive, and a double-precision
reference (mftheory.reference) carries the same cancellation as a naive solver, so the judge
is erf's closed forms evaluated with mpmath at 40 digits. The core is made to take its
numerical (Hermite series) path by switching erf's closed form off. Measured: xi_c within
1e-11 at 1 - chi_c = 4e-5; the tolerance 1e-9 leaves room for the conditioning
(about 1e-16 / (1 - chi_c*) relative)."""

from __future__ import annotations

import dataclasses

import mpmath as mp
import numpy as np
import pytest

from mftheory import critical_point, fixed_point, get_activation
from mftheory.meanfield.grid import phase_grid


def judge_erf(w: float, b: float, q_guess: float, c_guess: float) -> dict[str, float]:
    with mp.workdps(40):
        W, B = mp.mpf(w), mp.mpf(b)
        q = mp.findroot(lambda x: W * 2 / mp.pi * mp.asin(2 * x / (1 + 2 * x)) + B - x, q_guess)
        s = 2 * q / (1 + 2 * q)
        c = mp.findroot(lambda x: (W * 2 / mp.pi * mp.asin(x * s) + B) / q - x, c_guess)
        chi = W * 4 / mp.pi / mp.sqrt((1 + 2 * q) ** 2 - 4 * c**2 * q**2)
        return {
            "q_star": float(q),
            "c_star": float(c),
            "chi_c": float(chi),
            "xi_c": float(-1 / mp.log(chi)),
        }


@pytest.mark.parametrize("eps", [1e-2, 1e-3, 3e-4, 1e-4])
@pytest.mark.parametrize("sigma_b2", [0.05, 0.5])
def test_hermite_path_next_to_critical_line(eps, sigma_b2):
    erf = get_activation("erf")
    numerical = dataclasses.replace(erf, closed_form=None)
    w = float(critical_point(erf, sigma_b2=sigma_b2).sigma_w2) * (1 + eps)
    fp = fixed_point(numerical, sigma_w2=w, sigma_b2=sigma_b2)
    assert str(fp.phase) == "chaotic"
    ref = judge_erf(w, sigma_b2, float(fp.q_star), float(fp.c_star))
    assert float(fp.q_star) == pytest.approx(ref["q_star"], rel=1e-14)
    assert float(fp.c_star) == pytest.approx(ref["c_star"], rel=1e-13)
    assert float(fp.xi_c) == pytest.approx(ref["xi_c"], rel=1e-9)


def test_grid_next_to_critical_line():
    """phase_grid (tables, interpolation) at columns just above the critical line."""
    erf = dataclasses.replace(get_activation("erf"), closed_form=None)
    b = np.array([0.05, 0.2, 0.5])
    wc = critical_point("erf", sigma_b2=b).sigma_w2
    cols = np.sort(np.concatenate([np.linspace(0.5, 4.0, 40), wc * (1 + 1e-3)]))
    grid = phase_grid(erf, sigma_w2=cols, sigma_b2=b)
    for i in range(b.size):
        j = int(np.argmin(np.abs(cols - wc[i] * (1 + 1e-3))))
        ref = judge_erf(cols[j], b[i], grid.q_star[i, j], grid.c_star[i, j])
        assert grid.xi_c[i, j] == pytest.approx(ref["xi_c"], rel=1e-8)

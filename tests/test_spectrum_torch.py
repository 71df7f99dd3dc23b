"""The predicted spectrum against real torch networks: a Delta-Orthogonal tanh CNN.

The isometry table gives a CNN with Delta-Orthogonal kernels the spectrum of the orthogonal
fully connected network (each position mixes its channels by one orthogonal matrix). Here a
real ``nn.Conv1d`` stack, initialised by :func:`mftheory.torch.delta_orthogonal_` and
differentiated by autograd, is compared with :func:`mftheory.spectrum.density.jacobian_spectrum`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.integrate import trapezoid

torch = pytest.importorskip("torch")
nn = torch.nn

import mftheory.torch as mt  # noqa: E402
from mftheory.meanfield.critical import critical_point  # noqa: E402
from mftheory.spectrum.density import jacobian_spectrum  # noqa: E402


def _delta_cnn_values(depth: int, channels: int, size: int, seed: int) -> np.ndarray:
    cp = critical_point("tanh", sigma_b2=0.05)
    w2, q = float(cp.sigma_w2), float(cp.q_star)
    gen = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    for _ in range(depth):
        conv = nn.Conv1d(channels, channels, 3, padding=1, padding_mode="circular")
        conv = conv.double()
        mt.delta_orthogonal_(conv.weight, gain=math.sqrt(w2), generator=gen)
        with torch.no_grad():
            conv.bias.normal_(0.0, math.sqrt(0.05), generator=gen)
        layers += [nn.Tanh(), conv]  # J = d h^L / d h^0 with h^0 at the fixed point
    model = nn.Sequential(*layers)
    h0 = torch.randn(1, channels, size, generator=gen, dtype=torch.float64) * math.sqrt(q)
    s = mt.jacobian_singular_values(model, h0)
    return s**2


def test_delta_orthogonal_cnn_has_the_orthogonal_spectrum() -> None:
    depth = 4
    spec = jacobian_spectrum("tanh", depth=depth, sigma_b2=0.05, weights="orthogonal")
    vals = np.stack([_delta_cnn_values(depth, 32, 8, seed) for seed in range(4)])
    mean = vals.mean()
    nv = vals.var() / mean**2
    per_draw = vals.mean(axis=1)
    se = per_draw.std(ddof=1) / math.sqrt(len(per_draw))
    # Mean chi_1^L = 1 within 4 standard errors of the draw means (plus 0.02 for the spread
    # of the three draws' D's, whose sample means fluctuate by ~sqrt(0.34 / 256) per layer).
    assert abs(mean - spec.mean) <= 4 * se + 0.02
    # Normalised variance 1.369 (docs/theory.md section 5) within 20%: its sample error over
    # 4 x 256 correlated eigenvalues with a heavy upper tail is about 10% (measured spread of
    # the per-draw values).
    assert nv == pytest.approx(spec.normalized_variance, rel=0.2)
    # Quantiles: the theory's CDF at the sampled quantiles within 0.05 of the level.
    for level in (0.05, 0.5, 0.95):
        q_mc = float(np.quantile(vals, level))
        t = np.log(q_mc)
        rho = spec.log_density
        above = trapezoid(rho[spec.log_x >= t], spec.log_x[spec.log_x >= t])
        assert 1.0 - above == pytest.approx(level, abs=0.05), level

"""The settings of the paper's figures that this project reproduces (Xiao et al. 2018).

* Fig. S4 (appendix F): multiple depth scales, erf, 1D images of 10 pixels, a perturbation
  of the first cyclic diagonal of the fixed-point covariance: ``figure_s4_setup``.
* Fig. 4(b): the 8x8 values ``|lambda_f|`` of the variance vectors GS0..GS4, sorted:
  ``figure_4b_eigenvalues``.

Notes
-----
docs/theory.md section 4 (modes, GSj = (1 - j/4) delta + (j/4) uniform) and section 7; the
settings are those of Xiao et al. (2018), appendix F.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from mftheory.cnn.modes import mode_eigenvalues, variance_vector
from mftheory.meanfield.fixed_points import fixed_point

__all__ = ["FigureS4Setup", "figure_4b_eigenvalues", "figure_s4_setup"]

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class FigureS4Setup:
    """Everything Fig. S4 fixes.

    Attributes
    ----------
    activation : str
    sigma_w2, sigma_b2 : float
        ``sigma_w = 3/2``, ``sigma_b = 1/2``.
    n : int
        Pixels of the 1D image (10).
    v : ndarray
        ``[0.025, 0.95, 0.025]``.
    eps_fourier : ndarray, shape ``(n,)``
        Fourier transform of the first cyclic diagonal of ``eps^0 = Sigma* - Sigma^0``.
    q_star, c_star : float
    sigma_star : ndarray, shape ``(n, n)``
        The fixed point ``q* [(1 - c*) I + c* 11^T]``.
    eps0 : ndarray, shape ``(n, n)``
        ``eps^0``: zero except on the first cyclic diagonal ``(a, a+1)`` and its mirror.
    sigma0 : ndarray, shape ``(n, n)``
        ``Sigma^0 = Sigma* - eps^0``.
    """

    activation: str
    sigma_w2: float
    sigma_b2: float
    n: int
    v: FloatArray
    eps_fourier: FloatArray
    q_star: float
    c_star: float
    sigma_star: FloatArray
    eps0: FloatArray
    sigma0: FloatArray


def figure_s4_setup(scale: float = 1.0) -> FigureS4Setup:
    """The initial covariance of Fig. S4.

    Parameters
    ----------
    scale : float
        Multiplies the paper's perturbation (1 = as printed).

    Returns
    -------
    FigureS4Setup

    Notes
    -----
    Appendix F: "all entries of eps^0 except the first cyclic diagonal entries are taken to be
    zero, and that diagonal has Fourier transform given by
    -(1/6)[1, 2/3, (2/3)^3, (2/3)^5, (2/3)^4, (2/3)^2, (2/3)^4, (2/3)^5, (2/3)^3, 2/3]".
    The transform is read with numpy's convention (``fft(d) = F``, so ``d = ifft(F)``); the
    profile is symmetric under ``f -> n - f``, so ``d`` is real. ``eps^0`` is symmetric: the
    entries ``(a, a+1)`` and ``(a+1, a)`` both hold ``d_a``.
    """
    r = 2.0 / 3.0
    eps_fourier = -np.array([1, r, r**3, r**5, r**4, r**2, r**4, r**5, r**3, r]) / 6.0
    n, w2, b2 = 10, 1.5**2, 0.5**2  # sigma_w = 3/2, sigma_b = 1/2
    fp = fixed_point("erf", sigma_w2=w2, sigma_b2=b2)
    q, c = float(fp.q_star), float(fp.c_star)
    sigma_star = np.full((n, n), q * c)
    np.fill_diagonal(sigma_star, q)
    d = np.fft.ifft(eps_fourier).real * scale
    eps0 = np.zeros((n, n))
    a = np.arange(n)
    eps0[a, (a + 1) % n] = d
    eps0[(a + 1) % n, a] = d
    return FigureS4Setup(
        activation="erf",
        sigma_w2=w2,
        sigma_b2=b2,
        n=n,
        v=np.array([0.025, 0.95, 0.025]),
        eps_fourier=eps_fourier * scale,
        q_star=q,
        c_star=c,
        sigma_star=sigma_star,
        eps0=eps0,
        sigma0=sigma_star - eps0,
    )


def figure_4b_eigenvalues(n: int = 8, kernel: int = 3) -> dict[str, FloatArray]:
    """``|lambda_f|`` of GS0..GS4 on ``n x n`` images, each sorted in descending order.

    Parameters
    ----------
    n : int
        Image side (the paper: 8, so 64 values per vector).
    kernel : int
        Kernel side (the paper: 3).

    Returns
    -------
    dict
        ``{"gs0": array of n*n values, ..., "gs4": ...}``.

    Notes
    -----
    docs/theory.md section 4: ``lambda_f = sum_b v_b exp(2 pi i <f, b> / n)``; GS0 (delta) gives
    all ones, GS4 (uniform) the most spread-out values.
    """
    out: dict[str, FloatArray] = {}
    for j in range(5):
        name = f"gs{j}"
        _, lam = mode_eigenvalues(variance_vector(name, kernel=kernel, dim=2), n)
        out[name] = np.sort(np.abs(lam))[::-1]
    return out

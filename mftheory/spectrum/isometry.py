"""Which initialisations reach dynamical isometry: one table at a given depth.

Each row is an initialisation at criticality (mean squared singular value 1) and the
predicted spectrum of its input-output Jacobian (``mftheory.spectrum.density``):

* ``gaussian``: the activation (tanh by default) at its critical ``sigma_w2``, i.i.d.
  Gaussian weights;
* ``orthogonal``: the same point with scaled Haar-orthogonal weights;
* ``delta-orthogonal-cnn``: a CNN whose kernels are Delta-Orthogonal (an orthogonal matrix
  at the centre tap): every position then mixes its channels by an orthogonal matrix and
  nothing else, so its Jacobian has the spectrum of the orthogonal fully connected network of
  width = channels (Xiao et al. 2018; checked against sampled CNNs in the tests);
* ``relu-he``: ReLU with He's ``sigma_w2 = 2``, ``sigma_b2 = 0``, Gaussian weights: half of
  ``phi'`` is 0, so half of the singular values are exactly 0 at any depth;
* ``relu-looks-linear``: Burkholz & Dubatovka's parameter sharing with orthogonal blocks: the
  initial network is exactly the linear orthogonal map, all singular values 1.

The spread is the ratio of the 95th to the 5th percentile of the singular values
``s = sqrt(x)``; a network is called isometric when it is at most ``max_spread`` (default 10:
the singular values stay within one order of magnitude) and none is 0.

Notes
-----
docs/theory.md section 5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mftheory.activations.builtins import Activation, get_activation
from mftheory.errors import MFTheoryError
from mftheory.spectrum.density import JacobianSpectrum, SpectrumSettings, jacobian_spectrum

__all__ = ["INITIALISATIONS", "IsometryRow", "isometry_table"]

#: Rows of the table, in order.
INITIALISATIONS: tuple[str, ...] = (
    "gaussian",
    "orthogonal",
    "delta-orthogonal-cnn",
    "relu-he",
    "relu-looks-linear",
)


@dataclass(frozen=True)
class IsometryRow:
    """One initialisation and its predicted Jacobian spectrum.

    Attributes
    ----------
    name : str
        Key from ``INITIALISATIONS``.
    network : str
        What the network is, for a table.
    spectrum : JacobianSpectrum
    spread : float
        95th over 5th percentile of the singular values (inf when the 5th is 0).
    zero_share : float
        Share of singular values that are exactly 0.
    isometric : bool
        ``spread <= max_spread`` and ``zero_share == 0``.
    """

    name: str
    network: str
    spectrum: JacobianSpectrum
    spread: float
    zero_share: float
    isometric: bool

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary (no density)."""
        from mftheory.serialize import finite_or_none

        spec = self.spectrum
        return {
            "name": self.name,
            "network": self.network,
            "activation": spec.activation.label,
            "weights": spec.weights,
            "sigma_w2": spec.sigma_w2,
            "sigma_b2": spec.sigma_b2,
            "q_star": finite_or_none(spec.q_star),
            "mean": finite_or_none(spec.mean),
            "variance": finite_or_none(spec.variance),
            "log10_quantiles": {k: finite_or_none(v) for k, v in spec.log10_quantiles.items()},
            "spread": finite_or_none(self.spread),
            "zero_share": self.zero_share,
            "isometric": self.isometric,
        }


def isometry_table(
    *,
    depth: int,
    act: str | Activation = "tanh",
    sigma_b2: float = 1e-5,
    max_spread: float = 10.0,
    settings: SpectrumSettings | None = None,
) -> tuple[IsometryRow, ...]:
    """The five initialisations of ``INITIALISATIONS`` at one depth.

    Parameters
    ----------
    depth : int
        Number of layers (``>= 2``).
    act : str or Activation
        Activation of the first three rows (at its critical ``sigma_w2`` for ``sigma_b2``).
    sigma_b2 : float
        Bias variance of the first three rows. The default 1e-5 is the small-``q*`` regime
        where tanh with orthogonal weights is close to isometric (Pennington et al. 2017).
    max_spread : float
        Largest spread (p95/p5 of singular values) called isometric (``> 1``).
    settings : SpectrumSettings, optional

    Returns
    -------
    tuple of IsometryRow

    Notes
    -----
    docs/theory.md section 5; the rows are described in the module docstring.
    """
    a = get_activation(act)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
        raise MFTheoryError(f"depth must be an integer >= 2, got {depth!r}")
    if not (math.isfinite(max_spread) and max_spread > 1):
        raise MFTheoryError(f"max_spread must be a finite number > 1, got {max_spread!r}")
    st = settings or SpectrumSettings()
    gauss = jacobian_spectrum(a, depth=depth, sigma_b2=sigma_b2, weights="gaussian", settings=st)
    orth = jacobian_spectrum(a, depth=depth, sigma_b2=sigma_b2, weights="orthogonal", settings=st)
    he = jacobian_spectrum(
        "relu", depth=depth, sigma_b2=0.0, sigma_w2=2.0, weights="gaussian", settings=st
    )
    looks = jacobian_spectrum(
        "linear", depth=depth, sigma_b2=0.0, sigma_w2=1.0, weights="orthogonal", settings=st
    )
    entries = (
        ("gaussian", f"{a.label}, Gaussian weights", gauss),
        ("orthogonal", f"{a.label}, orthogonal weights", orth),
        ("delta-orthogonal-cnn", f"{a.label} CNN, Delta-Orthogonal kernels", orth),
        ("relu-he", "relu, He (sigma_w2 = 2), Gaussian", he),
        ("relu-looks-linear", "relu, looks-linear sharing, orthogonal", looks),
    )
    rows = []
    for name, network, spec in entries:
        zero = sum(m for x, m in spec.atoms if x == 0)
        spread = spec.singular_value_spread
        rows.append(
            IsometryRow(
                name=name,
                network=network,
                spectrum=spec,
                spread=spread,
                zero_share=zero,
                isometric=bool(zero == 0 and spread <= max_spread),
            )
        )
    return tuple(rows)

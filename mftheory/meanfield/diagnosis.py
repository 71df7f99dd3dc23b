"""Where a common initialisation sits in the mean-field phase diagram.

Most users start from a framework default, not from the theory. ``init_scale`` turns the
usual schemes into the mean-field weight and bias variances, and ``diagnose_init`` reports
the fixed point, the phase, the correlation depth scale, the depth beyond which training is
predicted to fail (about ``6 xi_c``, Schoenholz et al. 2017), and the critical weight variance
at the same bias.

Notes
-----
docs/theory.md sections 3 (fixed points, phases) and 5 (trainable when ``L <~ 6 xi_c``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mftheory.activations.builtins import Activation, get_activation
from mftheory.errors import MFTheoryError
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import (
    TRAINABLE_DEPTH_FACTOR,
    FixedPoint,
    fixed_point,
    trainable_depth,
)
from mftheory.meanfield.maps import check_variances
from mftheory.serialize import finite_or_none

__all__ = [
    "INIT_SCHEMES",
    "TRAINABLE_DEPTH_FACTOR",
    "InitDiagnosis",
    "diagnose_init",
    "init_scale",
]

#: The schemes ``init_scale`` knows, with what they set.
INIT_SCHEMES: dict[str, str] = {
    "he": "kaiming_normal_ (fan_in, ReLU gain sqrt 2): Var w = 2 / fan_in, sigma_w^2 = 2",
    "xavier": "xavier_normal_ with fan_in = fan_out: Var w = 1 / fan_in, sigma_w^2 = gain^2",
    "lecun": "LeCun normal: Var w = 1 / fan_in, sigma_w^2 = 1",
    "pytorch-default": (
        "nn.Linear / nn.Conv defaults: kaiming_uniform_(a = sqrt 5), so Var w = 1/(3 fan_in),"
        " sigma_w^2 = 1/3; biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)), sigma_b^2 = 1/(3 fan_in)"
    ),
}


def init_scale(
    scheme: str, *, gain: float | None = None, fan_in: int | None = None
) -> tuple[float, float | None]:
    """``(sigma_w2, sigma_b2)`` of an initialisation scheme (``sigma_b2`` None: zero biases
    or not set by the scheme).

    Parameters
    ----------
    scheme : str
        One of ``INIT_SCHEMES``.
    gain : float, optional
        The ``gain`` argument of ``xavier`` (default 1); refused for the others, whose gain
        the scheme fixes.
    fan_in : int, optional
        Needed by ``pytorch-default`` for its bias variance ``1 / (3 fan_in)``.

    Notes
    -----
    The mean-field weight variance is ``sigma_w^2 = fan_in Var w`` (docs/theory.md §1).
    """
    key = scheme.strip().lower()
    if key not in INIT_SCHEMES:
        raise MFTheoryError(
            f"unknown initialisation {scheme!r}; choose one of {', '.join(INIT_SCHEMES)}"
        )
    if gain is not None and key != "xavier":
        raise MFTheoryError(
            f"--gain with --init {key}: that scheme fixes its gain; give --gain alone (sigma_w"
            " = gain) or with --init xavier"
        )
    if key == "he":
        return 2.0, None
    if key == "lecun":
        return 1.0, None
    if key == "xavier":
        g = 1.0 if gain is None else float(gain)
        return g * g, None
    if fan_in is None:
        return 1.0 / 3.0, None
    if isinstance(fan_in, bool) or not isinstance(fan_in, (int, np.integer)) or fan_in < 1:
        raise MFTheoryError(f"fan_in must be a positive integer, got {fan_in!r}")
    return 1.0 / 3.0, 1.0 / (3.0 * int(fan_in))


@dataclass(frozen=True)
class InitDiagnosis:
    """The mean-field verdict on one initialisation.

    Attributes
    ----------
    fixed : FixedPoint
        ``q*``, ``c*``, the slopes, depth scales and phase at ``(sigma_w2, sigma_b2)``.
    max_trainable_depth : float
        ``6 xi_c``: the depth beyond which training is predicted to fail (``inf`` on the
        critical line, ``0`` without a finite fixed point).
    nearest_critical_sigma_w2 : float
        The critical weight variance (``chi_1 = 1``) at the same bias (NaN if there is none).
    critical_status : str
        Status of that critical point (see ``mftheory.meanfield.critical.CriticalPoint``).
    """

    fixed: FixedPoint
    max_trainable_depth: float
    nearest_critical_sigma_w2: float
    critical_status: str

    @property
    def activation(self) -> Activation:
        return self.fixed.activation

    def verdict(self) -> str:
        """One line for people: the phase and what it means for depth."""
        phase = str(self.fixed.phase)
        wc = self.nearest_critical_sigma_w2
        if phase == "divergent":
            return "divergent: no finite fixed point, the signal blows up with depth"
        if phase == "critical":
            return "critical: signals propagate to any depth (xi_c infinite)"
        direction = "lower" if phase == "chaotic" else "raise"
        tail = (
            f"; {direction} sigma_w^2 towards {wc:.6g} for criticality" if math.isfinite(wc) else ""
        )
        return (
            f"{phase}: trainable up to about {self.max_trainable_depth:.3g} layers (6 xi_c){tail}"
        )

    def as_dict(self) -> dict[str, Any]:
        """The fields of ``FixedPoint.as_dict`` plus ``max_trainable_depth``,
        ``nearest_critical_sigma_w2`` (and its ``sigma_w``), ``critical_status`` and
        ``verdict``; non-finite numbers as None."""
        out: dict[str, Any] = dict(self.fixed.as_dict())
        wc = self.nearest_critical_sigma_w2
        out["max_trainable_depth"] = finite_or_none(self.max_trainable_depth)
        out["nearest_critical_sigma_w2"] = finite_or_none(wc)
        out["nearest_critical_sigma_w"] = finite_or_none(math.sqrt(wc)) if wc >= 0 else None
        out["critical_status"] = self.critical_status
        out["verdict"] = self.verdict()
        return out


def diagnose_init(act: Activation | str, *, sigma_w2: float, sigma_b2: float) -> InitDiagnosis:
    """Fixed point, phase, trainable depth and the nearest critical point of one init.

    Parameters
    ----------
    act : Activation or str
    sigma_w2, sigma_b2 : float
        Weight and bias variances (``sigma_w2 = fan_in Var w``).

    Returns
    -------
    InitDiagnosis

    Notes
    -----
    docs/theory.md §3 (phases) and §5: a network of depth ``L`` trains when ``L <~ 6 xi_c``.

    Examples
    --------
    PyTorch's ``calculate_gain('tanh') = 5/3`` with no bias is chaotic for tanh:

    >>> str(diagnose_init("tanh", sigma_w2=(5 / 3) ** 2, sigma_b2=0.0).fixed.phase)
    'chaotic'
    """
    activation = get_activation(act) if isinstance(act, str) else act
    w_arr, b_arr = check_variances(sigma_w2, sigma_b2)
    if w_arr.size != 1:
        raise MFTheoryError("diagnose_init takes one (sigma_w2, sigma_b2) point")
    w2, b2 = float(w_arr.reshape(-1)[0]), float(b_arr.reshape(-1)[0])
    fp = fixed_point(activation, sigma_w2=w2, sigma_b2=b2)
    depth = float(trainable_depth(fp.xi_c))
    cp = critical_point(activation, sigma_b2=b2)
    return InitDiagnosis(
        fixed=fp,
        max_trainable_depth=depth,
        nearest_critical_sigma_w2=float(cp.sigma_w2),
        critical_status=str(cp.status),
    )

"""A 30-digit judge for tanh next to the critical line (slow: about 2 minutes per point).

Near the critical line xi_c = -1/log(chi_c*) is ill-conditioned for a double-precision
solver of C(c) - c = 0, which is what the slow reference (mftheory.reference) is; so this
judge works in mpmath at 30 digits. It takes the Hermite ("dual activation") route, which
is exact mathematics (Mehler's formula): a_k = E[tanh(sqrt(q) z) He_k(z)] / sqrt(k!) by
mpmath quadrature, E[phi(u1) phi(u2)] = sum_k a_k^2 c^k, with the truncation checked
(``tail`` = F(q) - sum a_k^2 must be negligible).

Run: ``python -m benchmarks.judge_tanh`` (prints the core's relative errors).
"""

from __future__ import annotations

import time

import mpmath as mp

from mftheory import critical_point, fixed_point


def judge_tanh(w: float, b: float, q_guess: float, c_guess: float, terms: int = 360) -> dict:
    """q*, c*, chi_c, xi_c of tanh at (sigma_w2, sigma_b2) = (w, b), to about 25 digits."""
    with mp.workdps(30):
        W, B = mp.mpf(w), mp.mpf(b)

        def dens(z: mp.mpf) -> mp.mpf:
            return mp.exp(-z * z / 2) / mp.sqrt(2 * mp.pi)

        def F(q: mp.mpf) -> mp.mpf:
            return mp.quad(lambda z: mp.tanh(mp.sqrt(q) * z) ** 2 * dens(z), [-mp.inf, 0, mp.inf])

        q = mp.findroot(lambda x: W * F(x) + B - x, mp.mpf(q_guess))
        s = mp.sqrt(q)
        a = [mp.mpf(0)] * (terms + 1)
        for k in range(1, terms + 1, 2):  # tanh is odd: even coefficients vanish
            integrand = lambda z, k=k: (  # noqa: E731
                mp.tanh(s * z) * mp.hermite(k, z / mp.sqrt(2)) * 2 ** (-mp.mpf(k) / 2) * dens(z)
            )
            a[k] = mp.quad(integrand, [-mp.inf, -2, 0, 2, mp.inf]) / mp.sqrt(mp.factorial(k))
        tail = F(q) - sum(x * x for x in a)

        def E(c: mp.mpf) -> mp.mpf:
            return sum(a[k] ** 2 * c**k for k in range(terms + 1))

        def dE(c: mp.mpf) -> mp.mpf:
            return sum(k * a[k] ** 2 * c ** (k - 1) for k in range(1, terms + 1))

        c = mp.findroot(lambda x: (W * E(x) + B) / q - x, mp.mpf(c_guess))
        chi = W * dE(c) / q
        return {"q_star": q, "c_star": c, "chi_c": chi, "xi_c": -1 / mp.log(chi), "tail": tail}


def main() -> None:
    b = 0.3
    w_c = float(critical_point("tanh", sigma_b2=b).sigma_w2)
    for eps in (1e-3, 1e-4):
        w = w_c * (1 + eps)
        fp = fixed_point("tanh", sigma_w2=w, sigma_b2=b)
        start = time.time()
        ref = judge_tanh(w, b, float(fp.q_star), float(fp.c_star))
        errors = " ".join(
            f"{k}={abs(float(getattr(fp, k)) / float(ref[k]) - 1):.1e}"
            for k in ("q_star", "c_star", "chi_c", "xi_c")
        )
        print(
            f"sigma_w2 = w_c (1 + {eps:g}), sigma_b2 = {b}: 1 - chi_c = "
            f"{float(1 - ref['chi_c']):.1e}, judge tail {float(ref['tail']):.1e}, "
            f"{time.time() - start:.0f} s; relative errors of fixed_point: {errors}"
        )


if __name__ == "__main__":
    main()

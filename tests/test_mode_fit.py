"""``simulate``'s fit rule and its bootstrap standard errors (issue 16, first bullet).

docs/theory.md section 4. One rule (``mftheory.montecarlo.mode_check.FIT_RULE``) fits the finite
networks, the mean-field map and every bootstrap resample; the standard error of a measured rate
is the spread of that fit over a bootstrap over networks. Judges here: ``numpy.polyfit`` (an
independent weighted least-squares fit), ``gathered_mode_amplitudes`` (the map's own amplitude
code, for the stacked version), and, for the errors, the scatter of many independent ensembles.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import mftheory.montecarlo.mode_check as mode_check
from mftheory.cnn.paper import figure_s4_setup
from mftheory.cnn.propagation import DiagonalGather, gathered_mode_amplitudes
from mftheory.errors import MFTheoryError
from mftheory.montecarlo.ensembles import simulate_ensemble
from mftheory.montecarlo.mode_check import (
    compare_modes,
    fit_window,
    stacked_mode_amplitudes,
    weighted_rate,
)


def _small(seed: int = 0, **kw):  # type: ignore[no-untyped-def]
    """Fig. S4's setup, 10 pixels, a small ensemble: ~0.3 s."""
    s = figure_s4_setup(1.0)
    args = {"depth": 20, "channels": 100, "networks": 50, "bootstrap": 200, **kw}
    return compare_modes(
        s.activation,
        v=s.v,
        sigma_w2=s.sigma_w2,
        sigma_b2=s.sigma_b2,
        Sigma0=s.sigma0,
        image_shape=s.n,
        seed=seed,
        **args,
    )


def test_weighted_rate_is_numpys_weighted_least_squares() -> None:
    """Against numpy.polyfit with the same weights (rounding only: 1e-12 relative), on noisy
    data and on a stack of them; a pure geometric decay gives its ratio back exactly."""
    rng = np.random.default_rng(5)
    x = np.arange(3, 15)
    w = rng.uniform(0.5, 20.0, x.size)
    amps = np.exp(-0.07 * x + rng.normal(0, 0.05, (4, x.size)))
    got = weighted_rate(x, amps, w)
    for k in range(4):
        slope = np.polyfit(x, np.log(amps[k]), 1, w=w)[0]
        assert got[k] == pytest.approx(math.exp(slope), rel=1e-12)
    assert float(weighted_rate(x, 2.0 * 0.93**x, w)) == pytest.approx(0.93, rel=1e-13)
    assert math.isnan(float(weighted_rate(x, np.where(x == 5, 0.0, 1.0), w)))


def test_fit_window_is_the_first_run_above_the_margin() -> None:
    noise = np.ones(6)
    assert fit_window([9, 8, 7, 4, 9, 9], noise, 5.0) == 3
    assert fit_window([9, 8, 7, 6, 9, 9], noise, 5.0) == 6
    assert fit_window([1, 8, 7], noise[:3], 5.0) == 0


@pytest.mark.parametrize(("shape", "batch"), [((10,), 1), ((4, 6), 2), ((3, 4, 5), 1), ((5,), 3)])
def test_stacked_amplitudes_match_the_maps_amplitudes(shape: tuple[int, ...], batch: int) -> None:
    """The bootstrap's vectorised amplitudes are the map's ``gathered_mode_amplitudes``
    (rounding: 1e-13 relative to the largest)."""
    rng = np.random.default_rng(2)
    g = DiagonalGather(shape, batch)
    M = batch * g.N
    x = rng.standard_normal((6, M, M))
    x = x + x.swapaxes(1, 2)
    want = np.array([gathered_mode_amplitudes(g, m)[0] for m in x])
    np.testing.assert_allclose(stacked_mode_amplitudes(g, x), want, rtol=0, atol=1e-13 * want.max())


def test_network_and_map_rates_use_one_rule() -> None:
    """Both rates are numpy.polyfit of log amplitude over the same window with the same
    weights (amplitude / noise of the networks), and identical amplitudes give identical
    rates: the map's rate is the measured one when the map's amplitudes are the networks'."""
    cmp = _small(depth=12, networks=20, channels=64, bootstrap=20)
    mf_amp = cmp.mean_field.amplitude[np.searchsorted(cmp.mean_field.layers, cmp.layers)]
    fitted = 0
    for f in range(cmp.amplitude.shape[1]):
        lo, hi = cmp.fit_window[f]
        if lo < 0:
            assert math.isnan(cmp.measured_rate[f]) and math.isnan(cmp.mean_field_rate[f])
            continue
        fitted += 1
        sel = (cmp.layers >= lo) & (cmp.layers <= hi)
        w = cmp.amplitude[sel, f] / cmp.noise[sel]
        np.testing.assert_allclose(cmp.fit_weight[sel, f], w, rtol=1e-15)
        assert np.all(cmp.fit_weight[~sel, f] == 0)
        for amp, rate in ((cmp.amplitude, cmp.measured_rate), (mf_amp, cmp.mean_field_rate)):
            slope = np.polyfit(cmp.layers[sel], np.log(amp[sel, f]), 1, w=w)[0]
            assert rate[f] == pytest.approx(math.exp(slope), rel=1e-12)
        same = weighted_rate(cmp.layers[sel], cmp.amplitude[sel, f], cmp.fit_weight[sel, f])
        assert float(same) == pytest.approx(cmp.measured_rate[f], rel=1e-13)
    assert fitted >= 2


def test_bootstrap_is_seeded_and_resamples_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same seed, same errors; the resample count is a setting; the per-network records
    average to the ensemble mean (rounding: 1e-12 of the largest entry); pooling networks in
    groups happens only above the memory limit, and is reported."""
    a = _small(seed=4, depth=10, networks=12, channels=32, bootstrap=30)
    b = _small(seed=4, depth=10, networks=12, channels=32, bootstrap=30)
    np.testing.assert_array_equal(a.measured_rate_se, b.measured_rate_se)
    assert a.bootstrap == 30 and a.bootstrap_groups == 12
    ens = a.ensemble
    assert ens.difference_groups is not None and ens.group_sizes is not None
    np.testing.assert_array_equal(ens.group_sizes, np.ones(12))
    assert ens.difference_mean is not None
    scale = np.abs(ens.difference_mean).max()
    np.testing.assert_allclose(
        ens.difference_groups.mean(axis=0), ens.difference_mean, rtol=0, atol=1e-12 * scale
    )
    monkeypatch.setattr(mode_check, "BOOTSTRAP_BYTES", 5 * 8 * 11 * 100)
    pooled = _small(seed=4, depth=10, networks=12, channels=32, bootstrap=30)
    assert pooled.bootstrap_groups == 5
    np.testing.assert_array_equal(pooled.measured_rate, a.measured_rate)
    with pytest.raises(MFTheoryError, match="bootstrap"):
        _small(bootstrap=1)


def test_groups_hold_whole_consecutive_networks() -> None:
    s = figure_s4_setup(1.0)
    kw = {"sigma_w2": s.sigma_w2, "sigma_b2": s.sigma_b2, "v": s.v, "image_shape": s.n}
    kw |= {"depth": 2, "channels": 8, "Sigma0": s.sigma0, "q_star": s.q_star, "c_star": s.c_star}
    each = simulate_ensemble(s.activation, networks=7, groups=7, **kw)
    three = simulate_ensemble(s.activation, networks=7, groups=3, **kw)
    assert three.group_sizes is not None and each.difference_groups is not None
    np.testing.assert_array_equal(three.group_sizes, [3, 2, 2])
    assert three.difference_groups is not None
    np.testing.assert_allclose(
        three.difference_groups[1], each.difference_groups[3:5].mean(axis=0), atol=1e-15
    )
    for bad in (1, 8):
        with pytest.raises(MFTheoryError, match="groups"):
            simulate_ensemble(s.activation, networks=7, groups=bad, **kw)


SEEDS = 200
#: Binomial standard deviation of a coverage share over SEEDS independent ensembles; the
#: tests allow 3 of them (a false alarm about 1 run in 700 per check).
_ALLOW = 3.0


def _band(p: float) -> tuple[float, float]:
    sd = math.sqrt(p * (1 - p) / SEEDS)
    return p - _ALLOW * sd, p + _ALLOW * sd


@pytest.mark.slow
def test_bootstrap_errors_cover_at_the_nominal_rate() -> None:
    """200 independent ensembles (seeds 0..199; 50 networks of 100 channels, Fig. S4's input,
    200 resamples each; about 1 min on a quiet machine, 5 on a loaded one): for the two most
    persistent modes, the share of ensembles whose measured rate lies within 1 (2) stated
    standard errors of the map's rate (same fit) is 68.3% (95.4%) within 3 binomial standard
    deviations (3.3 (1.5) points). Measured when written: 66.5% / 93.5% (f = 0) and
    68.0% / 95.0% (f = 1); with the window and weights held fixed in the resamples the
    2-se coverage of f = 0 was 91%, outside the band.

    Finite width: at 100 channels the mean of (measured - map) over the seeds is below 0.3
    standard errors (asserted), so it moves the coverage by < 2.5 points; the same coverage is
    also asserted around the ensembles' own large-sample mean (the average of the 200 rates),
    which has no finite-width bias."""
    rows: dict[int, list[tuple[float, float, float]]] = {0: [], 1: []}
    for seed in range(SEEDS):
        got = _small(seed=seed).mode_rows()
        for i, keep in rows.items():
            r = got[i]
            assert r["measured_rate"] is not None, (seed, r)
            keep.append((r["measured_rate"], r["measured_rate_se"], r["mean_field_rate"]))
    for i, keep in rows.items():
        rate, se, mf = np.array(keep).T
        assert abs(np.mean(rate - mf)) < 0.3 * np.mean(se), i
        for judge in (mf, np.mean(rate)):
            z = np.abs(rate - judge) / se
            for k, nominal in ((1, 0.6827), (2, 0.9545)):
                lo, hi = _band(nominal)
                share = float(np.mean(z < k))
                assert lo <= share <= hi, (i, k, share, (lo, hi))


def test_cli_budget_counts_the_bootstrap_records() -> None:
    from mftheory.cli import modes

    assert modes.BOOTSTRAP_BYTES == mode_check.BOOTSTRAP_BYTES

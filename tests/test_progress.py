"""Progress reports of long computations (issue 14): Monte Carlo ensembles and phase grids.

Each test records the ``progress(done, total)`` calls and checks that they increase, end at
``(total, total)`` and come at least ``PROGRESS_STEPS`` (20) times on a run of the default
size, once per unit on a smaller one. The numbers computed with progress reports are judged
against the same computation without them (the reports must not change a bit) and, for the
grid, against the pointwise solver ``fixed_point(method="pointwise")``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mftheory.cli.app import app
from mftheory.cnn.paper import figure_s4_setup
from mftheory.cnn.spatial import uniform_fixed_covariance
from mftheory.meanfield.fixed_points import fixed_point
from mftheory.meanfield.grid import PROGRESS_STEPS as GRID_STEPS
from mftheory.meanfield.grid import phase_grid
from mftheory.montecarlo.ensembles import PROGRESS_STEPS, simulate_ensemble

FIELDS = ("q_star", "c_star", "chi_1", "chi_c", "chi_q")


def recorder() -> tuple[list[tuple[int, int]], Any]:
    calls: list[tuple[int, int]] = []
    return calls, lambda done, total: calls.append((done, total))


def assert_moves(calls: list[tuple[int, int]], total: int, at_least: int) -> None:
    assert len(calls) >= at_least, calls
    assert all(t == total for _, t in calls)
    done = [d for d, _ in calls]
    assert done == sorted(done) and done[0] > 0 and done[-1] == total


# --------------------------------------------------------------------------------------------
# simulate / reproduce fig-s4: simulate_ensemble
# --------------------------------------------------------------------------------------------


def fig_s4_kwargs(networks: int) -> dict[str, Any]:
    """The Fig. S4 ensemble (reproduce fig-s4), narrow and shallow so that the test is quick:
    the number of reports depends on the networks only."""
    s = figure_s4_setup(1.0)
    fp = fixed_point("erf", sigma_w2=s.sigma_w2, sigma_b2=s.sigma_b2)
    star = uniform_fixed_covariance(float(fp.q_star), float(fp.c_star), s.n)
    return dict(
        act=s.activation,
        sigma_w2=s.sigma_w2,
        sigma_b2=s.sigma_b2,
        v=s.v,
        image_shape=s.n,
        depth=2,
        channels=8,
        networks=networks,
        Sigma0=s.sigma0,
        Sigma_star=star,
        seed=5,
    )


@pytest.mark.parametrize("networks", [400, 100])  # reproduce fig-s4's and simulate's defaults
def test_ensemble_reports_at_least_20_times_at_the_default_size(networks: int) -> None:
    kw = fig_s4_kwargs(networks)
    calls, progress = recorder()
    res = simulate_ensemble(progress=progress, **kw)
    assert PROGRESS_STEPS == 20
    assert_moves(calls, networks, PROGRESS_STEPS)
    # the reports change nothing: the chunk size never changes a bit of the result
    ref = simulate_ensemble(**kw)
    for name in ("mean", "sem", "difference_mean", "difference_sem"):
        np.testing.assert_array_equal(getattr(res, name), getattr(ref, name), err_msg=name)


def test_small_ensemble_reports_every_network() -> None:
    calls, progress = recorder()
    simulate_ensemble(progress=progress, **fig_s4_kwargs(7))
    assert calls == [(k, 7) for k in range(1, 8)]


def test_explicit_chunk_still_reports_per_chunk() -> None:
    calls, progress = recorder()
    simulate_ensemble(progress=progress, chunk=30, **fig_s4_kwargs(70))
    assert calls == [(30, 70), (60, 70), (70, 70)]


def test_ensemble_with_images_reports_at_least_20_times() -> None:
    images = np.random.default_rng(0).standard_normal((1, 2, 6))
    calls, progress = recorder()
    simulate_ensemble(
        "tanh",
        sigma_w2=1.5,
        sigma_b2=0.05,
        v=[0.25, 0.5, 0.25],
        image_shape=6,
        depth=3,
        channels=4,
        networks=45,
        images=images,
        progress=progress,
    )
    assert_moves(calls, 45, 20)


# --------------------------------------------------------------------------------------------
# phase-diagram: phase_grid
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("act", ["tanh", "erf"])
def test_phase_grid_reports_at_least_20_times(act: str) -> None:
    """200 rows (tanh: enough chaotic rows for the tensor interpolant of c*)."""
    w, b = np.linspace(0.5, 4.0, 40), np.linspace(0.01, 1.0, 200)
    calls, progress = recorder()
    g = phase_grid(act, sigma_w2=w, sigma_b2=b, progress=progress)
    assert GRID_STEPS == 20
    assert_moves(calls, 200, GRID_STEPS)
    # the steps change nothing: one chunk, one step gives the same bits
    whole = phase_grid(act, sigma_w2=w, sigma_b2=b, chunk_rows=200)
    for name in (*FIELDS, "phase"):
        np.testing.assert_array_equal(getattr(g, name), getattr(whole, name), err_msg=name)
    # and the pointwise solver agrees on a sample of rows (every phase of the grid)
    rows = np.arange(0, 200, 23)
    ref = fixed_point(act, sigma_w2=w[None, :], sigma_b2=b[rows, None], method="pointwise")
    np.testing.assert_array_equal(g.phase[rows], ref.phase)
    for name in FIELDS:
        np.testing.assert_allclose(
            getattr(g, name)[rows], getattr(ref, name), rtol=1e-8, atol=1e-12, err_msg=name
        )


def test_phase_grid_with_fewer_rows_reports_every_row() -> None:
    calls, progress = recorder()
    phase_grid(
        "erf", sigma_w2=np.linspace(0.5, 3, 9), sigma_b2=np.linspace(0, 1, 5), progress=progress
    )
    assert [d for d, _ in calls][-1] == 5 and len(calls) == 5
    assert_moves(calls, 5, 5)


def test_phase_grid_with_divergent_points_keeps_them() -> None:
    """Points whose q* diverges (ReLU above 2) stay NaN/inf while c* is filled for chaos."""
    w, b = np.linspace(0.5, 3.0, 11), np.linspace(0.0, 1.0, 30)
    calls, progress = recorder()
    g = phase_grid("relu", sigma_w2=w, sigma_b2=b, progress=progress)
    assert_moves(calls, 30, 20)
    ref = fixed_point("relu", sigma_w2=w[None, :], sigma_b2=b[:, None], method="pointwise")
    np.testing.assert_array_equal(g.phase, ref.phase)
    np.testing.assert_allclose(g.q_star, ref.q_star, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# The CLI draws the bar on an interactive stderr only
# --------------------------------------------------------------------------------------------

FIG_S4_SMALL = ["reproduce", "fig-s4", "--networks", "40", "--depth", "3", "--channels", "8"]


def test_reproduce_shows_a_progress_bar_on_a_terminal_stderr() -> None:
    runner = CliRunner()
    env = {"NO_COLOR": "1", "COLUMNS": "200", "FORCE_COLOR": "1"}
    result = runner.invoke(app, [*FIG_S4_SMALL, "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    assert "simulating networks" in result.stderr
    plain = runner.invoke(app, [*FIG_S4_SMALL, "--format", "json"], env={"NO_COLOR": "1"})
    assert plain.exit_code == 0 and "simulating" not in plain.stderr
    quiet = runner.invoke(app, [*FIG_S4_SMALL, "--format", "json", "--quiet"], env=env)
    assert quiet.exit_code == 0 and "simulating" not in quiet.stderr


def test_kernel_says_what_it_is_doing() -> None:
    runner = CliRunner()
    args = ["kernel", "--init", "orthogonal", "--cin", "4", "--cout", "4", "--format", "json"]
    tty = runner.invoke(app, args, env={"NO_COLOR": "1", "COLUMNS": "200", "FORCE_COLOR": "1"})
    assert tty.exit_code == 0, tty.output
    assert "checking the operator's singular values" in tty.stderr
    quiet = runner.invoke(app, [*args, "--quiet"], env={"NO_COLOR": "1"})
    assert quiet.exit_code == 0 and quiet.stderr == ""

"""``mftheory spectrum`` and ``mftheory isometry`` through typer's test runner.

References are independent of :mod:`mftheory.spectrum.density`: Marchenko-Pastur (a linear network
of depth 1 with Gaussian weights) integrated with scipy's adaptive quadrature, the exact
moments of a product of Wishart matrices, the ReLU atom at 0 (half of phi' is 0), and the
looks-linear network (exactly orthogonal at initialisation).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import integrate, optimize
from typer.testing import CliRunner

from mftheory.cli import app
from mftheory.cli.render import format_log10

runner = CliRunner()


def _json(args: list[str]) -> dict[str, Any]:
    res = runner.invoke(app, [*args, "--format", "json", "--quiet"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _mp_quantile(p: float) -> float:
    """Quantile of Marchenko-Pastur of ratio 1 (density sqrt(x (4 - x)) / (2 pi x) on (0, 4))."""

    def cdf(x: float) -> float:
        val, _ = integrate.quad(lambda s: math.sqrt(s * (4 - s)) / (2 * math.pi * s), 0, x)
        return val

    return optimize.brentq(lambda x: cdf(x) - p, 1e-12, 4.0, xtol=1e-14)


def test_spectrum_table_default() -> None:
    res = runner.invoke(app, ["spectrum", "--depth", "8"])
    assert res.exit_code == 0, res.output
    assert "quantile 0.95 of x" in res.stdout
    assert "variance / mean^2" in res.stdout


def test_spectrum_json_marchenko_pastur() -> None:
    # Linear, depth 1, Gaussian weights: J J^T is Wishart, x ~ Marchenko-Pastur of ratio 1.
    doc = _json(
        ["spectrum", "--act", "linear", "--sigma-b2", "0", "--sigma-w2", "1", "--depth", "1",
         "--weights", "gaussian"]
    )  # fmt: skip
    assert doc["command"] == "spectrum" and doc["version"]
    assert doc["mean"] == pytest.approx(1.0, rel=1e-12)
    assert doc["variance"] == pytest.approx(1.0, rel=1e-12)  # MP(1): E x^2 = 2
    assert set(doc["quantiles"]) == {"0.05", "0.5", "0.95"}
    # 2e-3 relative: the density is solved on 1000 points and its CDF integrated by the
    # trapezoid rule from the top (square-root edge at 4; x^(-1/2) at 0).
    for key, value in doc["quantiles"].items():
        assert value == pytest.approx(_mp_quantile(float(key)), rel=2e-3), key
    dens = doc["density"]
    assert len(dens["x"]) == len(dens["p"]) > 100
    x, p = np.array(dens["x"]), np.array(dens["p"])
    inner = (x > 0.05) & (x < 3.9)
    exact = np.sqrt(x[inner] * (4 - x[inner])) / (2 * math.pi * x[inner])
    np.testing.assert_allclose(p[inner], exact, rtol=1e-4)  # the solve is to 1e-11


def test_spectrum_linear_orthogonal_is_a_point_mass() -> None:
    doc = _json(
        ["spectrum", "--act", "linear", "--sigma-b2", "0", "--sigma-w2", "1.1", "--depth", "5"]
    )
    assert doc["atoms"] == [{"x": pytest.approx(1.1**5, rel=1e-12), "mass": 1.0}]
    assert doc["variance"] == 0.0
    for value in doc["quantiles"].values():
        assert value == pytest.approx(1.1**5, rel=1e-12)


def test_spectrum_relu_he_atom_and_moments() -> None:
    # ReLU with sigma_w2 = 2: half of phi' is 0 (an atom of mass 1/2 at 0), mean 1, and the
    # normalised variance L (mu_2/mu_1^2 - 1 + 1) = L (2 - 1 + 1) = 2L for Gaussian weights.
    doc = _json(["spectrum", "--act", "relu", "--sigma-b2", "0", "--depth", "6",
                 "--weights", "gaussian"])  # fmt: skip
    assert doc["sigma_w2"] == pytest.approx(2.0)
    assert doc["atoms"][0]["x"] == 0.0 and doc["atoms"][0]["mass"] == pytest.approx(0.5)
    assert doc["mean"] == pytest.approx(1.0, rel=1e-12)
    assert doc["variance"] == pytest.approx(12.0, rel=1e-12)
    assert doc["quantiles"]["0.05"] == 0.0
    assert doc["checks"]["mass"] == pytest.approx(1.0, abs=1e-3)


def test_spectrum_deep_gaussian_underflow_is_reported_not_wrong() -> None:
    doc = _json(["spectrum", "--depth", "300", "--weights", "gaussian"])
    assert doc["log10_quantiles"]["0.05"] < -300  # below the float range ...
    assert doc["quantiles"]["0.05"] == 0.0  # ... so 0.0 as a float, with the log exact
    assert all(math.isfinite(v) and v > 0 for v in doc["density"]["x"])
    res = runner.invoke(app, ["spectrum", "--depth", "300", "--weights", "gaussian", "-q"])
    assert res.exit_code == 0
    # The table prints the quantile from its logarithm.
    assert format_log10(doc["log10_quantiles"]["0.05"]) in res.stdout


def test_format_log10() -> None:
    assert format_log10(-math.inf) == "0"
    assert format_log10(math.log10(2.5)) == "2.5"
    assert format_log10(-1791.5) == "3.162e-1792"
    assert format_log10(400.0) == "1.000e+400"


def test_spectrum_empirical_column(tmp_path: Path) -> None:
    out = tmp_path / "spec.png"
    res = runner.invoke(
        app,
        ["spectrum", "--depth", "3", "--empirical", "64", "--draws", "2", "--format", "table",
         "-o", str(out), "-q"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "sampled (N = 64, 2 draw(s))" in res.stdout
    assert out.stat().st_size > 10_000
    doc = _json(["spectrum", "--depth", "3", "--empirical", "64"])
    assert doc["empirical"]["width"] == 64
    # Mean of a sampled net: 1 within a loose band (N = 64, one draw, depth 3).
    assert doc["empirical"]["mean"] == pytest.approx(1.0, abs=0.3)


def test_spectrum_csv_is_the_density(tmp_path: Path) -> None:
    out = tmp_path / "d.csv"
    res = runner.invoke(app, ["spectrum", "--depth", "4", "--points", "200", "-o", str(out)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0] == "log10_x,x,p,p_log10"
    assert len(lines) == 201


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--depth", "0"], "--depth"),
        (["--depth", "1.5"], "--depth"),
        (["--weights", "uniform"], "--weights"),
        (["--sigma-b2", "-1"], "sigma-b2"),
        (["--sigma-b2", "nan"], "sigma-b2"),
        (["--act", "nosuch"], "nosuch"),
        (["--depth", "1"], "depth 1 with orthogonal"),
        (["--empirical", "1"], "--empirical"),
        (["--sigma-w2", "3", "--act", "relu", "--sigma-b2", "0.1"], ""),  # fine: homogeneous
        (["-o", "x.txt"], "suffix"),
    ],
)
def test_spectrum_bad_input(args: list[str], match: str) -> None:
    res = runner.invoke(app, ["spectrum", *args])
    if not match:
        assert res.exit_code == 0, res.output
        return
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert err.startswith("Error:") and len(err.splitlines()) == 1
    assert match in err
    assert "Traceback" not in res.output


def test_spectrum_no_finite_q_star() -> None:
    # tanh far in the chaotic phase still has a finite q*; erf at a huge sigma_b2 too. A
    # non-homogeneous activation without finite q*: softplus above its boundary sigma_w2 = 2.
    res = runner.invoke(app, ["spectrum", "--act", "softplus", "--sigma-w2", "3", "--depth", "4"])
    assert res.exit_code == 2
    assert "no finite q*" in res.stderr


def test_isometry_table_and_json() -> None:
    res = runner.invoke(app, ["isometry", "--depth", "50"])
    assert res.exit_code == 0, res.output
    assert "Delta-Orthogonal" in res.stdout and "looks-linear" in res.stdout
    doc = _json(["isometry", "--depth", "50"])
    rows = {r["name"]: r for r in doc["rows"]}
    assert list(rows) == [
        "gaussian",
        "orthogonal",
        "delta-orthogonal-cnn",
        "relu-he",
        "relu-looks-linear",
    ]
    # Every row at criticality: mean s^2 = 1.
    for row in rows.values():
        assert row["mean"] == pytest.approx(1.0, rel=1e-9)
    assert rows["relu-looks-linear"]["spread"] == 1.0 and rows["relu-looks-linear"]["isometric"]
    assert rows["relu-he"]["zero_share"] == pytest.approx(0.5) and not rows["relu-he"]["isometric"]
    assert rows["relu-he"]["spread"] is None  # infinite: the 5th percentile is 0
    # Gaussian tanh: normalised variance ~ L at small q*, spread astronomically large.
    assert not rows["gaussian"]["isometric"] and rows["gaussian"]["spread"] > 1e10
    # Orthogonal tanh at sigma_b2 = 1e-5: variance L (mu_2/mu_1^2 - 1), small: isometric.
    assert rows["orthogonal"]["isometric"] and rows["orthogonal"]["spread"] < 10
    assert rows["delta-orthogonal-cnn"]["spread"] == rows["orthogonal"]["spread"]


def test_isometry_threshold_and_bad_input() -> None:
    doc = _json(["isometry", "--depth", "50", "--max-spread", "1.5"])
    rows = {r["name"]: r for r in doc["rows"]}
    assert not rows["orthogonal"]["isometric"]  # spread ~2 at depth 50 > 1.5
    assert rows["relu-looks-linear"]["isometric"]
    for args, match in (
        (["--max-spread", "1"], "--max-spread"),
        (["--depth", "1"], "--depth"),
        (["--sigma-b2", "-2"], "sigma-b2"),
    ):
        res = runner.invoke(app, ["isometry", *args])
        assert res.exit_code == 2 and match in res.stderr, res.output

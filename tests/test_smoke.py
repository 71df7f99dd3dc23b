"""Smoke tests: one short invocation of every ``mftheory`` command, exit 0 and sane output.

Self-contained on purpose (no conftest, no helpers from other test files, no file of the
repository): ``.ci/floors`` copies this file into an empty folder and runs it against the built
wheel installed at the lowest declared dependency versions, so that the installed package, not
the source tree, is what runs. In the normal suite it runs against the checkout.

The numbers checked are the closed forms or the theory's own identities (``chi_1 = 1`` on the
critical line, ``c* = 1`` in the ordered phase, singular values 1 of an orthogonal kernel),
never values recorded from an earlier run.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import mftheory
from mftheory.cli import app

ENV = {"NO_COLOR": "1", "COLUMNS": "200", "TERM": "dumb"}


def _runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout (click < 8.2 mixes them by default)."""
    try:
        return CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click >= 8.2: always apart
        return CliRunner()


def run(*args: str) -> Any:
    """Invoke ``mftheory ARGS`` in-process; exit code 0 or the test fails with the output."""
    result = _runner().invoke(app, list(args), env=ENV)
    assert result.exit_code == 0, (
        f"mftheory {' '.join(args)} exited {result.exit_code}\nstdout: {result.stdout}\n"
        f"stderr: {_stderr(result)}\nexception: {result.exception!r}"
    )
    return result


def _stderr(result: Any) -> str:
    try:
        return str(result.stderr)
    except ValueError:  # click < 8.2 with mixed output
        return ""


def run_json(*args: str) -> dict[str, Any]:
    data = json.loads(run(*args, "--format", "json").stdout)
    assert data["version"] == mftheory.__version__
    return data


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# erf has closed forms: on its critical line at sigma_b2 = 0, sigma_w2 = pi / 4 (phi'(0)^2 =
# 4 / pi), and in the ordered phase c* = 1.
def test_critical() -> None:
    out = run("critical", "--act", "tanh", "--sigma-b2", "0.05").stdout
    assert "Critical line" in out and "tanh" in out and "ok" in out
    data = run_json("critical", "--act", "erf", "--sigma-b2", "0")
    assert math.isclose(data["sigma_w2"], math.pi / 4, rel_tol=1e-8) and data["status"] == "ok"


def test_fixed_point() -> None:
    data = run_json("fixed-point", "--act", "tanh", "--sigma-w2", "1.5", "--sigma-b2", "0.05")
    assert data["phase"] == "ordered" and data["c_star"] == 1.0
    assert math.isclose(data["chi_c"], data["chi_1"], rel_tol=1e-12)
    q = data["q_star"]  # q* = sigma_w2 E[tanh(sqrt(q*) z)^2] + sigma_b2, checked by quadrature
    z, w = np.polynomial.hermite_e.hermegauss(200)
    q_map = 1.5 * float(np.sum(w * np.tanh(np.sqrt(q) * z) ** 2)) / math.sqrt(2 * math.pi)
    assert math.isclose(q_map + 0.05, q, rel_tol=1e-8)


def test_depthscales() -> None:
    data = run_json("depthscales", "--v", "0.025,0.95,0.025", "--quiet")
    rates = sorted((m["abs_lambda"] for m in data["modes"]), reverse=True)
    # lambda_f = 0.95 + 0.05 cos(2 pi f / 10) for the 10-pixel circular kernel
    expect = sorted((0.95 + 0.05 * math.cos(2 * math.pi * f / 10) for f in range(10)), reverse=True)
    np.testing.assert_allclose(rates, expect, rtol=0, atol=1e-12)


def test_phase_diagram_table_json_and_png(tmp_path: Path) -> None:
    grid = ("--sigma-w2", "1:3:5", "--sigma-b2", "0:0.1:3")
    assert "Phase diagram" in run("phase-diagram", *grid).stdout
    data = run_json("phase-diagram", *grid)
    assert data["sigma_w2"] == [1.0, 1.5, 2.0, 2.5, 3.0]
    png = tmp_path / "phase.png"
    run("phase-diagram", "--sigma-w2", "1:3:12", "--sigma-b2", "0:0.1:6", "-o", str(png))
    assert _is_png(png)


def test_propagate_sample_image(tmp_path: Path) -> None:
    data = run_json("propagate", "--image", "sample:digit0", "--depth", "5", "--quiet")
    assert data["shape"] == [8, 8] and data["images"] == ["sample:digit0"]
    png = tmp_path / "modes.png"
    run("propagate", "--image", "sample:digit0", "--depth", "5", "-o", str(png), "--quiet")
    assert _is_png(png)


def test_simulate_tiny() -> None:
    data = run_json(
        "simulate", "--image", "sample:digit0", "--depth", "3", "--channels", "8",
        "--networks", "2", "--quiet",
    )  # fmt: skip
    assert data["settings"]["channels"] == 8 and data["settings"]["networks"] == 2


def test_reproduce_fig_4b() -> None:
    data = run_json("reproduce", "fig-4b")
    assert data["figure"] == "fig-4b" and data["n"] == 8
    assert data["v"]["gs0"][1][1] == 1.0


def test_diagnose() -> None:
    data = run_json("diagnose", "--act", "tanh", "--gain", "5/3", "--quiet")
    assert data["phase"] == "chaotic"  # chi_1 > 1: tanh is critical at sigma_w2 = 1 with no bias


def test_kernel(tmp_path: Path) -> None:
    path = tmp_path / "k.npy"
    run("kernel", "--init", "delta-orthogonal", "--kernel", "3", "--cin", "4", "--cout", "4",
        "--seed", "0", "-o", str(path))  # fmt: skip
    k = np.load(path)
    assert k.shape == (3, 3, 4, 4)
    # Delta-orthogonal: only the centre tap, an orthogonal matrix
    np.testing.assert_allclose(k[1, 1] @ k[1, 1].T, np.eye(4), atol=1e-12)
    assert np.count_nonzero(k) == np.count_nonzero(k[1, 1])


def test_spectrum() -> None:
    data = run_json("spectrum", "--depth", "10", "--points", "200", "--quiet")
    assert data["depth"] == 10
    assert data["chi_1"] == pytest.approx(1.0, abs=1e-8)  # the critical sigma_w2 by default


def test_isometry() -> None:
    data = run_json("isometry", "--depth", "10")
    verdicts = {row["name"]: row["isometric"] for row in data["rows"]}
    # ReLU with He's Gaussian weights kills half the units (an atom at 0): never isometric;
    # looks-linear ReLU with orthogonal weights is an orthogonal product: all singular values 1
    assert verdicts["relu-he"] is False and verdicts["relu-looks-linear"] is True


def test_validate_help() -> None:
    out = run("validate", "--help").stdout
    assert "trainability" in out


def test_version_and_completion_options() -> None:
    assert run("-V").stdout.strip() == f"mftheory {mftheory.__version__}"
    out = run("--help").stdout
    assert "--install-completion" in out and "--show-completion" in out


def test_console_script_and_python_m(tmp_path: Path) -> None:
    """The installed entry points start (in a folder outside any checkout)."""
    env = {**os.environ, **ENV}
    commands = [[sys.executable, "-m", "mftheory", "--version"]]
    script = shutil.which("mftheory", path=str(Path(sys.executable).parent))
    if script is not None:
        commands.append([script, "-V"])
    for command in commands:
        out = subprocess.run(
            command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"mftheory {mftheory.__version__}"

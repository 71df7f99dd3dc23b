"""The ``mftheory`` command line, through typer's test runner.

These tests check the wiring (every command in every format, the JSON contract of issue 2,
both forms of each scale, one-line errors with exit code 2, files by suffix); the numbers
themselves are checked against references in the core's tests.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import slow_except
from typer.testing import CliRunner

import mftheory
from mftheory.cli import app
from mftheory.cnn.modes import mode_table, normalize_variance_vector, variance_vector
from mftheory.meanfield.critical import critical_point
from mftheory.meanfield.fixed_points import fixed_point

runner = CliRunner()

#: A small phase-diagram grid, fast enough for every test.
SMALL_GRID = ["--sigma-w2", "0.5:3:12", "--sigma-b2", "0:1:8"]

#: One cheap, valid invocation of each command.
COMMANDS: dict[str, list[str]] = {
    "critical": ["critical", "--sigma-b2", "0.05"],
    "fixed-point": ["fixed-point", "--sigma-w2", "1.5", "--sigma-b2", "0.05"],
    "depthscales": ["depthscales", "--v", "0.025,0.95,0.025"],
    "phase-diagram": ["phase-diagram", *SMALL_GRID],
}

#: Fields of the JSON contract (issue 2), plus the ones every output carries.
COMMON_FIELDS = {"version", "settings", "activation", "activation_params"}
CONTRACT_FIELDS: dict[str, set[str]] = {
    "critical": {"sigma_b2", "sigma_w2", "sigma_w", "q_star", "chi_q", "xi_q", "sigma_b"},
    "fixed-point": {
        "sigma_w2",
        "sigma_b2",
        "q_star",
        "c_star",
        "chi_1",
        "chi_c",
        "chi_q",
        "xi_c",
        "xi_q",
        "phase",
        "sigma_w",
        "sigma_b",
        "xi_grad",
    },
    "depthscales": {"sigma_w2", "sigma_b2", "n", "v", "chi_c", "xi_c", "modes"},
    "phase-diagram": {"sigma_w2", "sigma_b2", "q_star", "c_star", "chi_1", "chi_c", "xi_c"},
}


def _no_constants(token: str) -> Any:
    raise AssertionError(f"non-strict JSON token {token}")


def strict_json(text: str) -> dict[str, Any]:
    """Parse JSON, failing on NaN / Infinity tokens."""
    data = json.loads(text, parse_constant=_no_constants)
    assert isinstance(data, dict)
    return data


def run(*args: str) -> Any:
    """Invoke the app; the result has .exit_code, .stdout, .stderr, .output."""
    return runner.invoke(app, list(args), env={"NO_COLOR": "1", "COLUMNS": "200"})


def run_json(*args: str) -> dict[str, Any]:
    result = run(*args, "--format", "json")
    assert result.exit_code == 0, result.output
    return strict_json(result.stdout)


def assert_one_line_error(result: Any, *, code: int = 2, mentions: str = "") -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert mentions in lines[0]


# --- version and help -----------------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"mftheory {mftheory.__version__}"


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_an_example(command: str) -> None:
    result = run(*([command] if command else []), "--help")
    assert result.exit_code == 0, result.output
    assert "Example" in result.stdout
    assert "mftheory " in result.stdout.split("Example", 1)[1]


def test_no_arguments_shows_help() -> None:
    result = run()
    assert "Commands" in result.output
    assert "Traceback" not in result.output


# --- every command in every format ----------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS)
def test_table(command: str) -> None:
    result = run(*COMMANDS[command])
    assert result.exit_code == 0, result.output
    assert "sigma_b" in result.stdout
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_json_is_strict_and_has_the_contract_fields(command: str) -> None:
    data = run_json(*COMMANDS[command])
    missing = (COMMON_FIELDS | CONTRACT_FIELDS[command]) - set(data)
    assert not missing
    assert data["version"] == mftheory.__version__
    assert {"z_max", "panels", "nodes_per_panel"} <= set(data["settings"])
    assert data["activation"] == "tanh"


@pytest.mark.parametrize("command", COMMANDS)
def test_csv(command: str) -> None:
    result = run(*COMMANDS[command], "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows
    assert "sigma_b2" in rows[0]
    assert "sigma_w2" in rows[0] or "critical_sigma_w2" in rows[0]
    for row in rows:
        assert None not in row.values()  # no ragged lines
        # issue 14: an infinity is written as inf (test_csv_inf.py); NaN stays an empty field
        assert not any(v.lower() in ("nan", "-nan", "infinity") for v in row.values())


def test_stdout_is_only_data_and_notes_go_to_stderr() -> None:
    result = run("depthscales", "--v", "1,2,1", "--format", "json")
    assert result.exit_code == 0, result.output
    strict_json(result.stdout)
    assert "rescaled" in result.stderr
    assert "critical" in result.stderr


def test_quiet_silences_notes() -> None:
    result = run("depthscales", "--v", "1,2,1", "--format", "json", "--quiet")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


# --- both forms of each scale ---------------------------------------------------------------


def test_fixed_point_sigma_w_equals_sigma_w2() -> None:
    a = run_json("fixed-point", "--sigma-w", "1.5", "--sigma-b2", "0.05")
    b = run_json("fixed-point", "--sigma-w2", "2.25", "--sigma-b2", "0.05")
    assert a == b
    assert a["sigma_w"] == 1.5 and a["sigma_w2"] == 2.25


def test_fixed_point_sigma_b_equals_sigma_b2() -> None:
    a = run_json("fixed-point", "--sigma-w2", "1.5", "--sigma-b", "0.5")
    b = run_json("fixed-point", "--sigma-w2", "1.5", "--sigma-b2", "0.25")
    assert a == b
    assert a["sigma_b"] == 0.5 and a["sigma_b2"] == 0.25


def test_critical_sigma_b_equals_sigma_b2() -> None:
    assert run_json("critical", "--sigma-b", "0.5") == run_json("critical", "--sigma-b2", "0.25")


def test_critical_range_gives_points() -> None:
    data = run_json("critical", "--sigma-b2", "0:2:5")
    assert [p["sigma_b2"] for p in data["points"]] == [0.0, 0.5, 1.0, 1.5, 2.0]
    for p in data["points"]:
        assert {"activation", "sigma_b2", "sigma_w2", "sigma_w", "q_star", "chi_q", "xi_q"} <= set(
            p
        )
    table = run("critical", "--sigma-b2", "0:2:5")
    assert table.exit_code == 0
    assert len([ln for ln in table.stdout.splitlines() if ln.strip()[:1].isdigit()]) == 5


def test_critical_sigma_b_range_is_squared() -> None:
    data = run_json("critical", "--sigma-b", "0:1:3")
    assert [p["sigma_b2"] for p in data["points"]] == [0.0, 0.25, 1.0]
    assert [p["sigma_b"] for p in data["points"]] == [0.0, 0.5, 1.0]


# --- values are the core's ------------------------------------------------------------------


def test_fixed_point_values_are_the_core_values() -> None:
    data = run_json("fixed-point", "--act", "erf", "--sigma-w2", "2.25", "--sigma-b2", "0.25")
    fp = fixed_point("erf", sigma_w2=2.25, sigma_b2=0.25)
    for key in ("q_star", "c_star", "chi_1", "chi_c", "chi_q", "xi_c", "xi_q", "xi_grad"):
        assert data[key] == float(getattr(fp, key)), key
    assert data["phase"] == str(fp.phase) == "chaotic"


def test_critical_values_are_the_core_values() -> None:
    data = run_json("critical", "--sigma-b2", "0.05")
    cp = critical_point("tanh", sigma_b2=0.05)
    for key in ("sigma_w2", "q_star", "chi_q", "xi_q"):
        assert data[key] == float(getattr(cp, key)), key
    assert data["sigma_w"] == math.sqrt(data["sigma_w2"])
    assert data["xi_grad"] is None  # chi_1 = 1 on the critical line: infinite
    assert abs(data["sigma_w2"] - 1.76) < 0.01  # Schoenholz et al. 2017


def test_depthscales_values_are_the_core_values() -> None:
    args = ["--v", "0.025,0.95,0.025", "--act", "erf", "--sigma-w", "1.5", "--sigma-b", "0.5"]
    data = run_json("depthscales", *args)
    fp = fixed_point("erf", sigma_w2=2.25, sigma_b2=0.25)
    assert data["chi_c"] == float(fp.chi_c)
    assert data["xi_c"] == float(fp.xi_c)
    assert data["sigma_w2_source"] == "given"
    assert data["n"] == 10 and data["v"] == [0.025, 0.95, 0.025]
    table = mode_table([0.025, 0.95, 0.025], 10, chi_c=float(fp.chi_c), chi_q=float(fp.chi_q))
    assert len(data["modes"]) == 10
    for mode, row in zip(data["modes"], table.as_rows(), strict=True):
        assert mode["frequency"] == row["frequency"]
        assert mode["lambda"] == row["lambda"]
        assert mode["rate"] == row["rate"]
        assert mode["xi"] == row["xi"]
    assert data["modes"][0]["frequency"] == [0] and data["modes"][0]["lambda"] == 1.0
    assert math.isclose(data["modes"][0]["xi"], data["xi_c"], rel_tol=1e-12)


def test_depthscales_uses_the_critical_weight_when_none_is_given() -> None:
    result = run("depthscales", "--v", "delta", "--sigma-b2", "0.05", "--format", "json")
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["sigma_w2_source"] == "critical"
    assert data["sigma_w2"] == float(critical_point("tanh", sigma_b2=0.05).sigma_w2)
    assert "critical sigma_w2" in result.stderr
    assert all(m["lambda"] == 1.0 for m in data["modes"])  # delta: every lambda_f = 1


def test_depthscales_rescales_v_and_says_so() -> None:
    result = run("depthscales", "--v", "1,2,1", "--sigma-w2", "1.5", "--format", "json")
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["v"] == [0.25, 0.5, 0.25]
    assert data["v_sum_given"] == 4.0
    assert "v sums to 4, not 1; rescaled to sum to 1" in result.stderr


def test_depthscales_2d_preset() -> None:
    data = run_json("depthscales", "--v", "gs2", "--dim", "2", "--sigma-w2", "1.5")
    assert data["n"] == 8 and data["dim"] == 2 and data["kernel"] == [3, 3]
    assert len(data["modes"]) == 64
    assert all(len(m["frequency"]) == 2 for m in data["modes"])
    expected, _ = normalize_variance_vector(variance_vector("gs2", kernel=3, dim=2))
    assert np.allclose(data["v"], expected, rtol=0, atol=1e-15)
    rows = run("depthscales", "--v", "0,1,0;1,4,1;0,1,0", "--sigma-w2", "1.5", "--format", "csv")
    assert rows.exit_code == 0, rows.output
    header = rows.stdout.splitlines()[0].split(",")
    assert header[:2] == ["frequency_1", "frequency_2"]


def test_phase_diagram_json_grid_is_the_core_grid() -> None:
    data = run_json("phase-diagram", "--act", "erf", *SMALL_GRID)
    w = np.linspace(0.5, 3, 12)
    b = np.linspace(0, 1, 8)
    assert data["sigma_w2"] == w.tolist() and data["sigma_b2"] == b.tolist()
    fp = fixed_point("erf", sigma_w2=w[None, :], sigma_b2=b[:, None])
    for key in ("q_star", "c_star", "chi_1", "chi_c", "xi_c"):
        grid = np.array([[np.nan if x is None else x for x in row] for row in data[key]])
        assert grid.shape == (8, 12)  # B rows of W values
        np.testing.assert_array_equal(grid, np.asarray(getattr(fp, key)))
    assert np.array(data["phase"]).shape == (8, 12)


# --- activations ----------------------------------------------------------------------------


def test_expression_activation_matches_the_named_one() -> None:
    named = run_json("fixed-point", "--act", "swish", "--sigma-w2", "2", "--sigma-b2", "0.1")
    expr = run_json("fixed-point", "--act", "x*sigmoid(x)", "--sigma-w2", "2", "--sigma-b2", "0.1")
    assert expr["activation"] == "x*sigmoid(x)"
    assert math.isclose(expr["q_star"], named["q_star"], rel_tol=1e-9)


def test_activation_parameters_are_recorded() -> None:
    data = run_json(
        "fixed-point", "--act", "leaky_relu", "--negative-slope", "0.2", "--sigma-w2", "1.5"
    )
    assert data["activation_params"] == {"negative_slope": 0.2}
    assert data["activation"] == "leaky_relu(negative_slope=0.2)"


def test_unused_activation_parameter_is_noted() -> None:
    result = run("fixed-point", "--act", "tanh", "--alpha", "2", "--sigma-w2", "1.5")
    assert result.exit_code == 0
    assert "--alpha applies to elu only" in result.stderr


# --- divergent points are results, not errors -----------------------------------------------


def test_divergent_point_exits_0_with_nulls() -> None:
    result = run("fixed-point", "--act", "relu", "--sigma-w2", "3", "--format", "json")
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["phase"] == "divergent"
    assert data["q_star"] is None and data["c_star"] is None and data["xi_c"] is None
    assert "diverges" in result.stderr
    table = run("fixed-point", "--act", "relu", "--sigma-w2", "3")
    assert table.exit_code == 0 and "divergent" in table.stdout


def test_divergent_depthscales_has_null_rates() -> None:
    result = run("depthscales", "--act", "relu", "--sigma-w2", "3", "--format", "json")
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["phase"] == "divergent"
    assert all(m["rate"] is None and m["xi"] is None for m in data["modes"])


def test_critical_on_the_divergence_boundary_is_null() -> None:
    result = run("critical", "--act", "relu", "--sigma-b2", "0.5", "--format", "json")
    assert result.exit_code == 0, result.output
    data = strict_json(result.stdout)
    assert data["sigma_w2"] == 2.0 and data["q_star"] is None
    assert "divergent" in result.stderr


# --- bad input: one line, exit code 2 -------------------------------------------------------

FP = ["fixed-point", "--sigma-w2", "1.5"]
BAD_INPUT: list[tuple[list[str], str]] = [
    (["fixed-point", "--sigma-w2", "-1"], "'-1'"),
    (["fixed-point", "--sigma-w", "-1"], "'-1'"),
    ([*FP, "--sigma-b2", "-0.1"], "'-0.1'"),
    (["fixed-point", "--sigma-w2", "nan"], "'nan'"),
    (["fixed-point", "--sigma-w2", "inf"], "'inf'"),
    (["fixed-point", "--sigma-w2", "abc"], "'abc'"),
    (["fixed-point", "--sigma-b2", "0.05"], "--sigma-w"),
    (["fixed-point", "--sigma-w", "1", "--sigma-w2", "1"], "not both"),
    ([*FP, "--sigma-b", "0.1", "--sigma-b2", "0.01"], "give --sigma-b or --sigma-b2, not both"),
    ([*FP, "--sigma-b2", "0:1:3"], "'0:1:3'"),
    ([*FP, "--act", "nosuch"], "'nosuch'"),
    ([*FP, "--act", "__import__('os')"], "__import__"),
    ([*FP, "--act", "x**"], "x**"),
    ([*FP, "--act", "leaky_relu", "--negative-slope", "nan"], "--negative-slope"),
    ([*FP, "--act", "elu", "--alpha", "inf"], "'inf'"),
    ([*FP, "--negative-slope", "abc"], "'abc'"),
    ([*FP, "--q0", "-1"], "-1"),
    ([*FP, "--format", "xml"], "'xml'"),
    ([*FP, "--no-such-option"], "--no-such-option"),
    ([*FP, "-o", "out.txt"], "out.txt"),
    ([*FP, "-o", "figure.png"], "figure.png"),
    (["critical", "--sigma-b2", "-1"], "'-1'"),
    (["critical", "--sigma-b2", "1:0:5"], "'1:0:5'"),
    (["critical", "--sigma-b2", "0:1:0"], "'0:1:0'"),
    (["critical", "--sigma-b2", "0:1:x"], "'x'"),
    (["critical", "--sigma-b2", "0:1:2.5"], "'2.5'"),
    (["critical", "--sigma-b2", "0:1"], "'0:1'"),
    (["critical", "--sigma-b2", "0:inf:3"], "'inf'"),
    (["critical", "--sigma-b2", "0:1:1"], "'0:1:1'"),
    (["critical", "--sigma-b", "0:1:5", "--sigma-b2", "0:1:5"], "not both"),
    (["depthscales", "--v", "0.2,abc"], "'abc'"),
    (["depthscales", "--v", "0.2,-0.1,0.9"], "-0.1"),
    (["depthscales", "--v", "0.5,0.5"], "even"),
    (["depthscales", "--v", "1,2,1;1,2"], "1,2,1;1,2"),
    (["depthscales", "--v", "0,0,0"], "zero"),
    (["depthscales", "--v", "nan,1,0"], "nan"),
    (["depthscales", "--v", "nosuch"], "'nosuch'"),
    (["depthscales", "--v", "gs2", "--kernel", "4"], "4"),
    (["depthscales", "--v", "0.1,0.8,0.1", "--kernel", "5"], "--kernel 5"),
    (["depthscales", "--v", "0.1,0.8,0.1", "--dim", "2"], "--dim 2"),
    (["depthscales", "--dim", "3"], "'3'"),
    (["depthscales", "--n", "0"], "'0'"),
    (["depthscales", "--n", "abc"], "'abc'"),
    (["depthscales", "--kernel", "2.5"], "'2.5'"),
    (["depthscales", "--sigma-w2", "-2"], "'-2'"),
    (["phase-diagram", "--sigma-w2", "1.5"], "'1.5'"),
    (["phase-diagram", "--sigma-w2", "0:1:1"], "'0:1:1'"),
    (["phase-diagram", "--sigma-b2", "1:0:5"], "'1:0:5'"),
    (["phase-diagram", "--sigma-b2", "-1:0:5"], "'-1:0:5'"),
    (["phase-diagram", "--color", "nosuch"], "'nosuch'"),
    (["phase-diagram", "-o", "grid.txt"], "grid.txt"),
]


@pytest.mark.parametrize(("args", "mentions"), BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_and_exit_2(args: list[str], mentions: str) -> None:
    assert_one_line_error(run(*args), mentions=mentions)


def test_unwritable_output_is_one_line_and_exit_1(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.json"
    assert_one_line_error(run(*COMMANDS["critical"], "-o", str(target)), code=1)


# --- files by suffix ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", slow_except([".png", ".svg", ".pdf"], [".png"]))
def test_phase_diagram_figure_files_are_byte_stable(tmp_path: Path, suffix: str) -> None:
    first, second = tmp_path / f"a{suffix}", tmp_path / f"b{suffix}"
    for path in (first, second):
        result = run(*COMMANDS["phase-diagram"], "--act", "relu", "-o", str(path))
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
    assert first.stat().st_size > 1000
    assert first.read_bytes() == second.read_bytes()


def test_phase_diagram_png_is_a_png(tmp_path: Path) -> None:
    path = tmp_path / "phase.png"
    result = run(*COMMANDS["phase-diagram"], "--color", "chi_1", "-o", str(path))
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"Software" not in path.read_bytes()


def test_phase_diagram_npz(tmp_path: Path) -> None:
    path = tmp_path / "grid.npz"
    result = run(*COMMANDS["phase-diagram"], "-o", str(path))
    assert result.exit_code == 0, result.output
    with np.load(path) as f:  # allow_pickle=False: plain arrays only
        assert f["sigma_w2"].shape == (12,) and f["sigma_b2"].shape == (8,)
        for key in ("q_star", "c_star", "chi_1", "chi_c", "xi_c", "phase"):
            assert f[key].shape == (8, 12), key
        meta = strict_json(str(f["meta"]))
    assert meta["version"] == mftheory.__version__ and meta["activation"] == "tanh"
    assert "settings" in meta and "q_star" not in meta


def test_phase_diagram_json_and_csv_files(tmp_path: Path) -> None:
    jpath, cpath = tmp_path / "grid.json", tmp_path / "grid.csv"
    for path in (jpath, cpath):
        result = run(*COMMANDS["phase-diagram"], "-o", str(path))
        assert result.exit_code == 0, result.output
    data = strict_json(jpath.read_text())
    assert len(data["q_star"]) == 8 and len(data["q_star"][0]) == 12
    rows = list(csv.DictReader(io.StringIO(cpath.read_text())))
    assert len(rows) == 8 * 12  # long format, one row per point
    assert {"sigma_w2", "sigma_b2", "q_star", "xi_c", "phase"} <= set(rows[0])


def test_output_file_and_explicit_format_on_stdout(tmp_path: Path) -> None:
    path = tmp_path / "fp.json"
    result = run(*COMMANDS["fixed-point"], "-o", str(path), "--format", "json")
    assert result.exit_code == 0, result.output
    assert strict_json(path.read_text()) == strict_json(result.stdout)


@pytest.mark.parametrize("command", ["critical", "fixed-point", "depthscales"])
def test_data_files_of_the_other_commands(tmp_path: Path, command: str) -> None:
    for suffix in (".json", ".csv", ".npz"):
        path = tmp_path / f"out{suffix}"
        result = run(*COMMANDS[command], "-o", str(path))
        assert result.exit_code == 0, result.output
        assert result.stdout == ""
        assert path.stat().st_size > 0
    with np.load(tmp_path / "out.npz") as f:
        assert "meta" in f.files and "sigma_b2" in f.files


# --- plotting API ---------------------------------------------------------------------------


def test_phase_diagram_figure_needs_a_grid() -> None:
    from mftheory.errors import MFTheoryError
    from mftheory.plotting import phase_diagram_figure

    with pytest.raises(MFTheoryError, match="2D grid"):
        phase_diagram_figure(fixed_point("tanh", sigma_w2=[1.0, 2.0], sigma_b2=0.1))


def test_phase_diagram_figure_object_api() -> None:
    from matplotlib.figure import Figure

    from mftheory.plotting import phase_diagram_figure

    w, b = np.linspace(0.5, 3, 6), np.linspace(0, 1, 5)
    fp = fixed_point("relu", sigma_w2=w[None, :], sigma_b2=b[:, None])
    for quantity in ("xi_c", "q_star", "c_star", "chi_1"):
        fig = phase_diagram_figure(fp, quantity=quantity)
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        assert "sigma_w^2" in ax.get_xlabel() and "sigma_b^2" in ax.get_ylabel()
        texts = {t.get_text() for t in ax.texts}
        assert {"ordered", "divergent"} <= texts
        assert fig.axes[1].get_ylabel()  # labelled colour bar
    # No pyplot state: checked in a fresh interpreter, since other packages loaded by the
    # test session (mnist1d, for the validation tests) import pyplot themselves.
    code = (
        "import sys; import numpy as np; from mftheory import fixed_point;"
        " from mftheory.plotting import phase_diagram_figure;"
        " phase_diagram_figure(fixed_point('relu', sigma_w2=np.array([[1.0, 2.0]]),"
        " sigma_b2=np.array([[0.0], [0.5]])));"
        " assert 'matplotlib.pyplot' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- import hygiene -------------------------------------------------------------------------


def test_core_import_loads_no_cli_or_plotting_dependencies() -> None:
    code = (
        "import sys\n"
        "import mftheory, mftheory.meanfield.fixed_points, mftheory.meanfield.critical\n"
        "import mftheory.cnn.modes\n"
        "heavy = {'typer', 'rich', 'matplotlib', 'torch', 'click'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_phase_diagram_with_zero_depth_scales_draws_without_warnings(tmp_path: Path) -> None:
    # sigma_w2 = 0 gives chi_1 = 0 and xi_c = 0, which a log colour scale must leave out.
    path = tmp_path / "zero.png"
    args = ["--sigma-w2", "0:2:5", "--sigma-b2", "0:1:4", "--act", "erf", "-o", str(path)]
    result = run("phase-diagram", *args)
    assert result.exit_code == 0, result.output
    assert path.stat().st_size > 1000


# --- big grids: progress, file formats, capped table ----------------------------------------


def test_grid_solver_reports_progress_to_the_end() -> None:
    from mftheory.cli.commands.phase_diagram import solve_grid

    calls: list[tuple[int, int]] = []
    w, b = np.linspace(0.5, 3, 6), np.linspace(0, 1, 7)
    fp = solve_grid(
        mftheory.get_activation("erf"),
        w,
        b,
        progress=lambda done, total: calls.append((done, total)),
        chunk_rows=2,
    )
    assert np.shape(fp.q_star) == (7, 6)
    assert len(calls) >= 2 and calls[-1] == (7, 7)
    assert all(total == 7 for _, total in calls)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    reference = fixed_point("erf", sigma_w2=w[None, :], sigma_b2=b[:, None])
    np.testing.assert_allclose(fp.q_star, reference.q_star, rtol=1e-8)
    np.testing.assert_array_equal(fp.phase, reference.phase)


def _messages_on(stream: io.StringIO, *, terminal: bool, quiet: bool = False) -> Any:
    from rich.console import Console

    from mftheory.cli.messages import Messages

    messages = Messages(quiet)
    messages._console = Console(file=stream, force_terminal=terminal, width=100)
    return messages


def test_progress_bar_on_a_terminal() -> None:
    stream = io.StringIO()
    messages = _messages_on(stream, terminal=True)
    with messages.progress("solving the grid", points=100) as progress:
        progress(1, 4)
        progress(4, 4)
    assert "solving the grid" in stream.getvalue()


def test_progress_is_silent_off_a_terminal_and_quiet() -> None:
    from mftheory.cli.messages import PROGRESS_NOTE_POINTS

    small, quiet = io.StringIO(), io.StringIO()
    with _messages_on(small, terminal=False).progress("small", points=100) as progress:
        progress(1, 1)
    with _messages_on(quiet, terminal=True, quiet=True).progress("q", points=10**8) as progress:
        progress(1, 1)
    assert small.getvalue() == "" and quiet.getvalue() == ""
    big = io.StringIO()
    with _messages_on(big, terminal=False).progress("big grid", points=PROGRESS_NOTE_POINTS + 1):
        pass
    lines = big.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("big grid") and "done in" in lines[1]


def test_phase_diagram_shows_a_progress_bar_on_a_terminal_stderr() -> None:
    env = {"NO_COLOR": "1", "COLUMNS": "200", "FORCE_COLOR": "1"}
    result = runner.invoke(app, ["phase-diagram", *SMALL_GRID, "--format", "json"], env=env)
    assert result.exit_code == 0, result.output
    assert "solving 8 x 12 fixed points" in result.stderr
    strict_json(result.stdout)  # the bar never touches stdout
    plain = run("phase-diagram", *SMALL_GRID, "--format", "json")
    assert "solving" not in plain.stderr


def _nan_grid(rows: list[Any]) -> np.ndarray:
    return np.array([[np.nan if x is None else x for x in row] for row in rows], dtype=float)


def test_phase_diagram_npz_round_trips_the_json_fields(tmp_path: Path) -> None:
    path = tmp_path / "grid.npz"
    args = ["phase-diagram", "--act", "relu", *SMALL_GRID]
    assert run(*args, "-o", str(path)).exit_code == 0
    data = run_json(*args)
    with np.load(path) as f:
        arrays = {key: f[key] for key in f.files}
    meta = strict_json(str(arrays.pop("meta")))
    assert set(arrays) | set(meta) == set(data)
    assert not set(arrays) & set(meta)
    assert {"sigma_w2", "sigma_b2", "q_star", "xi_c", "phase", "critical_sigma_w2"} <= set(arrays)
    for key, value in arrays.items():
        if value.dtype.kind == "U":
            assert value.tolist() == data[key], key
            continue
        finite = np.where(np.isfinite(value), value, np.nan)  # npz keeps inf; JSON has null
        expected = _nan_grid(data[key] if value.ndim == 2 else [data[key]]).reshape(value.shape)
        np.testing.assert_array_equal(finite, expected, err_msg=key)
    assert arrays["q_star"].dtype == np.float64 and np.isinf(arrays["q_star"]).any()
    for key, value in meta.items():
        assert value == data[key], key


def test_phase_diagram_csv_has_one_row_per_point(tmp_path: Path) -> None:
    path = tmp_path / "grid.csv"
    assert run("phase-diagram", "--act", "relu", *SMALL_GRID, "-o", str(path)).exit_code == 0
    text = path.read_text()
    assert text.endswith("\n") and text.count("\n") == 8 * 12 + 1
    rows = list(csv.DictReader(io.StringIO(text)))
    data = run_json("phase-diagram", "--act", "relu", *SMALL_GRID)
    assert [float(r["sigma_w2"]) for r in rows[:12]] == data["sigma_w2"]
    assert [float(r["sigma_b2"]) for r in rows[::12]] == data["sigma_b2"]
    assert [float(r["sigma_w"]) ** 2 for r in rows[:3]] == pytest.approx(data["sigma_w2"][:3])
    q = [
        # CSV writes inf (the divergent q*) and leaves NaN empty; JSON has null for both
        [None if r["q_star"] in ("", "inf") else float(r["q_star"]) for r in rows[i : i + 12]]
        for i in range(0, len(rows), 12)
    ]
    assert q == data["q_star"]  # full precision; empty field where JSON has null
    assert [r["phase"] for r in rows] == [p for line in data["phase"] for p in line]


def test_phase_diagram_table_of_a_big_grid_is_capped() -> None:
    from mftheory.cli.commands.phase_diagram import MAX_TABLE_ROWS

    result = run(
        "phase-diagram", "--act", "relu", "--sigma-w2", "0.5:4:200", "--sigma-b2", "0:1:200"
    )
    assert result.exit_code == 0, result.output
    rows = [ln for ln in result.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert 2 <= len(rows) <= MAX_TABLE_ROWS
    assert rows[0].split()[1] == "0" and rows[-1].split()[1] == "1"  # both ends shown
    assert "of 200 sigma_b^2 values" in result.stdout
    small = run("phase-diagram", *SMALL_GRID)
    assert "showing" not in small.stdout


def test_thin_for_figure_keeps_the_ends() -> None:
    from mftheory.cli.commands.phase_diagram import thin_for_figure

    w, b = np.linspace(0.5, 3, 30), np.linspace(0, 1, 7)
    fp = fixed_point("relu", sigma_w2=w[None, :], sigma_b2=b[:, None])
    thin = thin_for_figure(fp, limit=10)
    assert np.shape(thin.q_star) == (7, 10) and np.shape(thin.phase) == (7, 10)
    assert thin.sigma_w2[0, 0] == w[0] and thin.sigma_w2[0, -1] == w[-1]
    np.testing.assert_array_equal(thin.sigma_b2[:, 0], b)
    assert thin_for_figure(fp, limit=100) is fp


def test_csv_writer_of_columns_matches_the_row_writer() -> None:
    from mftheory.cli.render import Column, ColumnArrays, Records, csv_text

    rng = np.random.default_rng(3)
    grid = rng.normal(size=(5, 4))
    grid[1, 2], grid[3, 0] = np.nan, -np.inf
    data = {
        "w": np.broadcast_to(rng.random(4), (5, 4)),
        "b": np.broadcast_to(rng.random(5)[:, None], (5, 4)),
        "g": grid,
        "text": np.array([["ok", "a,b", 'say "x"', ""]] * 5),
        "n": np.broadcast_to(np.arange(4), (5, 4)),
        "flag": grid > 0,
    }
    columns = [Column(key) for key in data]
    rows = [{k: v[i, j].item() for k, v in data.items()} for i in range(5) for j in range(4)]
    assert csv_text(ColumnArrays(columns, data)) == csv_text(Records(columns, rows))

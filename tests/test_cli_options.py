"""The CLI's option layer: real defaults in --help, hidden old names, one-line errors from
the parser types, and the one ``jsonable``.

Values are checked against the same command given the value explicitly, or against plain
numbers typed here, never against what the code under test computed for its default.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from test_cli import assert_one_line_error, run, run_json

from mftheory.cli.params import Int, Number, ScaleText, ScaleValue, parse_range
from mftheory.serialize import jsonable


def option_help(command: str, option: str) -> str:
    """The entry of ``option`` in ``mftheory COMMAND --help``, with all spaces removed (the
    help wraps lines, also after hyphens)."""
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("Options:", 1)[1].splitlines()
    first = next(i for i, ln in enumerate(lines) if re.match(rf"\s+(-\w, )?{option}[ ,]", ln))
    entry = [lines[first]]
    for line in lines[first + 1 :]:
        if re.match(r"\s+-", line):
            break
        entry.append(line)
    return "".join("".join(entry).split())


def shows(command: str, option: str, text: str) -> bool:
    """Whether the help of ``option`` contains ``text`` (spaces ignored)."""
    return "".join(text.split()) in option_help(command, option)


# --- real defaults, shown by --help and used --------------------------------------------------


def test_diagnose_bias_default_is_zero_in_help_and_in_use() -> None:
    assert shows("diagnose", "--sigma-b2", "[default: 0.0]")
    assert not shows("diagnose", "--sigma-b2", "0.05")
    assert not shows("diagnose", "--sigma-b", "[default:")
    data = run_json("diagnose", "--gain", "1")
    assert data["sigma_b2"] == 0.0 and data["sigma_b"] == 0.0
    assert data == run_json("diagnose", "--gain", "1", "--sigma-b2", "0")


def test_isometry_bias_options_agree_on_the_default() -> None:
    assert shows("isometry", "--sigma-b2", "[default: 1e-05]")
    assert not shows("isometry", "--sigma-b", "[default:")
    assert not shows("isometry", "--sigma-b", "0.05")
    data = run_json("isometry", "--depth", "50")
    assert data == run_json("isometry", "--depth", "50", "--sigma-b2", "1e-05")
    assert data == run_json("isometry", "--depth", "50", "--sigma-b", str(math.sqrt(1e-5)))
    tanh_rows = [r for r in data["rows"] if not r["name"].startswith("relu")]
    assert tanh_rows and all(r["sigma_b2"] == 1e-5 for r in tanh_rows)


@pytest.mark.parametrize(
    ("command", "option", "shown"),
    [
        ("critical", "--sigma-b2", "[default: 0.05]"),
        ("fixed-point", "--q0", "[default: 1.0]"),
        ("fixed-point", "--negative-slope", "[default: 0.01]"),
        ("depthscales", "--v", "[default: uniform]"),
        ("phase-diagram", "--sigma-w2", "[default: 0.5:4:81]"),
        ("phase-diagram", "--sigma-b2", "[default: 0:1:61]"),
        ("kernel", "--kernel", "[default: 3]"),
        ("kernel", "--init", "[default: delta-orthogonal]"),
        ("spectrum", "--weights", "[default: orthogonal]"),
        ("validate", "--scale", "[default: cpu]"),
    ],
)
def test_help_shows_the_real_default(command: str, option: str, shown: str) -> None:
    assert shows(command, option, shown)


def test_default_bias_is_the_one_shown() -> None:
    assert run_json("critical") == run_json("critical", "--sigma-b2", "0.05")
    grid = ["--sigma-w2", "0.5:3:6"]
    assert run_json("phase-diagram", *grid) == run_json(
        "phase-diagram", *grid, "--sigma-b2", "0:1:61"
    )


def test_defaults_are_not_counted_as_given() -> None:
    # --sigma-b2 has a default: giving --sigma-b alone is not "both forms"
    assert run_json("critical", "--sigma-b", "0.5")["sigma_b2"] == 0.25
    note = run("fixed-point", "--act", "tanh", "--sigma-w2", "1.5")
    assert "--negative-slope" not in note.stderr and "--alpha" not in note.stderr


# --- hidden old names -------------------------------------------------------------------------

KERNEL = ["kernel", "--init", "orthogonal", "--dim", "1", "--cin", "4", "--cout", "4"]


def test_kernel_size_is_a_hidden_alias_of_kernel() -> None:
    assert run_json(*KERNEL, "--size", "5") == run_json(*KERNEL, "--kernel", "5")
    assert run_json(*KERNEL, "--size", "5")["shape"] == [5, 4, 4]
    help_text = run("kernel", "--help").stdout
    assert "--kernel" in help_text and "--size" not in help_text
    assert_one_line_error(run(*KERNEL, "--size", "5", "--kernel", "3"), mentions="not both")


def test_reproduce_scale_is_a_hidden_alias_of_perturbation() -> None:
    help_text = run("reproduce", "--help").stdout
    assert "--perturbation" in help_text and "--scale" not in help_text
    for option in ("--perturbation", "--scale"):
        assert_one_line_error(run("reproduce", "fig-s4", option, "100"), mentions="semi-definite")
        assert_one_line_error(run("reproduce", "fig-s4", option, "-1"), mentions=option)
    both = run("reproduce", "fig-s4", "--scale", "0.5", "--perturbation", "0.5")
    assert_one_line_error(both, mentions="not both")


def test_validate_writes_to_dash_o_and_keeps_out_hidden(tmp_path: Path) -> None:
    pytest.importorskip("torch")  # validate trains networks: the [validate] extra
    pytest.importorskip("sklearn")
    help_text = run("validate", "--help").stdout
    assert "-o, --output" in help_text and "--out " not in help_text
    args = ["validate", "trainability", "--scale", "tiny", "--depths", "2", "--sigma-w2", "1"]
    for option, folder in (("-o", tmp_path / "a"), ("--output", tmp_path / "b")):
        result = run(*args, option, str(folder), "--jobs", "1", "--quiet")
        assert result.exit_code == 0, result.output
        assert (folder / "summary.json").is_file() and (folder / "cells").is_dir()
    old = run(*args, "--out", str(tmp_path / "c"), "--jobs", "1", "--quiet")
    assert old.exit_code == 0, old.output
    assert (tmp_path / "c" / "summary.json").is_file()
    both = run(*args, "--out", str(tmp_path / "d"), "-o", str(tmp_path / "e"))
    assert_one_line_error(both, mentions="not both")


# --- one-line errors from the parser types ----------------------------------------------------

FP = ["fixed-point", "--sigma-w2", "1.5"]
PARSER_ERRORS: list[tuple[list[str], str]] = [
    ([*FP, "--sigma-b", "nan"], "'--sigma-b'"),
    ([*FP, "--sigma-b", "-0.5"], "'--sigma-b'"),
    (["fixed-point", "--sigma-w", "inf"], "'--sigma-w'"),
    (["fixed-point", "--sigma-w", "-inf"], "'--sigma-w'"),
    ([*FP, "--q0", "nan"], "'--q0'"),
    ([*FP, "--q0", "0"], "'--q0'"),
    ([*FP, "--negative-slope", "inf"], "'--negative-slope'"),
    (["critical", "--sigma-b", "0:1"], "'--sigma-b'"),
    (["critical", "--sigma-b", "0:nan:3"], "'nan'"),
    (["critical", "--sigma-b", "-1:1:3"], "'-1:1:3'"),
    (["critical", "--sigma-b2", "0:1:3:4"], "'0:1:3:4'"),
    (["critical", "--sigma-b2", "a:b:c"], "'a'"),
    (["phase-diagram", "--sigma-w", "1:2"], "'--sigma-w'"),
    (["phase-diagram", "--sigma-b", "0.5"], "'--sigma-b'"),
    (["depthscales", "--kernel", "-3"], "'--kernel'"),
    (["depthscales", "--n", "inf"], "'--n'"),
    (["spectrum", "--points", "1"], "'--points'"),
    (["spectrum", "--draws", "nan"], "'--draws'"),
    (["isometry", "--max-spread", "nan"], "'--max-spread'"),
    (["isometry", "--sigma-b", "-1"], "'--sigma-b'"),
    (["kernel", "--gain", "nan"], "'--gain'"),
    (["kernel", "--seed", "-1"], "'--seed'"),
    (["diagnose", "--fan-in", "0"], "'--fan-in'"),
    (["diagnose", "--init", "kaiming"], "'kaiming'"),
    (["validate", "trainability", "--lr", "inf"], "'--lr'"),
    (["validate", "trainability", "--sigma-w2", "0:1:x"], "'x'"),
    (["validate", "trainability", "--momentum", "-1"], "'--momentum'"),
    (["validate", "nosuch"], "unknown experiment 'nosuch'"),
    (["reproduce", "fig-s4", "--networks", "1"], "'--networks'"),
]


@pytest.mark.parametrize(
    ("args", "mentions"), PARSER_ERRORS, ids=[" ".join(a) for a, _ in PARSER_ERRORS]
)
def test_parser_errors_are_one_line_and_name_the_option(args: list[str], mentions: str) -> None:
    assert_one_line_error(run(*args), mentions=mentions)


def test_parsers_directly() -> None:
    assert Number()("2.5") == 2.5 and Number()(0.01) == 0.01  # a default passes through
    assert Int(1, 3)("3") == 3
    std = ScaleText("standard deviation", ranges="yes")("0:1:3")
    assert isinstance(std, ScaleValue) and std.is_range
    assert std.values.tolist() == [0.0, 0.5, 1.0]
    default = ScaleText("variance")(0.05)
    assert default.values.shape == () and float(default.values) == 0.05
    np.testing.assert_array_equal(parse_range("1:2:5"), [1.0, 1.25, 1.5, 1.75, 2.0])


# --- the one jsonable -------------------------------------------------------------------------


def test_jsonable_converts_arrays_mappings_and_non_finite_values() -> None:
    from types import MappingProxyType

    grid = np.array([[1.0, np.nan], [np.inf, -2.5]])
    assert jsonable(grid) == [[1.0, None], [None, -2.5]]
    assert jsonable(np.array(np.nan)) is None
    assert jsonable(MappingProxyType({"a": np.float64(3.0), 1: (np.int64(2), True)})) == {
        "a": 3.0,
        "1": [2, True],
    }
    assert jsonable(np.array(["x", "y"])) == ["x", "y"]
    assert jsonable(complex(1.0, -2.0)) == [1.0, -2.0]
    assert jsonable(np.array([1 + 2j])) == [[1.0, 2.0]]

"""Issue 15 items 1 and 8: oversized requests refused up front (one line: the estimate, the
limit and how to raise it), ``--max-memory`` / ``MFTHEORY_MAX_MEMORY``, errors in the user's
words, and the ranges the commands advertise.

Small ``--max-memory`` values check the estimate logic on requests that would fit otherwise,
with one request just under the limit accepted and one just over refused.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_cli import assert_one_line_error, run, runner

from mftheory.cli.app import app
from mftheory.cli.budget import (
    format_bytes,
    memory_limit,
    parse_size,
    require_memory,
    set_max_memory,
)
from mftheory.cli.commands.phase_diagram import POINT_BYTES
from mftheory.errors import MFTheoryError

MiB = 1024**2


def refused(*args: str, code: int = 2, mentions: str = "") -> str:
    """Run, check a quick one-line refusal, and return the line."""
    start = time.perf_counter()
    result = run(*args)
    assert time.perf_counter() - start < 10, "a refusal must come before any work"
    assert_one_line_error(result, code=code, mentions=mentions)
    assert "Warning" not in result.stderr
    line: str = result.stderr.strip()
    return line


def test_parse_size_units_and_bad_values() -> None:
    assert parse_size("4G") == 4 * 1024**3
    assert parse_size("500M") == 500 * MiB
    assert parse_size("1.5GiB") == int(1.5 * 1024**3)
    assert parse_size("2t") == 2 * 1024**4
    assert parse_size("1048576") == MiB
    for bad in ("", "lots", "-1G", "4X", "nan", "1e400", "100k"):
        with pytest.raises(MFTheoryError, match="--max-memory"):
            parse_size(bad)
    assert format_bytes(3 * 1024**3) == "3 GiB"


def test_limit_sources_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MFTHEORY_MAX_MEMORY", "300M")
    set_max_memory(None)
    assert memory_limit() == (300 * MiB, "MFTHEORY_MAX_MEMORY")
    set_max_memory(200 * MiB)
    try:
        assert memory_limit() == (200 * MiB, "--max-memory")
        with pytest.raises(MFTheoryError, match="over the limit of 200 MiB"):
            require_memory(201 * MiB, "x")
        require_memory(200 * MiB, "x")  # at the limit: accepted
    finally:
        set_max_memory(None)
    monkeypatch.delenv("MFTHEORY_MAX_MEMORY")
    limit, source = memory_limit()
    assert limit >= 64 * MiB and source == "half the available memory"


# --- the examples of the issue: one-line refusals within seconds ---------------------------


@pytest.mark.parametrize(
    "command",
    [
        "depthscales --v uniform --n 100000000",
        "kernel --init delta-orthogonal --size 3 --cin 100000 --cout 100000",
        "spectrum --points 1000000 --depth 10",
        "spectrum --depth 8 --empirical 20000",
        "phase-diagram --sigma-w2 0.5:4:100000 --sigma-b2 0:1:100000 -o p.npz",
        "kernel --init orthogonal --size 1001 --cin 2 --cout 2 --dim 3",
    ],
)
def test_issue_examples_are_refused_with_the_estimate(command: str) -> None:
    # a limit that a big machine could give, so that the refusal does not depend on this one
    line = refused("--max-memory", "8G", *command.split(), mentions="memory")
    assert "over the limit of 8 GiB (--max-memory)" in line
    assert "ask for less" in line


def test_simulate_depth_beyond_the_range(tmp_path: Path) -> None:
    image = tmp_path / "img8.npy"
    np.save(image, np.random.default_rng(0).random((8, 8)))
    refused("simulate", "--image", str(image), "--depth", "1000000000", mentions="--depth")
    # in range, but the records of 100 networks x 100000 layers do not fit in 1G
    line = refused(
        "--max-memory",
        "1G",
        "simulate",
        "--image",
        str(image),
        "--depth",
        "100000",
        mentions="100000 layers",
    )
    assert "raise the limit with --max-memory SIZE or MFTHEORY_MAX_MEMORY" in line


def test_propagate_refuses_huge_images(tmp_path: Path) -> None:
    image = tmp_path / "big.npy"
    np.save(image, np.zeros((300, 300)))
    refused("propagate", "--image", str(image), "--depth", "10", mentions="90000 x 90000")


def test_validate_sizes_and_learning_rate(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    out = tmp_path / "v"
    base = ("validate", "trainability", "--scale", "tiny", "-o", str(out))
    refused(*base, "--depths", "100000000", mentions="memory")
    refused(*base, "--channels", "1000000000", mentions="1000000000 channels")
    refused(*base, "--lr", "1e308", mentions="--lr")
    refused(*base, "--lr", "0", mentions="(0, 10]")
    assert not out.exists(), "nothing is written before the checks"


# --- the limit itself: just under is accepted, just over refused ----------------------------


def test_phase_grid_just_under_and_over_the_limit() -> None:
    limit = 5 * MiB
    rows = limit // (POINT_BYTES * 100)  # rows x 100 points just under the limit
    ok = run(
        "--max-memory",
        "5M",
        "phase-diagram",
        "--sigma-w2",
        "0.5:4:100",
        "--sigma-b2",
        f"0:1:{rows}",
        "-q",
        "--format",
        "csv",
    )
    assert ok.exit_code == 0, ok.output
    refused(
        "--max-memory",
        "5M",
        "phase-diagram",
        "--sigma-w2",
        "0.5:4:100",
        "--sigma-b2",
        f"0:1:{rows + 1}",
        mentions="5 MiB",
    )


def test_option_after_the_command_and_environment_variable() -> None:
    args = ("depthscales", "--n", "1000", "--format", "json")  # 1000 modes x 6000 bytes
    assert run(*args).exit_code == 0
    refused(*args, "--max-memory", "5M", mentions="(--max-memory)")
    refused(*args, "--max-memory=5M", mentions="(--max-memory)")
    result = runner.invoke(app, list(args), env={"MFTHEORY_MAX_MEMORY": "5M"})
    assert_one_line_error(result, mentions="(MFTHEORY_MAX_MEMORY)")
    result = runner.invoke(app, list(args), env={"MFTHEORY_MAX_MEMORY": "7M"})
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, list(args), env={"MFTHEORY_MAX_MEMORY": "plenty"})
    assert_one_line_error(result, mentions="MFTHEORY_MAX_MEMORY must be a size")
    refused("--max-memory", "lots", *args, mentions="--max-memory must be a size")


def test_kernel_just_under_and_over() -> None:
    # 3x3x8x8 delta-orthogonal: its check (image sides 3..64) is estimated at 22.3 MiB
    args = ("kernel", "--init", "delta-orthogonal", "--cin", "8", "--cout", "8", "-q")
    assert run("--max-memory", "23M", *args).exit_code == 0
    refused("--max-memory", "22M", *args, mentions="3x3x8x8 kernel")


def test_time_estimate_refuses_hours_of_work() -> None:
    line = refused(
        "kernel",
        "--init",
        "delta-orthogonal",
        "--cin",
        "2000",
        "--cout",
        "2000",
        mentions="would take about",
    )
    assert "MFTHEORY_MAX_TIME" in line


def test_help_documents_the_limit() -> None:
    text = "".join(run("--help").stdout.split())
    assert "--max-memorySIZE" in text and "MFTHEORY_MAX_MEMORY" in text


# --- item 8: the user's words -----------------------------------------------------------------


def test_huge_standard_deviation_names_the_option() -> None:
    line = refused("critical", "--sigma-b", "1e200", mentions="--sigma-b 1e200")
    assert "np.float64" not in line and "sigma_b2" not in line
    refused("fixed-point", "--sigma-w", "1e155", "--sigma-b2", "0.05", mentions="--sigma-w")


def test_a_100kb_argument_is_not_echoed() -> None:
    huge = "1" * 100_000
    for args in (
        ("critical", "--sigma-b2", huge),
        ("critical", "--sigma-b2", "x" * 100_000),
        ("critical", "--sigma-b2", f"0:1:{huge}"),
        ("fixed-point", "--act", "x" * 100_000),
    ):
        line = refused(*args)
        assert len(line) < 400, line[:500]


@pytest.mark.parametrize("command", ["spectrum", "isometry"])
def test_spectrum_depth_range_is_what_works(command: str) -> None:
    refused(command, "--depth", "100000", mentions="10000")
    assert "10000" in "".join(run(command, "--help").stdout.split())


def test_solver_failure_inside_the_range_is_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    import mftheory.spectrum.density as density

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise MFTheoryError("spectrum: Newton did not converge at 5 grid points")

    monkeypatch.setattr(density, "jacobian_spectrum", fail)
    refused("spectrum", "--depth", "10", code=1, mentions="did not converge")


def test_out_of_memory_is_one_line_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    import mftheory.meanfield.critical as critical

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise MemoryError

    monkeypatch.setattr(critical, "critical_point", fail)
    refused("critical", code=1, mentions="out of memory")

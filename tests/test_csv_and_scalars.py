"""Honest tables and plain scalars (issue 14).

CSV writes an infinity as ``inf`` (a critical point's depth scales are infinite, not missing)
and leaves NaN empty; JSON writes null for both. Scalar inputs give plain Python floats (and
``str`` phases) in the result dataclasses; array inputs give arrays. Reference values are
closed forms (ReLU: critical ``sigma_w2 = 2``, ``q* = sigma_b2 / (1 - sigma_w2 / 2)``).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_cli import run, run_json, strict_json

from mftheory import (
    critical_point,
    depth_scale,
    diagnose_init,
    fixed_point,
    mode_table,
    trainable_depth,
    variance_vector,
)
from mftheory.serialize import jsonable


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


# --- CSV keeps infinities ------------------------------------------------------------------


def test_critical_csv_writes_inf_where_json_has_null() -> None:
    result = run("critical", "--act", "tanh", "--sigma-b2", "0.05", "--format", "csv")
    assert result.exit_code == 0, result.output
    (row,) = _csv_rows(result.stdout)
    assert row["xi_grad"] == "inf"  # infinite on the critical line by definition
    assert math.isinf(float(row["xi_grad"]))
    data = run_json("critical", "--act", "tanh", "--sigma-b2", "0.05")
    assert data["xi_grad"] is None  # JSON stays strict
    assert float(row["sigma_w2"]) == data["sigma_w2"]


def test_relu_critical_point_csv_has_infinite_q_star() -> None:
    # closed form: the ReLU critical line is sigma_w2 = 2, where q* = b / (1 - w/2) diverges
    result = run("critical", "--act", "relu", "--sigma-b2", "0.05", "--format", "csv")
    (row,) = _csv_rows(result.stdout)
    assert float(row["sigma_w2"]) == 2.0
    assert row["q_star"] == "inf" and row["xi_grad"] == "inf"


def test_csv_leaves_nan_empty_and_writes_inf(tmp_path: Path) -> None:
    # relu at sigma_w2 = 3 > 2: no finite fixed point, q* = inf, c* and chi_c undefined (NaN)
    args = ["fixed-point", "--act", "relu", "--sigma-w2", "3", "--sigma-b2", "0.05"]
    (row,) = _csv_rows(run(*args, "--format", "csv").stdout)
    assert row["q_star"] == "inf"
    assert row["c_star"] == "" and row["xi_c"] == ""
    data = strict_json(run(*args, "--format", "json").stdout)
    assert data["q_star"] is None and data["c_star"] is None
    path = tmp_path / "fp.npz"
    assert run(*args, "-o", str(path)).exit_code == 0
    with np.load(path) as f:
        assert np.isinf(f["q_star"]) and np.isnan(f["c_star"])


def test_csv_cells_of_both_writers() -> None:
    from mftheory.cli.render import Column, ColumnArrays, Records, csv_text

    values = np.array([1.5, np.inf, -np.inf, np.nan])
    columns = [Column("x")]
    as_rows = csv_text(Records(columns, [{"x": float(v)} for v in values] + [{"x": None}]))
    assert as_rows.splitlines() == ["x", "1.5", "inf", "-inf", '""', '""']
    as_columns = csv_text(ColumnArrays([Column("x"), Column("y")], {"x": values, "y": values}))
    assert as_columns.splitlines() == ["x,y", "1.5,1.5", "inf,inf", "-inf,-inf", ","]
    parsed = [float(line.split(",")[0]) for line in as_columns.splitlines()[1:4]]
    assert parsed == [1.5, math.inf, -math.inf]


def test_phase_diagram_csv_keeps_the_divergent_infinities() -> None:
    args = ["phase-diagram", "--act", "relu", "--sigma-w2", "1:3:3", "--sigma-b2", "0.1:0.2:2"]
    rows = _csv_rows(run(*args, "--format", "csv").stdout)
    for row in rows:
        w, b = float(row["sigma_w2"]), float(row["sigma_b2"])
        if w < 2:
            assert float(row["q_star"]) == pytest.approx(b / (1 - w / 2), rel=1e-12)
        else:  # w >= 2: divergent, q* infinite
            assert row["q_star"] == "inf" and row["phase"] == "divergent"


# --- scalar inputs return plain floats -----------------------------------------------------


def test_fixed_point_of_scalars_is_plain_floats() -> None:
    fp = fixed_point("relu", sigma_w2=1.0, sigma_b2=0.5)
    for name in ("sigma_w2", "sigma_b2", *fp.FIELDS, "sigma_w", "sigma_b"):
        assert type(getattr(fp, name)) is float, name
    assert type(fp.phase) is str and fp.phase == "ordered"
    assert fp.q_star == pytest.approx(0.5 / (1 - 1.0 / 2), rel=1e-12)  # closed form, = 1
    assert fp.chi_1 == pytest.approx(0.5, rel=1e-12)  # ReLU: chi_1 = sigma_w2 / 2
    assert fp.shape == ()
    # a 0-d array is a scalar input too
    zero_d = fixed_point("relu", sigma_w2=np.asarray(1.0), sigma_b2=np.asarray(0.5))
    assert type(zero_d.q_star) is float and type(zero_d.phase) is str


def test_fixed_point_of_arrays_is_arrays() -> None:
    fp = fixed_point("relu", sigma_w2=[1.0, 3.0], sigma_b2=0.5)
    for name in ("sigma_w2", "sigma_b2", *fp.FIELDS):
        value = getattr(fp, name)
        assert isinstance(value, np.ndarray) and value.shape == (2,), name
    assert fp.phase.tolist() == ["ordered", "divergent"]
    assert fp.shape == (2,)
    one = fixed_point("relu", sigma_w2=[1.0], sigma_b2=0.5)
    assert isinstance(one.q_star, np.ndarray) and one.q_star.shape == (1,)


def test_fixed_point_as_dict_of_scalars() -> None:
    fp = fixed_point("relu", sigma_w2=3.0, sigma_b2=0.5)
    d = fp.as_dict()
    assert d["phase"] == "divergent" and d["q_star"] is None and "xi_grad" in d
    assert d == jsonable(d)


def test_critical_point_of_scalars_and_arrays() -> None:
    cp = critical_point("relu", sigma_b2=0.05)
    for name in ("sigma_b2", "sigma_w2", "q_star", "chi_q", "xi_q", "xi_grad", "sigma_w"):
        assert type(getattr(cp, name)) is float, name
    assert type(cp.status) is str
    assert cp.sigma_w2 == 2.0 and math.isinf(cp.xi_grad)
    d = cp.as_dict()
    assert "xi_grad" in d and d["xi_grad"] is None and d["status"] == cp.status
    many = critical_point("relu", sigma_b2=[0.0, 0.05])
    assert isinstance(many.sigma_w2, np.ndarray) and many.sigma_w2.tolist() == [2.0, 2.0]
    assert isinstance(many.status, np.ndarray) and many.as_dict()["xi_grad"] == [None, None]


def test_diagnose_init_is_plain() -> None:
    d = diagnose_init("relu", sigma_w2=1.0, sigma_b2=0.5)
    assert type(d.max_trainable_depth) is float
    assert type(d.nearest_critical_sigma_w2) is float and d.nearest_critical_sigma_w2 == 2.0
    assert type(d.fixed.q_star) is float and type(d.fixed.phase) is str
    # ReLU, chi_c* at the ordered fixed point: 6 xi_c = -6 / log(chi_c)
    assert d.max_trainable_depth == pytest.approx(-6.0 / math.log(float(d.fixed.chi_c)))


@pytest.mark.parametrize(
    ("xi", "expected"), [(2.0, 12.0), (math.inf, math.inf), (math.nan, 0.0), (0.0, 0.0)]
)
def test_trainable_depth_of_a_scalar_is_a_float(xi: float, expected: float) -> None:
    out = trainable_depth(xi)
    assert type(out) is float and out == expected
    arr = trainable_depth(np.array([xi, xi]))
    assert isinstance(arr, np.ndarray) and arr.tolist() == [expected, expected]


def test_depth_scale_of_a_scalar_is_a_float() -> None:
    out = depth_scale(0.5)
    assert type(out) is float and out == pytest.approx(1 / math.log(2.0), rel=1e-15)
    assert type(depth_scale(1.0)) is float and math.isinf(depth_scale(1.0))
    arr = depth_scale([0.5, 1.0])
    assert isinstance(arr, np.ndarray) and arr.shape == (2,)


def test_mode_table_slopes_are_floats() -> None:
    table = mode_table(variance_vector("uniform", kernel=3, dim=1), 6, chi_c=0.9, chi_q=0.5)
    assert type(table.chi_c) is float and type(table.chi_q) is float
    row: dict[str, Any] = table.as_rows()[0]
    assert type(row["abs_lambda"]) is float and row["abs_lambda"] == pytest.approx(1.0)
    assert type(row["rate"]) is float and row["rate"] == pytest.approx(0.9)

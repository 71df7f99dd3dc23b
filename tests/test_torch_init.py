"""Tests of mftheory.torch: PyTorch initialisers, critical initialisation and diagnosis.

The judges are independent of the code under test: mftheory.cnn.kernels.check_kernel (the FFT test
of docs/theory.md section 6) on the weights converted to the kernel layout, the dense operator that
the torch layer itself applies (nn.ConvNd with padding_mode="circular" on an identity basis),
the mean-field fixed point (mftheory.meanfield.fixed_points) for deep finite networks, and exact
identities (a looks-linear ReLU network is the linear map W_L ... W_1).

Tolerances. Orthogonality is checked in float64 to 1e-10 (round-off of QR and of the growth
steps is ~1e-14). Gaussian statistics use 5 standard errors from the stated formula. The
100-layer check is explained in its docstring. All seeds are fixed, so every run is the same.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import mftheory.torch as mt  # noqa: E402
from mftheory.cnn.kernels import check_kernel, kernel_sigma_w2, kernel_variance_share  # noqa: E402
from mftheory.errors import MFTheoryError  # noqa: E402
from mftheory.meanfield.critical import critical_point  # noqa: E402
from mftheory.meanfield.fixed_points import fixed_point  # noqa: E402

F64 = torch.float64
CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def gen(seed: int, device: str = "cpu") -> Any:
    return torch.Generator(device=device).manual_seed(seed)


def to_kernel(w: Any) -> np.ndarray:
    """PyTorch (c_out, c_in, *spatial) -> mftheory.cnn.kernels (*spatial, c_in, c_out)."""
    d = w.ndim - 2
    return w.detach().cpu().to(F64).permute(*range(2, 2 + d), 1, 0).numpy()


def circular_conv(c_in: int, c_out: int, size: int, dim: int, dtype: Any = F64) -> Any:
    return CONV[dim](
        c_in, c_out, size, padding=size // 2, padding_mode="circular", bias=False, dtype=dtype
    )


def dense_operator(conv: Any, c_in: int, n: int, dim: int) -> np.ndarray:
    """The matrix (c_out n^d) x (c_in n^d) that the layer applies to periodic images."""
    size = c_in * n**dim
    basis = torch.eye(size, dtype=F64).reshape(size, c_in, *(n,) * dim)
    with torch.no_grad():
        cols = conv(basis).reshape(size, -1)
    return cols.T.numpy()


# --------------------------------------------------------------------------------------------
# 1. The initialisers give orthogonal operators
# --------------------------------------------------------------------------------------------

ORTHO_CASES = [
    # (init, dim, size, c_in, c_out)
    (mt.conv_orthogonal_, 1, 3, 4, 4),
    (mt.conv_orthogonal_, 1, 5, 3, 6),
    (mt.conv_orthogonal_, 2, 3, 4, 4),
    (mt.conv_orthogonal_, 2, 3, 3, 5),
    (mt.conv_orthogonal_, 3, 3, 2, 3),
    (mt.delta_orthogonal_, 1, 3, 4, 4),
    (mt.delta_orthogonal_, 2, 5, 3, 5),
    (mt.delta_orthogonal_, 3, 3, 2, 3),
]


@pytest.mark.parametrize(("init", "dim", "size", "c_in", "c_out"), ORTHO_CASES)
def test_kernel_check_after_layout_conversion(
    init: Any, dim: int, size: int, c_in: int, c_out: int
) -> None:
    gain = 1.7
    conv = circular_conv(c_in, c_out, size, dim)
    init(conv.weight, gain=gain, generator=gen(0))
    k = to_kernel(conv.weight)
    chk = check_kernel(k, gain=gain, n_values=[size, size + 1, 8] if dim < 3 else [3, 4], tol=1e-10)
    assert chk.orthogonal and chk.columns_orthonormal, chk
    # Parseval: sum K^2 = gain^2 c_in, so the fan-in scaled variance is gain^2 c_in / c_out
    assert kernel_sigma_w2(k) == pytest.approx(gain**2 * c_in / c_out, rel=1e-12)
    if init is mt.delta_orthogonal_:
        delta = np.zeros((size,) * dim)
        delta[(size // 2,) * dim] = 1.0
        np.testing.assert_array_equal(kernel_variance_share(k), delta)


@pytest.mark.parametrize(("init", "dim", "size", "c_in", "c_out"), ORTHO_CASES)
def test_torch_layer_is_gain_times_an_isometry(
    init: Any, dim: int, size: int, c_in: int, c_out: int
) -> None:
    """Judge: the operator nn.ConvNd(padding_mode="circular") applies, not the kernel maths."""
    gain = 1.3
    conv = circular_conv(c_in, c_out, size, dim)
    init(conv.weight, gain=gain, generator=gen(1))
    n = 5 if dim < 3 else 3
    m = dense_operator(conv, c_in, n, dim)
    np.testing.assert_allclose(m.T @ m, gain**2 * np.eye(m.shape[1]), atol=1e-10)
    # random images, and a larger size than the dense check
    n_big = 11 if dim < 3 else 5
    x = torch.randn(4, c_in, *(n_big,) * dim, generator=gen(2), dtype=F64)
    with torch.no_grad():
        y = conv(x)
    ratio = y.flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    np.testing.assert_allclose(ratio.numpy(), gain, rtol=1e-12)


def test_linear_weight_gets_orthonormal_columns() -> None:
    for init in (mt.delta_orthogonal_, mt.conv_orthogonal_):
        w = torch.empty(7, 4, dtype=F64)
        assert init(w, gain=0.8, generator=gen(3)) is w
        np.testing.assert_allclose((w.T @ w).numpy(), 0.64 * np.eye(4), atol=1e-13)


def test_wide_layer_of_critical_init_has_orthonormal_rows() -> None:
    """c_in > c_out: the transposed Algorithm 1 kernel is a co-isometry (M M^T = s^2 I)."""
    for scheme in ("orthogonal", "delta-orthogonal"):
        model = nn.Sequential(circular_conv(8, 3, 3, 2), nn.Tanh(), circular_conv(3, 8, 3, 2))
        rep = mt.critical_init_(model, scheme=scheme, generator=gen(4))
        m = dense_operator(model[0], 8, 5, 2)
        np.testing.assert_allclose(m @ m.T, rep.sigma_w2 * np.eye(m.shape[0]), atol=1e-10)
        chk = check_kernel(to_kernel(model[0].weight), gain=rep.sigma_w, n_values=[3, 5, 8])
        assert chk.orthogonal and not chk.columns_orthonormal
        # the expanding layer: singular value sigma_w sqrt(8/3), so sum w^2 / c_out = sigma_w2
        m2 = dense_operator(model[2], 3, 5, 2)
        np.testing.assert_allclose(m2.T @ m2, rep.sigma_w2 * 8 / 3 * np.eye(75), atol=1e-10)
        for layer in (model[0], model[2]):
            assert kernel_sigma_w2(to_kernel(layer.weight)) == pytest.approx(rep.sigma_w2)
        assert any("orthonormal rows" in note for note in rep.notes)
        assert any("sqrt(c_out / c_in)" in note for note in rep.notes)


def test_algorithm1_variance_share_is_binomial_on_average() -> None:
    """docs/theory.md section 6: E[v] = (1/4, 1/2, 1/4) per dimension for size 3."""
    shares = []
    for seed in range(20):
        w = torch.empty(32, 32, 3, dtype=F64)
        mt.conv_orthogonal_(w, generator=gen(seed))
        shares.append(kernel_variance_share(to_kernel(w)))
    np.testing.assert_allclose(np.mean(shares, axis=0), [0.25, 0.5, 0.25], atol=0.04)


# --------------------------------------------------------------------------------------------
# 2. Gaussian weights with a variance vector
# --------------------------------------------------------------------------------------------


def test_variance_vector_normal_statistics() -> None:
    """Per-position variance times c_in / gain^2 estimates v_b (5 standard errors)."""
    c_out, c_in, gain = 96, 64, 1.5
    w = torch.empty(c_out, c_in, 3, 3, dtype=F64)
    mt.variance_vector_normal_(w, "gs2", gain=gain, generator=gen(5))
    v = np.full((3, 3), 0.5 / 9)
    v[1, 1] += 0.5
    est = (w.square().mean(dim=(0, 1)) * c_in / gain**2).numpy()
    se = v * math.sqrt(2.0 / (c_out * c_in))
    assert np.all(np.abs(est - v) <= 5 * se)
    assert kernel_sigma_w2(to_kernel(w)) == pytest.approx(
        gain**2, rel=5 * math.sqrt(2 * (v**2).sum() / (c_in * c_out))
    )


def test_variance_vector_normal_accepts_arrays_and_linear() -> None:
    w = torch.empty(8, 4, 3, dtype=F64)
    mt.variance_vector_normal_(w, [0.25, 0.5, 0.25], generator=gen(6))
    w = torch.empty(8, 4, 3, dtype=F64)
    mt.variance_vector_normal_(w, np.array([0.0, 1.0, 0.0]), generator=gen(6))
    assert torch.all(w[:, :, [0, 2]] == 0) and torch.all(w[:, :, 1] != 0)
    lin = torch.empty(10, 5, dtype=torch.float32)
    mt.variance_vector_normal_(lin, "uniform", gain=2.0, generator=gen(6))
    assert lin.dtype == torch.float32 and torch.all(lin != 0)


# --------------------------------------------------------------------------------------------
# 3. Randomness, dtype and device
# --------------------------------------------------------------------------------------------

INITS = {
    "delta": lambda t, g: mt.delta_orthogonal_(t, gain=1.2, generator=g),
    "conv": lambda t, g: mt.conv_orthogonal_(t, gain=1.2, generator=g),
    "gauss": lambda t, g: mt.variance_vector_normal_(t, "uniform", gain=1.2, generator=g),
}


@pytest.mark.parametrize("name", sorted(INITS))
def test_generator_is_respected(name: str) -> None:
    init = INITS[name]
    a, b, c = (torch.empty(6, 4, 3, 3, dtype=F64) for _ in range(3))
    init(a, gen(11))
    init(b, gen(11))
    init(c, gen(12))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    torch.manual_seed(3)  # generator=None: the global RNG
    init(a, None)
    torch.manual_seed(3)
    init(b, None)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", sorted(INITS))
def test_dtype_and_device_kept(name: str) -> None:
    t = torch.empty(6, 4, 3, dtype=torch.float32)
    out = INITS[name](t, gen(0))
    assert out is t and t.dtype == torch.float32 and t.device.type == "cpu"
    assert torch.isfinite(t).all() and t.abs().sum() > 0
    assert not t.requires_grad
    layer = nn.Conv1d(4, 6, 3)  # a Parameter with requires_grad: works under no_grad
    INITS[name](layer.weight, gen(0))
    assert layer.weight.requires_grad and layer.weight.grad_fn is None


@needs_cuda
@pytest.mark.parametrize("name", sorted(INITS))
def test_cuda(name: str) -> None:
    conv = circular_conv(4, 6, 3, 2).cuda()
    for g in (gen(0, "cuda"), gen(0, "cpu"), None):
        INITS[name](conv.weight, g)
        assert conv.weight.device.type == "cuda" and conv.weight.dtype == F64
    INITS[name](conv.weight, gen(7, "cuda"))
    first = conv.weight.detach().clone()
    INITS[name](conv.weight, gen(7, "cuda"))
    assert torch.equal(first, conv.weight)
    if name != "gauss":
        chk = check_kernel(to_kernel(conv.weight), gain=1.2, n_values=[3, 8], tol=1e-10)
        assert chk.orthogonal
    model = nn.Sequential(circular_conv(4, 8, 3, 2), nn.Tanh(), circular_conv(8, 8, 3, 2)).cuda()
    init = mt.critical_init_(model, generator=gen(1, "cuda"))
    assert all(p.device.type == "cuda" for p in model.parameters())
    rep = mt.diagnose(model, torch.zeros(1, 4, 8, 8, dtype=F64, device="cuda"))
    assert rep.layers[1]["sigma_w2"] == pytest.approx(init.sigma_w2, rel=1e-12)
    x = torch.randn(1, 8, 4, 4, dtype=F64, device="cuda")
    bias = model[2].bias  # the circular convolutions here have no bias
    with torch.no_grad():
        m = model[2](x) if bias is None else model[2](x) - bias.reshape(1, -1, 1, 1)
    assert float(m.norm() / x.norm()) == pytest.approx(init.sigma_w, rel=1e-12)


# --------------------------------------------------------------------------------------------
# 4. Refused shapes and values
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mt.delta_orthogonal_(torch.empty(4, 6, 3)), "c_in = 6 > c_out = 4"),
        (lambda: mt.conv_orthogonal_(torch.empty(4, 6, 3, 3)), "c_in = 6 > c_out = 4"),
        (lambda: mt.delta_orthogonal_(torch.empty(4, 6)), "c_in = 6 > c_out = 4"),
        (lambda: mt.delta_orthogonal_(torch.empty(6, 4, 4)), "even side 4"),
        (lambda: mt.conv_orthogonal_(torch.empty(6, 4, 2, 2)), "even side 2"),
        (lambda: mt.variance_vector_normal_(torch.empty(6, 4, 4), "uniform"), "even side"),
        (lambda: mt.conv_orthogonal_(torch.empty(6, 4, 3, 5)), "not cubic"),
        (lambda: mt.delta_orthogonal_(torch.empty(6)), "2 dimensions"),
        (lambda: mt.conv_orthogonal_(torch.empty(6)), "2 dimensions"),
        (lambda: mt.variance_vector_normal_(torch.empty(6), "uniform"), "2 dimensions"),
        (lambda: mt.delta_orthogonal_(torch.empty(2, 2, 1, 1, 1, 1)), "2 dimensions"),
        (lambda: mt.delta_orthogonal_(torch.zeros(6, 4, 3, dtype=torch.int64)), "floating"),
        (lambda: mt.delta_orthogonal_(np.zeros((6, 4, 3))), "torch.Tensor"),  # type: ignore[arg-type]
        (lambda: mt.delta_orthogonal_(torch.empty(6, 4, 3), gain=-1.0), "gain must be finite"),
        (lambda: mt.conv_orthogonal_(torch.empty(6, 4, 3), gain=math.nan), "gain must be finite"),
        (lambda: mt.variance_vector_normal_(torch.empty(6, 4, 3), [0.5, 0.5, 0.5]), "sums to"),
        (lambda: mt.variance_vector_normal_(torch.empty(6, 4, 3), [0.5, 0.5]), "even"),
        (lambda: mt.variance_vector_normal_(torch.empty(6, 4, 3), [1.0]), "shape"),
        (lambda: mt.variance_vector_normal_(torch.empty(6, 4, 3), "gs9"), "unknown"),
        (lambda: mt.variance_vector_normal_(torch.empty(6, 4, 3, 5), "uniform"), "cubic"),
        (lambda: mt.variance_vector_normal_(torch.empty(6, 4), [0.5, 0.5]), "Linear"),
    ],
)
def test_refused(call: Any, match: str) -> None:
    with pytest.raises(MFTheoryError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_critical_init_refusals() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    with pytest.raises(MFTheoryError, match="no finite critical point"):
        mt.critical_init_(model, act="relu")
    with pytest.raises(MFTheoryError, match="unknown scheme"):
        mt.critical_init_(model, scheme="xavier")
    with pytest.raises(MFTheoryError, match=r"no nn\.Conv"):
        mt.critical_init_(nn.Sequential(nn.Tanh()))
    grouped = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2))
    with pytest.raises(MFTheoryError, match="grouped"):
        mt.critical_init_(grouped)
    even = nn.Sequential(nn.Conv2d(4, 4, 2))
    with pytest.raises(MFTheoryError, match=r"layer '0'.*even"):
        mt.critical_init_(even, scheme="orthogonal")


def test_looks_linear_refusals() -> None:
    with pytest.raises(MFTheoryError, match="at least two"):
        mt.looks_linear_([nn.Linear(4, 4)])
    with pytest.raises(MFTheoryError, match="odd"):
        mt.looks_linear_([nn.Linear(4, 5), nn.Linear(5, 4)])
    with pytest.raises(MFTheoryError, match="takes 6 inputs"):
        mt.looks_linear_([nn.Linear(4, 8), nn.Linear(6, 4)])
    with pytest.raises(MFTheoryError, match=r"not nn\.Linear"):
        mt.looks_linear_([nn.Linear(4, 8), nn.ReLU()])


# --------------------------------------------------------------------------------------------
# 5. critical_init_: a 100-layer tanh CNN stays at q*
# --------------------------------------------------------------------------------------------

DEPTH, WIDTH, PIXELS, NETS = 100, 64, 16, 4


def deep_cnn(depth: int = DEPTH, width: int = WIDTH, c0: int = 4) -> Any:
    mods: list[Any] = []
    for layer in range(depth):
        mods += [circular_conv(c0 if layer == 0 else width, width, 3, 1), nn.Tanh()]
        mods[-2].bias = nn.Parameter(torch.zeros(width, dtype=F64))
    return nn.Sequential(*mods)


def layer_variances(model: Any, x: Any) -> np.ndarray:
    """Empirical pre-activation variance (mean square over batch, channels, pixels) per layer."""
    out, h = [], x
    with torch.no_grad():
        for mod in model:
            h = mod(h)
            if isinstance(mod, nn.Conv1d):
                out.append(float(h.square().mean()))
    return np.array(out)


def ensemble_variances(weight_factor: float) -> tuple[np.ndarray, Any]:
    runs = []
    for seed in range(NETS):
        g = gen(100 + seed)
        model = deep_cnn()
        rep = mt.critical_init_(
            model, "tanh", sigma_b2=0.05, scheme="delta-orthogonal", generator=g
        )
        if weight_factor != 1.0:
            with torch.no_grad():
                for mod in model:
                    if isinstance(mod, nn.Conv1d):
                        mod.weight.mul_(weight_factor)  # sigma_w -> factor * sigma_w
        x = torch.randn(8, 4, PIXELS, generator=g, dtype=F64)
        runs.append(layer_variances(model, x))
    return np.mean(runs, axis=0), rep


def test_100_layer_critical_cnn_keeps_q_star() -> None:
    """docs/theory.md section 3: the q-map converges to q* and a critical network stays there.

    Setup: 100 Conv1d(64, 64, 3, circular) + tanh layers (the first 4 -> 64), 1D images of 16
    pixels, a batch of 8 N(0, 1) images, 4 networks; the measured q^l is the mean square of the
    pre-activations over batch, channels and pixels, averaged over the networks.

    Tolerance: finite width. At c* = 1 all pixels and images become one vector, so averaging
    over the batch does not help, and one network's q^l fluctuates around q* with a relative
    standard deviation of ~8% per layer at width 64 (mostly the cross term 2 b . W x / c of a
    layer's own bias with its input), ~5% when averaged over the last 10 layers (40 seeds;
    mean offset ~1%, the O(1/c) bias). For the mean of 4 networks, 30 other seed sets gave a
    largest deviation over layers 10..100 of 12% (median) and 18% (worst), and a last-10 mean
    off by 1.2% +- 2.1% (worst 5.2%). Checks: every layer from 10 on within 25% of q* (the
    q-map approaches q* by chi_q* = 0.52 per layer: within 1% by layer 10), the last-10
    mean within 10%.
    """
    q, rep = ensemble_variances(1.0)
    assert rep.scheme == "delta-orthogonal" and rep.layers == DEPTH
    assert rep.chi_1 == pytest.approx(1.0, abs=1e-9)
    assert rep.q_star == pytest.approx(0.5700, abs=1e-3)
    rel = q / rep.q_star - 1
    assert np.all(np.abs(rel[9:]) < 0.25), rel
    assert abs(q[-10:].mean() / rep.q_star - 1) < 0.10


@pytest.mark.parametrize(("factor", "phase"), [(2.5, "chaotic"), (0.5, "ordered")])
def test_100_layer_off_critical_cnn_goes_to_its_own_q_star(factor: float, phase: str) -> None:
    """Off-critical (sigma_w scaled by 2.5 or 0.5): q^l settles at that point's q*.

    Mean of 4 networks, last-10 layers, 30 other seed sets: factor 2.5 (q* = 8.12, tanh
    saturated) +0.4% +- 0.1% (worst 0.6%); factor 0.5 (q* = 0.081, dominated by the bias
    variance, whose empirical mean over 64 channels fluctuates) -0.2% +- 3.7% (worst 8%).
    Tolerances 5% and 15%; and q* must differ from the critical one by more than 50%.
    """
    q, rep = ensemble_variances(factor)
    fp = fixed_point("tanh", sigma_w2=factor**2 * rep.sigma_w2, sigma_b2=0.05)
    assert str(fp.phase) == phase
    q_star = float(fp.q_star)
    measured = q[-10:].mean()
    assert abs(measured / q_star - 1) < (0.05 if factor > 1 else 0.15)
    assert abs(measured / rep.q_star - 1) > 0.5


# --------------------------------------------------------------------------------------------
# 6. diagnose
# --------------------------------------------------------------------------------------------


def small_cnn(width: int = 48, depth: int = 5, act: Any = nn.Tanh) -> Any:
    mods: list[Any] = []
    for layer in range(depth):
        mods += [circular_conv(3 if layer == 0 else width, width, 3, 2), act()]
        mods[-2].bias = nn.Parameter(torch.zeros(width, dtype=F64))
    mods += [nn.Flatten(), nn.Linear(width * 8 * 8, 10, dtype=F64)]
    return nn.Sequential(*mods)


def test_diagnose_gaussian_recovers_sigma_w2() -> None:
    model = small_cnn()
    rep = mt.critical_init_(model, scheme="gaussian", v="uniform", generator=gen(20))
    diag = mt.diagnose(model, torch.zeros(2, 3, 8, 8, dtype=F64))
    assert diag.activation == "tanh" and diag.depth == 6 and diag.hidden_layers == 4
    for row in diag.layers:
        size = row["c_in"] * row["c_out"] * (9 if row["kernel"] else 1)
        se = rep.sigma_w2 * math.sqrt(2.0 / size)  # uniform v: sum w^2 / c_out ~ chi^2
        assert abs(row["sigma_w2"] - rep.sigma_w2) < 5 * se, row
    conv_rows = [r for r in diag.layers if r["kernel"]]
    for row in conv_rows:
        assert row["input_spatial"] == [8, 8]
        np.testing.assert_allclose(row["v"], np.full((3, 3), 1 / 9), atol=0.02)
        assert row["abs_lambda_max"] == pytest.approx(1.0)
        assert row["abs_lambda_min"] < 0.1  # uniform 3x3 on 8x8: min |lambda_f| = 1/9
    linear = diag.layers[-1]
    assert linear["type"] == "Linear" and linear["v"] == [1.0]
    hidden_se = rep.sigma_w2 * math.sqrt(2.0 / (4 * 48 * 48 * 9))
    assert abs(diag.sigma_w2 - rep.sigma_w2) < 5 * hidden_se
    # the measured bias variance moves the nearest critical point a little
    cp = critical_point("tanh", sigma_b2=diag.sigma_b2)
    assert diag.nearest_critical_sigma_w2 == pytest.approx(float(cp.sigma_w2), rel=1e-12)
    assert abs(diag.nearest_critical_sigma_w2 - rep.sigma_w2) < 0.05
    assert diag.critical_status == "ok"
    assert abs(diag.chi_1 - 1) < 0.05
    assert diag.max_trainable_depth == pytest.approx(6 * diag.xi_c)
    # bias variance: 4 hidden layers of 48 biases, N(0, 0.05)
    assert abs(diag.sigma_b2 - 0.05) < 5 * 0.05 * math.sqrt(2 / (4 * 48))
    text = json.dumps(diag.as_dict(), allow_nan=False)
    assert '"activation": "tanh"' in text


def test_diagnose_delta_orthogonal_is_exact_and_delta() -> None:
    model = small_cnn(width=16, act=nn.Tanh)
    rep = mt.critical_init_(model, scheme="delta-orthogonal", generator=gen(21))
    with torch.no_grad():  # remove the sampling error of the bias variance
        for mod in model:
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.bias.mul_(math.sqrt(0.05 / float(mod.bias.square().mean())))
    diag = mt.diagnose(model, torch.zeros(1, 3, 8, 8, dtype=F64))
    delta = np.zeros((3, 3))
    delta[1, 1] = 1.0
    for row in diag.layers:
        assert row["sigma_w2"] == pytest.approx(rep.sigma_w2, rel=1e-12)
        if row["kernel"]:
            np.testing.assert_allclose(row["v"], delta, rtol=0, atol=1e-15)
            assert np.count_nonzero(row["v"]) == 1  # exactly zero off the centre
            assert row["abs_lambda_min"] == pytest.approx(1.0)
            assert row["abs_lambda_max"] == pytest.approx(1.0)
    assert diag.sigma_w2 == pytest.approx(rep.sigma_w2, rel=1e-12)
    assert diag.sigma_b2 == pytest.approx(0.05, rel=1e-12)
    assert diag.nearest_critical_sigma_w2 == pytest.approx(rep.sigma_w2, rel=1e-10)
    assert abs(diag.chi_1 - 1) < 1e-9
    assert diag.max_trainable_depth > 1e6


def test_diagnose_off_critical_and_activation_detection() -> None:
    model = small_cnn(width=16, act=nn.ReLU)
    for mod in model:
        if isinstance(mod, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(mod.weight, generator=gen(22))
            nn.init.zeros_(mod.bias)
    diag = mt.diagnose(model, torch.zeros(1, 3, 8, 8, dtype=F64))
    assert diag.activation == "relu" and diag.sigma_b2 == 0.0
    assert diag.nearest_critical_sigma_w2 == 2.0 and diag.critical_status == "marginal"
    mixed = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 4), nn.ReLU())
    with pytest.raises(MFTheoryError, match="mixes activations"):
        mt.diagnose(mixed, torch.zeros(1, 4))
    with pytest.raises(MFTheoryError, match="pass act="):
        mt.diagnose(nn.Sequential(nn.Linear(4, 4)), torch.zeros(1, 4))
    with pytest.raises(MFTheoryError, match="Softmax"):
        mt.diagnose(nn.Sequential(nn.Linear(4, 4), nn.Softmax(dim=1)), torch.zeros(1, 4))
    nn.init.normal_(mixed[0].weight, std=0.5, generator=gen(0))
    nn.init.normal_(mixed[2].weight, std=0.5, generator=gen(1))
    rep = mt.diagnose(mixed, torch.zeros(1, 4), act="erf")
    assert rep.activation == "erf" and rep.hidden_layers == 2 and rep.phase == "ordered"
    lrelu = nn.Sequential(nn.Linear(4, 4), nn.LeakyReLU(0.2), nn.Linear(4, 4))
    assert "0.2" in mt.diagnose(lrelu, torch.zeros(1, 4)).activation


# --------------------------------------------------------------------------------------------
# 7. Looks-linear ReLU networks: exact dynamical isometry
# --------------------------------------------------------------------------------------------


def relu_mlp(depth: int = 20, width: int = 64, n_in: int = 32, n_out: int = 32) -> Any:
    sizes = [n_in] + [width] * (depth - 1) + [n_out]
    mods: list[Any] = []
    for i in range(depth):
        mods.append(nn.Linear(sizes[i], sizes[i + 1], dtype=F64))
        if i < depth - 1:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


def test_looks_linear_jacobian_is_orthogonal_and_he_is_not() -> None:
    """Depth 20, width 64, 32 -> 32, float64: looks-linear gives every singular value 1."""
    x = torch.randn(1, 32, generator=gen(30), dtype=F64)
    model = relu_mlp()
    linears = [m for m in model if isinstance(m, nn.Linear)]
    assert mt.looks_linear_(linears, generator=gen(31)) is linears
    s_ll = mt.jacobian_singular_values(model, x)
    assert s_ll.shape == (32,)
    np.testing.assert_allclose(s_ll, 1.0, atol=1e-6)
    # and the network is the linear map itself: f(x) = J x, f(-x) = -f(x)
    with torch.no_grad():
        assert torch.allclose(model(-x), -model(x), atol=1e-12)
    he = relu_mlp()
    for m in he:
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu", generator=gen(32))
            nn.init.zeros_(m.bias)
    s_he = mt.jacobian_singular_values(he, x)
    assert s_he.max() / s_he.min() > 10
    assert np.all(np.diff(s_he) <= 0)


def test_looks_linear_pattern_and_gain() -> None:
    layers = [nn.Linear(3, 8), nn.Linear(8, 6), nn.Linear(6, 2)]
    mt.looks_linear_(layers, gain=2.0, generator=gen(33))
    w0, w1, w2 = (layer.weight.detach() for layer in layers)
    assert torch.equal(w0[4:], -w0[:4])
    assert torch.equal(w1[:3, 4:], -w1[:3, :4]) and torch.equal(w1[3:, :4], -w1[:3, :4])
    assert torch.equal(w1[3:, 4:], w1[:3, :4])
    assert torch.equal(w2[:, 3:], -w2[:, :3])
    assert all(torch.count_nonzero(layer.bias) == 0 for layer in layers)
    blk = w0[:4].to(F64)  # 4 x 3: orthonormal columns times gain
    np.testing.assert_allclose((blk.T @ blk).numpy(), 4 * np.eye(3), atol=1e-5)
    again = [nn.Linear(3, 8), nn.Linear(8, 6), nn.Linear(6, 2)]
    mt.looks_linear_(again, gain=2.0, generator=gen(33))
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(layers, again, strict=True))


def test_looks_linear_conv_is_linear() -> None:
    """Square blocks (4 -> 2x4 -> 2x4 -> 4): a Delta-Orthogonal linear network, biases zeroed."""
    convs = [circular_conv(4, 8, 3, 2), circular_conv(8, 8, 3, 2), circular_conv(8, 4, 3, 2)]
    for conv in convs:
        conv.bias = nn.Parameter(torch.ones(conv.out_channels, dtype=F64))
    mt.looks_linear_(convs, generator=gen(34))
    model = nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU(), convs[2])
    assert all(torch.count_nonzero(conv.bias) == 0 for conv in convs)
    x = torch.randn(1, 4, 6, 6, generator=gen(35), dtype=F64)
    s = mt.jacobian_singular_values(model, x)
    assert s.shape == (144,)
    np.testing.assert_allclose(s, 1.0, atol=1e-10)


# --------------------------------------------------------------------------------------------
# 8. The report and the import boundary
# --------------------------------------------------------------------------------------------


def test_critical_init_report_and_biases() -> None:
    model = nn.Sequential(
        nn.Linear(16, 256, dtype=F64), nn.Tanh(), nn.Linear(256, 256, dtype=F64), nn.Tanh()
    )
    rep = mt.critical_init_(model, sigma_b2=0.05, scheme="orthogonal", v="gs2", generator=gen(40))
    assert rep.layers == 2 and rep.activation == "tanh"
    assert rep.sigma_w2 == pytest.approx(1.7609546, rel=1e-6)
    assert "v is ignored by the orthogonal scheme" in rep.notes
    d = rep.as_dict()
    assert d["xi_c"] is None  # infinite on the critical line
    json.dumps(d, allow_nan=False)
    b = torch.cat([model[0].bias, model[2].bias]).detach()
    assert abs(float(b.square().mean()) - 0.05) < 5 * 0.05 * math.sqrt(2 / b.numel())
    w = model[2].weight.detach()
    np.testing.assert_allclose((w.T @ w).numpy(), rep.sigma_w2 * np.eye(256), atol=1e-12)
    again = nn.Sequential(nn.Linear(16, 256, dtype=F64), nn.Tanh(), nn.Linear(256, 256, dtype=F64))
    mt.critical_init_(again, scheme="orthogonal", generator=gen(40))
    assert torch.equal(again[2].weight, model[2].weight)
    with pytest.raises(Exception, match="cannot assign"):
        rep.sigma_w2 = 2.0  # type: ignore[misc]


def test_other_parameterised_modules_are_noted() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Tanh(), nn.Linear(8, 8))
    rep = mt.critical_init_(model, scheme="gaussian", generator=gen(41))
    assert rep.layers == 2 and any(
        "1" in note and "left as they were" in note for note in rep.notes
    )
    assert torch.equal(model[1].weight, torch.ones(8))  # untouched
    diag = mt.diagnose(model, torch.zeros(3, 4))
    assert any("not read" in note for note in diag.notes)
    assert [row["input_spatial"] for row in diag.layers] == [[], []]


def test_import_mftheory_does_not_import_torch() -> None:
    code = "import sys, mftheory; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------------------------
# 10. Algorithm 1 in torch: the numpy core's kernel, progress and logging of whole networks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "c_in", "c_out", "dim"),
    [(3, 4, 4, 2), (5, 3, 7, 1), (3, 2, 5, 3), (1, 6, 6, 2), (3, 1, 1, 2), (7, 8, 8, 1)],
)
def test_torch_algorithm1_is_the_numpy_core_kernel(
    size: int, c_in: int, c_out: int, dim: int
) -> None:
    """Same seed, same draws: the torch construction equals mftheory.cnn.kernels' to round-off."""
    from mftheory.cnn.kernels import orthogonal_kernel
    from mftheory.torch.algorithm1 import algorithm1_kernel

    for seed in range(4):
        ref = orthogonal_kernel(size, c_in, c_out, dim=dim, gain=1.3, seed=seed)
        got = algorithm1_kernel(size, c_in, c_out, dim=dim, gain=1.3, seed=seed).numpy()
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)


def test_conv_orthogonal_equals_the_core_kernel_of_the_drawn_seed() -> None:
    """conv_orthogonal_ writes orthogonal_kernel(seed drawn from the generator), transposed."""
    from mftheory.cnn.kernels import orthogonal_kernel

    conv = circular_conv(3, 5, 3, 2)
    mt.conv_orthogonal_(conv.weight, gain=0.9, generator=gen(11))
    seed = int(torch.randint(0, 2**63 - 1, (1,), generator=gen(11)).item())
    ref = orthogonal_kernel(3, 3, 5, dim=2, gain=0.9, seed=seed)
    np.testing.assert_allclose(to_kernel(conv.weight), ref, rtol=0, atol=1e-13)


def _deep_cnn(depth: int, channels: int) -> Any:
    layers: list[Any] = []
    for _ in range(depth):
        layers += [circular_conv(channels, channels, 3, 2), nn.Tanh()]
    return nn.Sequential(*layers)


def test_critical_init_progress_and_logging(caplog: Any) -> None:
    import logging

    net = _deep_cnn(5, 6)
    calls: list[tuple[int, int]] = []
    with caplog.at_level(logging.DEBUG, logger="mftheory"):
        mt.critical_init_(
            net,
            "tanh",
            sigma_b2=0.05,
            scheme="orthogonal",
            generator=gen(0),
            progress=lambda d, t: calls.append((d, t)),
        )
    assert calls == [(k, 5) for k in range(1, 6)]
    text = caplog.text
    assert "critical_init_: filling 5 layers" in text and "orthogonal scheme" in text
    assert text.count("filled in") >= 5
    for m in net:
        if isinstance(m, nn.Conv2d):
            chk = check_kernel(to_kernel(m.weight), n_values=[3, 4], tol=1e-5)  # float32 weights
            assert chk.orthogonal, chk
    calls.clear()
    mt.mean_field_init_(
        net, 1.5, 0.1, scheme="gaussian", progress=lambda d, t: calls.append((d, t))
    )
    assert calls == [(k, 5) for k in range(1, 6)]

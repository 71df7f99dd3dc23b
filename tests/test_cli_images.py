"""The image commands: ``propagate``, ``simulate`` and ``reproduce`` (issue 4), through typer's
test runner. Wiring and contracts only; the numbers are checked in the core's tests, and here
the covariance ``propagate`` prints is compared with the slow entry-by-entry spatial map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from test_cli import assert_one_line_error, run, run_json, strict_json

from mftheory.cnn.modes import variance_vector
from mftheory.cnn.propagation import input_covariance
from mftheory.cnn.spatial import iterate_covariance_map

W2, B2 = 1.5, 0.1


@pytest.fixture
def image_npy(tmp_path: Path) -> Path:
    path = tmp_path / "img.npy"
    np.save(path, np.random.default_rng(0).random((4, 4)))
    return path


@pytest.fixture
def image_png(tmp_path: Path) -> tuple[Path, np.ndarray]:
    pixels = np.random.default_rng(1).integers(0, 256, (4, 4)).astype(np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(pixels).save(path)
    return path, pixels


SCALES = ["--sigma-w2", str(W2), "--sigma-b2", str(B2)]


def test_propagate_json_contract_and_covariance(image_npy: Path) -> None:
    data = run_json("propagate", "--image", str(image_npy), *SCALES, "--depth", "3")
    for key in ("activation", "sigma_w2", "sigma_b2", "v", "depth", "shape", "covariance",
                "amplitudes", "modes", "version", "settings"):  # fmt: skip
        assert key in data, key
    assert data["shape"] == [4, 4] and data["depth"] == 3
    cov = np.array(data["covariance"])
    # independent path: the first layer by its formula, then the slow spatial map
    x = np.load(image_npy)[None, None]
    v = variance_vector("uniform", kernel=3, dim=2)
    ref = iterate_covariance_map(
        "tanh", input_covariance(x, v, sigma_w2=W2, sigma_b2=B2), v, image_shape=(4, 4),
        sigma_w2=W2, sigma_b2=B2, depth=2,
    )  # fmt: skip
    np.testing.assert_allclose(cov, ref, rtol=0, atol=1e-11)
    amps = data["amplitudes"]
    assert np.array(amps["off_diagonal"]).shape == (3, 16)
    assert amps["layers"] == [1, 2, 3]
    assert {"frequency", "predicted_rate", "measured_rate"} <= set(data["modes"][0])


def test_propagate_png_is_read_as_intensities(image_png: tuple[Path, np.ndarray],
                                              tmp_path: Path) -> None:  # fmt: skip
    path, pixels = image_png
    as_npy = tmp_path / "same.npy"
    np.save(as_npy, pixels / 255.0)
    a = run_json("propagate", "--image", str(path), *SCALES, "--depth", "2")
    b = run_json("propagate", "--image", str(as_npy), *SCALES, "--depth", "2")
    np.testing.assert_array_equal(np.array(a["covariance"]), np.array(b["covariance"]))


def test_propagate_several_images_and_standardize(image_npy: Path, tmp_path: Path) -> None:
    other = tmp_path / "b.npy"
    np.save(other, np.random.default_rng(5).random((4, 4)) * 3 + 2)
    data = run_json("propagate", "--image", str(image_npy), "--image", str(other), *SCALES,
                    "--depth", "2", "--normalize", "standardize")  # fmt: skip
    assert np.array(data["covariance"]).shape == (32, 32)
    x = np.stack([np.load(image_npy), np.load(other)])
    x = (x - x.mean(axis=(1, 2), keepdims=True)) / x.std(axis=(1, 2), keepdims=True)
    v = variance_vector("uniform", kernel=3, dim=2)
    ref = iterate_covariance_map(
        "tanh", input_covariance(x[:, None], v, sigma_w2=W2, sigma_b2=B2), v,
        image_shape=(4, 4), sigma_w2=W2, sigma_b2=B2, depth=1,
    )  # fmt: skip
    np.testing.assert_allclose(np.array(data["covariance"]), ref, atol=1e-11)


def test_propagate_1d_and_files(tmp_path: Path) -> None:
    path = tmp_path / "one.npy"
    np.save(path, np.linspace(0, 1, 7))
    result = run("propagate", "--image", str(path), "--v", "0.25,0.5,0.25", "--depth", "20")
    assert result.exit_code == 0, result.output
    assert "chi_c*|lambda_f|" in result.stdout
    for suffix in (".png", ".csv", ".npz", ".json"):
        out = tmp_path / f"out{suffix}"
        result = run("propagate", "--image", str(path), "--v", "0.25,0.5,0.25", "-o", str(out))
        assert result.exit_code == 0, result.output
        assert out.stat().st_size > 0
    header = (tmp_path / "out.csv").read_text().splitlines()[0]
    assert header.startswith("layer,frequency,abs_lambda,amplitude")


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--image", "missing.npy"], "does not exist"),
        (["--image", "{txt}"], "give .png or .npy"),
        (["--image", "{nan}"], "NaN"),
        (["--image", "{npy}", "--depth", "0"], "--depth"),
        (["--image", "{npy}", "--v", "0.2,0.6,0.2"], "1D but the images are 2D"),
        (["--image", "{npy}", "--image", "{small}"], "must match"),
        (["--image", "{npy}", "--sigma-w2", "-1"], "sigma-w2"),
        (["--image", "{npy}", "--normalize", "zscore"], "--normalize"),
        (["--image", "{npy}", "-o", "x.gif"], "suffix"),
    ],
)
def test_propagate_errors(tmp_path: Path, image_npy: Path, args: list[str], mentions: str) -> None:
    files = {"npy": image_npy, "txt": tmp_path / "a.txt", "nan": tmp_path / "nan.npy",
             "small": tmp_path / "small.npy"}  # fmt: skip
    files["txt"].write_text("1 2 3")
    np.save(files["nan"], np.array([[0.0, np.nan], [1.0, 2.0]]))
    np.save(files["small"], np.ones((3, 3)))
    filled = [a.format(**{k: str(p) for k, p in files.items()}) for a in args]
    assert_one_line_error(run("propagate", *filled), mentions=mentions)


def test_simulate_json_contract(image_npy: Path) -> None:
    data = run_json("simulate", "--image", str(image_npy), *SCALES, "--depth", "6",
                    "--channels", "32", "--networks", "8", "--seed", "2")  # fmt: skip
    assert data["settings"]["channels"] == 32 and data["settings"]["networks"] == 8
    assert data["settings"]["seed"] == 2 and data["settings"]["backend"] == "numpy"
    mode = data["modes"][0]
    assert {"frequency", "predicted_rate", "measured_rate"} <= set(mode)
    again = run_json("simulate", "--image", str(image_npy), *SCALES, "--depth", "6",
                     "--channels", "32", "--networks", "8", "--seed", "2")  # fmt: skip
    assert again["amplitudes"] == data["amplitudes"]


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--networks", "1"], "--networks"),
        (["--channels", "0"], "--channels"),
        (["--seed", "-3"], "--seed"),
        (["--backend", "jax"], "backend"),
    ],
)
def test_simulate_errors(image_npy: Path, args: list[str], mentions: str) -> None:
    assert_one_line_error(run("simulate", "--image", str(image_npy), *args), mentions=mentions)


def test_simulate_backend_torch(image_npy: Path) -> None:
    # The CLI, which sits above the core and the torch layer, builds the TorchBackend.
    pytest.importorskip("torch")
    data = run_json("simulate", "--image", str(image_npy), *SCALES, "--depth", "3",
                    "--channels", "16", "--networks", "4", "--backend", "torch",
                    "--device", "cpu")  # fmt: skip
    assert data["settings"]["backend"] == "torch" and data["settings"]["device"] == "cpu"


def test_simulate_backend_torch_without_torch(
    image_npy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    monkeypatch.setitem(sys.modules, "mftheory.torch", None)
    result = run("simulate", "--image", str(image_npy), *SCALES, "--backend", "torch")
    assert_one_line_error(result, mentions="needs PyTorch")


def test_reproduce_fig_4b(tmp_path: Path) -> None:
    data = run_json("reproduce", "fig-4b")
    values = data["abs_lambda_sorted"]
    assert set(values) == {"gs0", "gs1", "gs2", "gs3", "gs4"}
    assert all(len(v) == 64 for v in values.values())
    out = tmp_path / "fig4b.png"
    assert run("reproduce", "fig-4b", "-o", str(out)).exit_code == 0
    assert out.stat().st_size > 0


@pytest.mark.slow  # `reproduce` stays in the default run through test_reproduce_fig_4b
def test_reproduce_fig_s4_small(tmp_path: Path) -> None:
    result = run("reproduce", "fig-s4", "--networks", "40", "--depth", "15", "--format", "json")
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = strict_json(result.stdout)
    assert data["figure"] == "fig-s4" and data["sigma_w2"] == 2.25
    assert len(data["modes"]) == 6
    out = tmp_path / "s4.svg"
    assert (
        run("reproduce", "fig-s4", "--networks", "20", "--depth", "10", "-o", str(out)).exit_code
        == 0
    )
    assert_one_line_error(run("reproduce", "fig-s4", "--scale", "0"), mentions="--scale")
    assert_one_line_error(run("reproduce", "fig-s4", "--scale", "100"), mentions="semi-definite")
    assert run("reproduce", "fig-9").exit_code == 2


# --- figure options: --figsize and --dpi on every command that writes a figure (issue 14) ---


def _figure_commands(image: Path) -> dict[str, list[str]]:
    return {
        "phase-diagram": ["phase-diagram", "--sigma-w2", "0.5:3:5", "--sigma-b2", "0:1:4"],
        "propagate": ["propagate", "--image", str(image), *SCALES, "--depth", "4"],
        "simulate": [
            *("simulate", "--image", str(image), *SCALES, "--depth", "3"),
            *("--channels", "8", "--networks", "4"),
        ],
        "reproduce": ["reproduce", "fig-4b"],
        "spectrum": ["spectrum", "--depth", "4"],
    }


FIGURE_COMMANDS = ["phase-diagram", "propagate", "simulate", "reproduce", "spectrum"]


@pytest.mark.parametrize("command", FIGURE_COMMANDS)
def test_figsize_and_dpi_set_the_png_size(tmp_path: Path, image_npy: Path, command: str) -> None:
    out = tmp_path / "fig.png"
    args = _figure_commands(image_npy)[command]
    result = run(*args, "--figsize", "3x2", "--dpi", "50", "-o", str(out))
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (150, 100)
    pdf = tmp_path / "fig.pdf"
    assert run(*args, "--figsize", "4.5x3", "-o", str(pdf)).exit_code == 0
    data = pdf.read_bytes()
    assert b"/FontFile2" in data and b"/Type3" not in data
    help_text = run(command, "--help").stdout
    assert "--figsize" in help_text and "--dpi" in help_text
    assert "[default: " in help_text.split("--figsize", 1)[1].split("--dpi", 1)[0]


def test_default_figure_sizes_are_shown_and_used(tmp_path: Path) -> None:
    out = tmp_path / "fig.png"
    assert run("reproduce", "fig-4b", "-o", str(out)).exit_code == 0
    with Image.open(out) as image:
        assert image.size == (770, 550)  # 7x5 inches at 110 dpi, as --help says
    assert "7x5" in run("reproduce", "--help").stdout
    assert "6.4x4.2" in run("spectrum", "--help").stdout


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["--figsize", "6by4"], "--figsize"),
        (["--figsize", "6"], "WIDTHxHEIGHT"),
        (["--figsize", "6x-1"], "HEIGHT"),
        (["--figsize", "0x4"], "WIDTH"),
        (["--figsize", "6xnan"], "--figsize"),
        (["--dpi", "0"], "--dpi"),
        (["--dpi", "many"], "--dpi"),
        (["--figsize", "100x100", "--dpi", "2000"], "pixels"),
    ],
)
def test_bad_figure_options_are_one_line_errors(
    tmp_path: Path, args: list[str], mentions: str
) -> None:
    out = tmp_path / "fig.png"
    result = run("reproduce", "fig-4b", *args, "-o", str(out))
    assert_one_line_error(result, mentions=mentions)
    assert not out.exists()


def test_validate_help_shows_the_figure_options() -> None:
    text = run("validate", "--help").stdout
    assert "--figsize" in text and "--dpi" in text and "6.4x4.6" in text
    assert_one_line_error(run("validate", "trainability", "--dpi", "-3"), mentions="--dpi")


@pytest.mark.slow
def test_validate_figure_has_the_given_size(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = tmp_path / "v"
    result = run("validate", "trainability", "--scale", "tiny", "--depths", "2", "--sigma-w2",
                 "1,2", "--jobs", "1", "--out", str(out), "--figsize", "3x2.5", "--dpi", "40",
                 "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.output
    with Image.open(out / "trainability.png") as image:
        assert image.size == (120, 100)

"""Packaging hygiene: light import, consistent version, README quick start; index metadata,
README links that work outside the repository, package data, install hints, completion, and
what the built wheel holds."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import mftheory

ROOT = Path(__file__).resolve().parents[1]

HEAVY_MODULES = ("torch", "matplotlib", "typer", "rich")

QUICK_START = (
    "pip install -e . && mftheory critical --act tanh --sigma-b2 0.05",
    'pip install -e ".[test]" && python -m pytest',
)


def test_import_does_not_load_heavy_dependencies() -> None:
    code = (
        "import json, sys\n"
        "import mftheory\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == [], f"import mftheory loaded {loaded}"


ENTRY_POINTS = (
    "fixed_point", "critical_point", "phase_grid", "depth_scale", "trainable_depth", "q_map",
    "c_map", "variance_vector", "mode_table", "covariance_map", "propagate",
    "jacobian_spectrum", "isometry_table", "diagnose_init", "simulate_ensemble",
    "get_activation", "FixedPoint", "CriticalPoint", "InitDiagnosis", "ModeTable",
    "Propagation", "JacobianSpectrum", "EnsembleResult", "SampledSpectrum", "MFTheoryError",
    "QuadratureSettings",
)  # fmt: skip


def test_public_api_reexports_the_entry_points() -> None:
    """``mftheory.X`` is the object defined in its subpackage, and listed in ``__all__``."""
    import mftheory.cnn
    import mftheory.meanfield
    import mftheory.montecarlo
    import mftheory.spectrum

    subpackages = (mftheory.meanfield, mftheory.cnn, mftheory.spectrum, mftheory.montecarlo)
    for name in ENTRY_POINTS:
        assert name in mftheory.__all__, name
        homes = [getattr(sub, name) for sub in subpackages if hasattr(sub, name)]
        if homes:
            assert getattr(mftheory, name) is homes[0], name
    assert all(hasattr(mftheory, name) for name in mftheory.__all__)


def test_version_matches_installed_metadata() -> None:
    assert mftheory.__version__ == importlib.metadata.version("mftheory")


def test_readme_has_the_quick_start_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    for command in QUICK_START:
        assert command in lines, f"README.md lacks the quick-start line: {command}"


# --- release 0.2.0: metadata, README outside the repository, package data, completion ------


def _pyproject() -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    with (ROOT / "pyproject.toml").open("rb") as handle:
        data: dict[str, Any] = tomllib.load(handle)
    return data


def test_index_metadata_and_floors() -> None:
    """What a package index shows, and floors that .ci/floors can read (``NAME>=X``)."""
    project = _pyproject()["project"]
    assert project["authors"] == [{"name": "mftheory developers"}]
    assert project["keywords"] and "Typing :: Typed" in project["classifiers"]
    urls = project["urls"]
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls)
    assert all(url.startswith("https://") for url in urls.values())
    for requirement in project["dependencies"]:
        assert re.fullmatch(r"[A-Za-z0-9_.-]+>=[0-9][0-9.]*", requirement), requirement
    python_floor = project["requires-python"].removeprefix(">=")
    assert f"Programming Language :: Python :: {python_floor}" in project["classifiers"]
    assert (ROOT / "mftheory" / "py.typed").is_file()


#: A markdown link or image target: ``[text](target)``, ``![alt](target)``, ``[ref]: target``,
#: ``<img src="target">``.
_LINK = re.compile(
    r"\]\(\s*<?([^)\s>]+)|^\s*\[[^\]]+\]:\s*(\S+)|<img[^>]*\bsrc=[\"']([^\"']+)", re.M
)


def test_readme_links_work_outside_the_repository() -> None:
    """README.md is shown on a package index too: no relative link or image path. Images come
    from the repository's raw files and pages from the hosted docs, and both must exist here."""
    urls = _pyproject()["project"]["urls"]
    source = urls["Source"].rstrip("/")
    raw = source.replace("https://github.com/", "https://raw.githubusercontent.com/") + "/main/"
    docs = urls["Documentation"].rstrip("/") + "/en/latest/"
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [next(g for g in m.groups() if g) for m in _LINK.finditer(text)]
    assert len(targets) >= 8, targets
    for target in targets:
        assert re.match(r"(https?://|mailto:)", target), f"relative link in README.md: {target}"
        if target.startswith(raw):
            assert (ROOT / target.removeprefix(raw)).is_file(), f"no such file: {target}"
        elif target.startswith(docs):
            page = target.removeprefix(docs).split("#")[0].strip("/") or "index"
            assert (ROOT / "docs" / f"{page}.md").is_file(), f"no such docs page: {target}"
    for fig in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text):
        assert fig.startswith(raw), f"README image not served from the repository: {fig}"


def test_readme_install_hints() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert 'pip install "mftheory[validate]"' in text
    assert "pip install torch==2.13.0" in text  # the CPU build CI uses


def test_install_hints_in_errors_name_the_extra() -> None:
    """Errors tell a user who installed the wheel what to install: never ``pip install -e .``,
    which only works in a clone."""
    for path in sorted((ROOT / "mftheory").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        for match in re.finditer(r"pip install[^\n]*", source):
            hint = match.group(0)
            assert "-e " not in hint and "'.[" not in hint and '".[' not in hint, (path, hint)


def test_sample_image_ships_in_the_package() -> None:
    """``--image sample:digit0`` reads the package's copy: the same array as the docs' file."""
    import importlib.resources

    from mftheory.cli.images import SAMPLES, sample_image

    assert set(SAMPLES) == {"digit0"}
    shipped = importlib.resources.files("mftheory").joinpath("data", "digit0.npy")
    assert shipped.is_file()
    expected = np.load(ROOT / "docs" / "images" / "digit0.npy")
    np.testing.assert_array_equal(sample_image("digit0"), expected)
    assert expected.shape == (8, 8) and 0 <= expected.min() and expected.max() <= 1


def test_sample_image_is_sklearn_first_digit() -> None:
    datasets = pytest.importorskip("sklearn.datasets")
    from mftheory.cli.images import sample_image

    np.testing.assert_array_equal(sample_image("digit0"), datasets.load_digits().images[0] / 16)


def test_sample_image_named_in_help_and_refused_when_unknown() -> None:
    from typer.testing import CliRunner

    from mftheory.cli import app
    from mftheory.cli.images import SAMPLES

    env = {"NO_COLOR": "1", "COLUMNS": "200"}
    for command in ("propagate", "simulate"):
        help_text = " ".join(CliRunner().invoke(app, [command, "--help"], env=env).stdout.split())
        for name in SAMPLES:
            assert f"sample:{name}" in help_text, command
    result = CliRunner().invoke(app, ["propagate", "--image", "sample:nope"], env=env)
    assert result.exit_code == 2
    assert "no such sample image" in result.output and "sample:digit0" in result.output
    result = CliRunner().invoke(app, ["propagate", "--image", "sample:digit0", "--dim", "1"])
    assert result.exit_code == 2 and "2D image" in result.output


def test_version_option_short_and_long() -> None:
    from typer.testing import CliRunner

    from mftheory.cli import app

    assert mftheory.__version__ == "0.2.0"
    for flag in ("-V", "--version"):
        result = CliRunner().invoke(app, [flag])
        assert result.exit_code == 0 and result.stdout == "mftheory 0.2.0\n"


def test_shell_completion_without_touching_shell_files() -> None:
    """Typer's completion is on: the script it would install, and a completion it computes
    (through the environment variables the installed script sets; no shell file is written)."""
    from typer.testing import CliRunner

    from mftheory.cli import app

    result = CliRunner().invoke(app, ["--show-completion", "bash"], prog_name="mftheory")
    assert result.exit_code == 0 and "_MFTHEORY_COMPLETE=complete_bash" in result.stdout
    env = {"_MFTHEORY_COMPLETE": "complete_bash", "COMP_WORDS": "mftheory cri", "COMP_CWORD": "1"}
    result = CliRunner().invoke(app, [], env=env, prog_name="mftheory")
    assert result.exit_code == 0 and result.stdout.split() == ["critical"]


@pytest.mark.slow
def test_wheel_contents(tmp_path: Path) -> None:
    """``python -m build --wheel``: py.typed and the sample image inside, no tests or docs, and
    the metadata an index shows."""
    pytest.importorskip("build")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("mftheory-*.whl")
    assert wheel.name.startswith(f"mftheory-{mftheory.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        meta = archive.read(f"mftheory-{mftheory.__version__}.dist-info/METADATA").decode()
    assert {"mftheory/py.typed", "mftheory/data/digit0.npy", "mftheory/__main__.py"} <= set(names)
    assert not [n for n in names if n.split("/")[0] in ("tests", "docs", "benchmarks", ".ci")]
    fields = ("Author: mftheory developers", "Project-URL: Documentation, https://",
              "Classifier: Typing :: Typed", "Keywords: ", "Requires-Python: >=3.10")  # fmt: skip
    for field in fields:
        assert field in meta, field

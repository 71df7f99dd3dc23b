"""Packaging hygiene: light import, consistent version, README quick start."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

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

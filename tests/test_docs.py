"""The documentation stands alone: no citation of files outside the repository, a CLI
reference generated from the app itself, tutorials and metadata in place."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
_EXEC_BLOCK = re.compile(r'^```python exec="on"[^\n]*\n(.*?)\n```$', re.S | re.M)


def _tracked_text_files() -> list[Path]:
    out = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.split()
    if not out:  # not a git checkout (an sdist): every file under the root
        return [p for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]
    return [ROOT / name for name in out]


def test_nothing_cites_files_outside_the_repository() -> None:
    theory_digest = "THEORY" + ".md"
    outside = re.compile(r"(?<![\w.])(" + "shared" + "/|/" + "work/|\\.\\./\\.\\./)")
    offenders = []
    for path in _tracked_text_files():
        if path.suffix in {".png", ".npy", ".npz", ".pdf"} or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if theory_digest in line or outside.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def _cli_reference() -> dict[str, str]:
    """Run docs/cli.md's generator blocks as the docs build does; command -> its section."""
    blocks = _EXEC_BLOCK.findall((DOCS / "cli.md").read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"print": lambda *args, **kwargs: None}
    exec(blocks[0], namespace)  # the generator itself (prints the command table)
    reference = namespace["command_reference"]
    names = re.findall(r'command_reference\("([a-z-]+)"\)', "".join(blocks[1:]))
    return {name: reference(name) for name in names}  # type: ignore[operator]


def test_cli_reference_covers_every_command_and_only_visible_options() -> None:
    import typer

    from mftheory.cli import app

    root = typer.main.get_command(app)
    sections = _cli_reference()
    assert sorted(sections) == sorted(n for n, c in root.commands.items() if not c.hidden)
    for name, text in sections.items():
        cmd = root.commands[name]
        assert text.startswith(f"```text\nmftheory {name} ")
        for param in cmd.params:
            opts = [*param.opts, *getattr(param, "secondary_opts", [])]
            long_opts = [o for o in opts if o.startswith("--")]
            for opt in long_opts:
                first_cells = [row.split(" | ")[0] for row in text.splitlines() if row[:3] == "| `"]
                found = re.compile(rf"(?<![\w-]){re.escape(opt)}(?![\w-])").search
                shown = any(found(cell) for cell in first_cells)
                assert shown != param.hidden, (name, opt, param.hidden)


def test_cli_page_names_every_command() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    for name in _cli_reference():
        assert f"## `{name}`" in text


def test_tutorials_are_executed_and_linked_from_the_nav() -> None:
    mkdocs = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in ("tutorials/python-api.md", "tutorials/pytorch.md", "theory.md", "cli.md"):
        assert page in mkdocs
        text = (DOCS / page).read_text(encoding="utf-8")
        if page.startswith("tutorials/"):
            assert len(_EXEC_BLOCK.findall(text)) >= 5
            assert "../theory.md#" in text
    for package in ("meanfield", "cnn", "spectrum", "torch", "activations", "montecarlo"):
        assert f"::: mftheory.{package}" in (DOCS / "api" / f"{package}.md").read_text()
    assert "markdown-exec" in mkdocs and "mkdocstrings" in mkdocs


def test_python_tutorial_runs() -> None:
    """The Python API tutorial's blocks, in order, in one namespace (as markdown-exec does)."""
    text = (DOCS / "tutorials" / "python-api.md").read_text(encoding="utf-8")
    namespace: dict[str, object] = {"print": lambda *args, **kwargs: None}
    for block in _EXEC_BLOCK.findall(text):
        exec(block, namespace)
    assert str(namespace["cp"].status) == "ok"  # type: ignore[attr-defined]


def test_citation_cff() -> None:
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert data["cff-version"] == "1.2.0"
    assert data["authors"] == [{"name": "mftheory developers"}]
    from mftheory import __version__

    assert str(data["version"]) == "0.2.0" or __version__ != "0.2.0"
    years = sorted(ref["year"] for ref in data["references"])
    assert years == [2016, 2017, 2017, 2018]
    assert all(ref["type"] == "conference-paper" and ref["authors"] for ref in data["references"])

"""The documentation stands alone: no citation of files outside the repository, a CLI
reference generated from the app itself, tutorials and metadata in place."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

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


def _doc_outputs() -> ModuleType:
    """docs/gen_outputs.py, the generator of the docs' real-output blocks, as a module."""
    spec = importlib.util.spec_from_file_location("gen_outputs", DOCS / "gen_outputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_outputs", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_output_markers_parse_and_blocks_show_their_commands() -> None:
    """Every `<!-- output` marker of README.md and docs/*.md parses, is followed by a fenced
    block, and that block shows exactly the marked commands, in order, as `$ COMMAND` lines."""
    gen = _doc_outputs()
    blocks = [b for path in gen.markdown_files(ROOT) for b in gen.parse_blocks(path)]
    assert len(blocks) >= 20  # README, quick start, limits, spectrum, signal propagation
    for path in gen.markdown_files(ROOT):
        text = path.read_text(encoding="utf-8")
        markers, example = 0, False
        for line in text.splitlines():
            example ^= line.startswith("````")  # a marker shown as an example (development.md)
            markers += line.startswith("<!-- output") and not example
        assert markers == len(gen.parse_blocks(path)), path.name
    for block in blocks:
        shown = [line[2:] for line in block.body if line.startswith("$ ")]
        assert shown == block.commands, block.where()
        assert block.body[:1] == [f"$ {block.commands[0]}"], block.where()


@pytest.mark.parametrize(
    "text",
    [
        "<!-- output: mftheory critical -->\nno fence\n",
        "<!-- output: mftheory critical -->\n```\n$ mftheory critical\n",
        "<!-- output colour=2: mftheory critical -->\n```\n```\n",
        "<!-- output: python -c 1 -->\n```\n```\n",
        "<!-- output\nmftheory critical\n",
        "<!-- outputs: mftheory critical -->\n```\n```\n",
    ],
)
def test_malformed_output_markers_are_refused(text: str) -> None:
    gen = _doc_outputs()
    with pytest.raises(gen.MarkerError):
        gen.parse_blocks(Path("x.md"), text)


def test_output_marker_forms() -> None:
    gen = _doc_outputs()
    text = (
        "````\n<!-- output: mftheory critical -->\n```\n$ mftheory critical\n```\n````\n"
        "```\n<!-- output: mftheory critical -->\n```\n"
        "<!-- output width=90: mftheory critical --act erf -->\n```text\n$ old\n```\n"
        "<!-- output exit=2\nmftheory critical --sigma-b2 -1\n\nmftheory kernel --gain 1e308\n-->\n"
        "```\n```\n"
    )
    one, two = gen.parse_blocks(Path("x.md"), text)
    assert (one.commands, one.width, one.exit_code, one.fence) == (
        ["mftheory critical --act erf"],
        90,
        0,
        "```text",
    )
    assert (one.body_start, one.body_end, one.body) == (11, 12, ["$ old"])
    assert two.commands == ["mftheory critical --sigma-b2 -1", "mftheory kernel --gain 1e308"]
    assert (two.exit_code, two.width, two.body) == (2, gen.DEFAULT_WIDTH, [])


def test_marked_commands_are_known_mftheory_commands() -> None:
    """Each marked command names a real (sub)command and only options it has, and a block
    expected to succeed parses as the CLI parses it (a refusal block shows bad values on
    purpose, so there only the option names are checked). The real run of every block is CI's
    `python docs/gen_outputs.py --check` step."""
    import typer

    from mftheory.cli import app

    gen = _doc_outputs()
    root: Any = typer.main.get_command(app)  # typer's own click: a group by its commands
    assert hasattr(root, "commands")
    blocks = [b for p in gen.markdown_files(ROOT) for b in gen.parse_blocks(p)]
    for command, strict in [(c, b.exit_code == 0) for b in blocks for c in b.commands]:
        args = shlex.split(command)
        assert args[0] == "mftheory", command
        cmd, rest, name = root, args[1:], "mftheory"
        while hasattr(cmd, "commands"):  # a group: its options, then a subcommand's name
            word = _first_word(rest)
            _assert_known_options(cmd, rest[:word], command)
            assert word < len(rest) and rest[word] in cmd.commands, command
            name, cmd, rest = rest[word], cmd.commands[rest[word]], rest[word + 1 :]
            assert not cmd.hidden, command
        _assert_known_options(cmd, rest, command)
        if strict:
            cmd.make_context(name, rest)  # raises on a bad option, argument or value


def _first_word(args: list[str]) -> int:
    """Index of the first argument that is neither an option nor an option's value."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 1 if "=" in args[i] else 2
    return i


def _assert_known_options(cmd: Any, args: list[str], command: str) -> None:
    known = {o for p in cmd.params for o in [*p.opts, *getattr(p, "secondary_opts", [])]}
    for arg in args:
        if arg.startswith("-") and not _is_number(arg):
            assert arg.split("=")[0] in known, (command, arg)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_gen_outputs_check_and_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--check reports a stale block with a diff and exit 1 and leaves the file alone; --write
    replaces exactly the block's body; a command with an unexpected exit status fails both
    modes and is never written. The commands themselves are stubbed: CI runs the real ones."""
    gen = _doc_outputs()
    page = tmp_path / "page.md"
    text = (
        "Intro.\n\n<!-- output: mftheory critical -->\n```text\n$ mftheory critical\nold\n```\n\n"
        "<!-- output exit=2\nmftheory kernel --gain 1e308\n-->\n"
        "```\n$ mftheory kernel --gain 1e308\nError: kept\n```\nEnd.\n"
    )
    page.write_text(text, encoding="utf-8")
    outputs = {
        "mftheory critical": (0, ["new 1", "new 2"]),
        "mftheory kernel --gain 1e308": (2, []),
    }
    monkeypatch.setattr(gen, "run_command", lambda command, width: outputs[command])
    assert gen.main(["--check", str(page)]) == 1
    out = capsys.readouterr().out
    assert "-old" in out and "+new 1" in out and "+new 2" in out
    assert "Error: kept" in out  # the second block: its stub prints nothing, so it is stale
    assert page.read_text(encoding="utf-8") == text
    outputs["mftheory kernel --gain 1e308"] = (2, ["Error: kept"])
    assert gen.main(["--write", str(page)]) == 0
    assert page.read_text(encoding="utf-8") == text.replace("old\n", "new 1\nnew 2\n")
    assert gen.main(["--check", str(page)]) == 0
    outputs["mftheory critical"] = (1, ["Error: broken"])
    assert gen.main(["--write", str(page)]) == 1
    assert "exited 1, expected 0" in capsys.readouterr().err
    assert "broken" not in page.read_text(encoding="utf-8")

"""Generate, or check, the "real output" blocks of README.md and docs/*.md.

A generated block is a fenced code block right after a marker comment naming its command(s)::

    <!-- output: mftheory critical --act tanh --sigma-b2 0.05 -->
    ```
    $ mftheory critical --act tanh --sigma-b2 0.05
    ... what the command prints ...
    ```

or, for several commands in one block, one command per line::

    <!-- output exit=2
    mftheory critical --sigma-b2 -1
    mftheory fixed-point --sigma-w2 nan
    -->

Options go between ``output`` and the colon (or the end of the first line):

* ``exit=N``: the exit status every command of the block must return (default 0; a
  refusal's is 2). Any other status is an error, in both modes.
* ``width=N``: the terminal width (``COLUMNS``) the tables are drawn for (default 160).

The block is everything up to the closing fence; its info string (```` ```text ```` ...) is
kept. Its text is, for each command, ``$ COMMAND`` and then what the command wrote to stdout
and stderr, in the order written.

Each command runs exactly as written (``mftheory`` is the entry point of the Python running
this script), in a fresh temporary folder (files it writes stay there) that holds a copy of
``docs/images/`` (so a command may read the sample inputs by their repository path, as from a
clone), with:

* ``COLUMNS`` from ``width``, ``NO_COLOR=1``, ``TERM=dumb``, ``PYTHONUNBUFFERED=1`` (so stdout
  and stderr interleave as on a terminal), ``PYTHONHASHSEED=0``;
* one BLAS/OpenMP thread (``OMP_NUM_THREADS=1`` and friends: threaded sums may change the last
  digits), ``MFTHEORY_MAX_MEMORY`` and ``MFTHEORY_MAX_TIME`` removed (the defaults apply; a
  block that shows a memory refusal passes ``--max-memory`` so its numbers do not depend on
  the machine).

Normalisation, the only one: the temporary folder's path is replaced by ``.`` and trailing
blanks are stripped from every line. Random draws are seeded in the commands themselves
(``--seed``, or the command's fixed default seed); nothing else may vary between runs, so
commands that print timings or absolute paths must not be marked.

Usage (from the repository root, with the package installed)::

    python docs/gen_outputs.py --check           # exit 1 and a diff where a block is stale
    python docs/gen_outputs.py --write           # rewrite the blocks in place
    python docs/gen_outputs.py --list            # the marked commands, nothing run
    python docs/gen_outputs.py --check README.md # only some files

Exit status: 0 when every block matches (or was written), 1 when a block differs or a command
returned an unexpected status, 2 for a malformed marker.
"""

from __future__ import annotations

import argparse
import difflib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WIDTH = 160
TIMEOUT_S = 900
_OPEN = "<!-- output"
_CLOSE = "-->"


class MarkerError(ValueError):
    """A marker comment that cannot be parsed (or has no fenced block after it)."""


@dataclass
class Block:
    """One generated block: its marker, its commands and where its text lies."""

    path: Path
    marker_line: int  # 1-based line of "<!-- output"
    commands: list[str]
    exit_code: int = 0
    width: int = DEFAULT_WIDTH
    fence: str = "```"  # the opening fence line, info string included
    body_start: int = 0  # 0-based index of the first line inside the fence
    body_end: int = 0  # 0-based index of the closing fence
    body: list[str] = field(default_factory=list)

    def where(self) -> str:
        try:
            name = self.path.relative_to(ROOT)
        except ValueError:
            name = self.path
        return f"{name}:{self.marker_line}"


def _options(text: str, where: str) -> dict[str, int]:
    options = {"exit": 0, "width": DEFAULT_WIDTH}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep or key not in options or not value.isdigit():
            raise MarkerError(f"{where}: unknown marker option {item!r} (exit=N, width=N)")
        options[key] = int(value)
    return options


def parse_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The generated blocks of one Markdown file, in order.

    Raises
    ------
    MarkerError
        A marker without commands, with an unknown option, or not followed by a fenced block.
    """
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith(("```", "~~~")):  # another fenced block: a marker there is an example
            fence = line[: len(line) - len(line.lstrip(line[0]))]
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                i += 1
            i += 1
            continue
        if not line.startswith(_OPEN):
            i += 1
            continue
        where = f"{path.name}:{i + 1}"
        head = line[len(_OPEN) :]
        if head and not head[0].isspace() and head[0] != ":":
            raise MarkerError(f"{where}: expected '<!-- output' followed by a space or ':'")
        start = i
        if head.endswith(_CLOSE):  # one line: <!-- output OPTS: COMMAND -->
            opts, colon, command = head[: -len(_CLOSE)].partition(":")
            if not colon:
                raise MarkerError(f"{where}: a one-line marker needs ': COMMAND'")
            commands = [command.strip()]
            i += 1
        else:  # several lines: <!-- output OPTS / COMMAND / ... / -->
            opts = head.rstrip(":")
            commands = []
            i += 1
            while i < len(lines) and lines[i].strip() != _CLOSE:
                if lines[i].strip():
                    commands.append(lines[i].strip())
                i += 1
            if i == len(lines):
                raise MarkerError(f"{where}: marker not closed by a '-->' line")
            i += 1
        commands = [c for c in commands if c]
        if not commands:
            raise MarkerError(f"{where}: marker names no command")
        for command in commands:
            if not command.startswith("mftheory"):
                raise MarkerError(f"{where}: {command!r} is not an mftheory command")
        options = _options(opts, where)
        if i >= len(lines) or not lines[i].startswith("```"):
            raise MarkerError(f"{where}: the marker must be followed by a fenced block")
        fence = lines[i]
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise MarkerError(f"{where}: fenced block not closed")
        blocks.append(
            Block(
                path=path,
                marker_line=start + 1,
                commands=commands,
                exit_code=options["exit"],
                width=options["width"],
                fence=fence,
                body_start=i + 1,
                body_end=end,
                body=lines[i + 1 : end],
            )
        )
        i = end + 1
    return blocks


def markdown_files(root: Path = ROOT) -> list[Path]:
    """README.md and every docs/*.md (the pages a user reads)."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def _entry_point() -> list[str]:
    script = Path(sys.executable).parent / "mftheory"
    if script.is_file():
        return [str(script)]
    found = shutil.which("mftheory")
    return [found] if found else [sys.executable, "-m", "mftheory"]


def _environment(width: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MFTHEORY_")}
    env.update(
        COLUMNS=str(width),
        LINES="50",
        NO_COLOR="1",
        TERM="dumb",
        PYTHONUNBUFFERED="1",
        PYTHONHASHSEED="0",
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    env.pop("FORCE_COLOR", None)
    return env


def run_command(command: str, width: int) -> tuple[int, list[str]]:
    """Run one marked command in a fresh temporary folder: (exit status, normalised lines)."""
    args = shlex.split(command)
    with tempfile.TemporaryDirectory(prefix="mftheory-doc-") as tmp:
        shutil.copytree(ROOT / "docs" / "images", Path(tmp) / "docs" / "images")
        result = subprocess.run(
            [*_entry_point(), *args[1:]],
            cwd=tmp,
            env=_environment(width),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
        text = result.stdout.replace(os.path.realpath(tmp), ".").replace(tmp, ".")
    return result.returncode, [line.rstrip() for line in text.splitlines()]


def generate(block: Block) -> tuple[list[str], list[str]]:
    """The block's new text and the list of problems (unexpected exit statuses)."""
    out: list[str] = []
    problems: list[str] = []
    for command in block.commands:
        code, lines = run_command(command, block.width)
        if code != block.exit_code:
            tail = "\n    ".join(lines[-5:])
            problems.append(
                f"{block.where()}: `{command}` exited {code}, expected {block.exit_code}:\n"
                f"    {tail}"
            )
        out += [f"$ {command}", *lines]
    return out, problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="fail with a diff on a stale block")
    mode.add_argument("--write", action="store_true", help="rewrite the blocks in place")
    mode.add_argument("--list", action="store_true", help="list the marked commands")
    parser.add_argument("files", nargs="*", type=Path, help="default: README.md, docs/*.md")
    ns = parser.parse_args(argv)
    files = [p.resolve() for p in ns.files] or markdown_files()
    try:
        parsed = {path: parse_blocks(path) for path in files}
    except MarkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ns.list:
        for blocks in parsed.values():
            for block in blocks:
                for command in block.commands:
                    print(f"{block.where()}: {command}")
        return 0
    failed = False
    for path, blocks in parsed.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        changed = False
        for block in reversed(blocks):  # from the end, so earlier indices stay valid
            started = time.perf_counter()
            new, problems = generate(block)
            seconds = time.perf_counter() - started
            for problem in problems:
                print(problem, file=sys.stderr)
            failed |= bool(problems)
            stale = new != block.body
            state = "stale" if stale else "ok"
            print(f"{state:6s} {block.where()} ({seconds:.1f} s)", file=sys.stderr)
            if stale and ns.check:
                failed = True
                diff = difflib.unified_diff(
                    block.body, new, f"{block.where()} (documented)", "(real output)", lineterm=""
                )
                print("\n".join(diff))
            if stale and ns.write and not problems:  # never write a failed run's output
                lines[block.body_start : block.body_end] = new
                changed = True
        if changed:
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

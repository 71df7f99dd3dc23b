"""Property-based fuzz test of the whole command line (issue 15, Tests).

Every command and every option (hidden aliases included) is found by walking the click command
tree of the Typer app, so a new option is fuzzed without touching this file: its metavar (or,
for an unknown one, every pool at once) picks the hostile values drawn for it. Each run goes to
a separate process, forked from a "zygote" that has already imported the CLI (so that a run
costs milliseconds, not the 1-2 s of a fresh interpreter), with a memory cap
(``RLIMIT_AS``) and a time limit, in its own process group (killed afterwards, workers too).

A run passes when

* the exit code is 0 or 2, or 1 with a last stderr line ``Error: ...`` that is not an
  ``internal warning`` (an explicitly reported computation or output failure);
* a failed run (exit 1 or 2) says why on stderr, in one ``Error: ...`` line;
* stderr holds no ``Traceback`` and no ``Warning`` text;
* no temporary or partial file (``.*``, ``*tmp*``, ``*~``, ``*.part``) is left in the output
  folder.

Two profiles: a fast one (a few derandomised runs per command, ``validate`` left out since
one training run takes seconds) with the quick tests (``-m "not slow"``), and a long one
(``slow``; 40 runs per command, 15 for ``validate``, huge sizes included) in CI. ``-s``
prints how many command lines each tried; ``MFTHEORY_FUZZ_SURVEY=FILE`` logs every run.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import tempfile
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mftheory.cli.app import app

MEMORY_CAP = 3 << 30  # bytes of address space per run
TIME_LIMIT = 20.0  # seconds per run (validate: VALIDATE_TIME_LIMIT)
VALIDATE_TIME_LIMIT = 90.0

# --------------------------------------------------------------------------------------------
# The zygote: imports the CLI once, then forks one capped child per request
# --------------------------------------------------------------------------------------------

_ZYGOTE = textwrap.dedent(
    r"""
    import json, os, resource, signal, sys, time, traceback, warnings
    from mftheory.cli.app import app

    def child(req):
        os.setsid()
        cap = req["memory"]
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        os.chdir(req["cwd"])
        for fd, path in ((1, req["stdout"]), (2, req["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)  # never the zygote's request pipe
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        warnings.resetwarnings()  # what a user's interpreter does (python -W default)
        for cat in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", cat)
        code = 0
        try:
            app(args=req["args"], prog_name="mftheory")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    out = sys.stdout
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:
            try:
                child(req)
            finally:
                os._exit(70)
        deadline = time.monotonic() + req["timeout"]
        timed_out = False
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                timed_out = True
                os.killpg(pid, signal.SIGKILL)
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.01)
        try:
            os.killpg(pid, signal.SIGKILL)  # workers the run left behind
        except ProcessLookupError:
            pass
        rc = os.waitstatus_to_exitcode(status)
        out.write(json.dumps({"rc": rc, "timed_out": timed_out}) + "\n")
        out.flush()
    """
)


class Zygote:
    """A process that has imported the CLI and forks one capped child per command line."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        env = dict(os.environ, COLUMNS="120")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=workdir,
        )

    def run(self, args: list[str], timeout: float) -> tuple[int, bool, str, str]:
        """Exit code, whether it ran out of time, stdout and stderr of ``mftheory args``."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        out, err = self.workdir / "stdout.txt", self.workdir / "stderr.txt"
        req = {
            "args": args,
            "cwd": str(self.workdir),
            "stdout": str(out),
            "stderr": str(err),
            "memory": MEMORY_CAP,
            "timeout": timeout,
        }
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout + 60)
        assert ready, "the fuzz zygote stopped answering"
        reply = json.loads(self.proc.stdout.readline())
        read = lambda p: p.read_text(errors="replace") if p.exists() else ""  # noqa: E731
        return int(reply["rc"]), bool(reply["timed_out"]), read(out), read(err)

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


# --------------------------------------------------------------------------------------------
# Hostile values
# --------------------------------------------------------------------------------------------

FLOATS = ["nan", "inf", "-inf", "0", "-0", "-1", "1e-320", "1e308", "1e300", "-1e308", "1e154"]
FLOATS += ["1e-300", "1.5", "0.05", "2", "abc", "", "1e309", "0x10", "1_000"]
INTS = ["0", "-1", "1", "2", "3", "nan", "1.5", "1e308", "-99999999999999999999", "", "x"]
HUGE_INTS = ["99999999999999999999", "4294967296", "100000000", "1000000"]
RANGES = ["1:2", "a:b:c", "1:0:5", "0:1:-3", "0:1:0", "0:1:1", "nan:1:3", "0:inf:3", "0:1e308:3"]
RANGES += ["1e-320:1e-300:3", "1e300:1e308:2", "-1:1:3", "0:1:3", "0.5:4:4", "1:2:3:4", ":", ""]
RANGES += ["0:1:2.5", "1e154:1e155:2", "0:1:nan"]
HUGE_RANGES = ["0:1:99999999999", "0.5:4:100000"]
VECTORS = ["0.5,,0.5", "-1,2", "nan,1", "inf,1", "0,0,0", "1", "0.25,0.5,0.25", "uniform", "delta"]
VECTORS += ["1e308,1e308,1e308", "1e-320,1,1e-320", "a,b", "", ";", "1,2;3,4", "0,1,0;1,4,1;0,1,0"]
VECTORS += ["0.2,0.2,0.2,0.2,0.2", "1,2,3,4", "gs0,gs4", "2,8", "0", "-1,2", "1e-320", "1e308"]
HUGE_VECTORS = ["100000000", "2,100000000"]
EXPRESSIONS = ["tanh", "relu", "x", "1/(x-0.5)", "tan(x)", "x**x", "__import__('os')"]
EXPRESSIONS += ["exp(x)**100", "exp(exp(x))", "log(abs(x))", "sign(x)", "1/x", "x**-2", "sqrt(x)"]
EXPRESSIONS += ["0", "nan", "1e308*x", "exp(1000*x)", "(((", "", "sin(1/x)", "abs(x)**0.5"]
EXPRESSIONS += ["erf(x)", "lambda: 1", "x" + "+x" * 400, "sqrt(2)", "1/0", "2**10000", "-1"]
EXPRESSIONS += ["1e-320", "inf", "cosh(x)**300", "exp(-x**2)*1e-320", "step(x)", "x*1e-320"]
SIZES = ["7x5", "0x5", "-1x2", "nanx5", "1e308x1e308", "x", "1e-320x1", "7x", "3x2", "infx1"]
NAMES = ["cpu", "cuda", "cuda:99", "nonsense", "", "auto", "meta"]
ADDRESSES = ["nonsense", "", "tcp://127.0.0.1:1", "127.0.0.1:0"]
OUTPUT_NAMES = ["out.json", "out.csv", "out.npz", "out.png", "out.pdf", "out.svg", "out.xyz"]
OUTPUT_NAMES += ["out", ".", "missing/out.json", "out.npy", "out.JSON", "existing_dir"]


def _write_files(root: Path) -> dict[str, Path]:
    """Odd input files: good, empty, truncated, random bytes, a pickle, a directory, missing."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    files: dict[str, Path] = {}
    np.save(root / "img8.npy", rng.normal(size=(8, 8)))
    files["img8.npy"] = root / "img8.npy"
    np.save(root / "img1d.npy", rng.normal(size=(16,)))
    files["img1d.npy"] = root / "img1d.npy"
    kernel = np.zeros((3, 3, 2, 2))
    kernel[1, 1] = np.eye(2)
    np.save(root / "kernel.npy", kernel)
    files["kernel.npy"] = root / "kernel.npy"
    (root / "empty.npy").write_bytes(b"")
    files["empty.npy"] = root / "empty.npy"
    full = (root / "img8.npy").read_bytes()
    (root / "truncated.npy").write_bytes(full[: len(full) // 2])
    files["truncated.npy"] = root / "truncated.npy"
    (root / "random.npy").write_bytes(rng.bytes(300))
    files["random.npy"] = root / "random.npy"
    np.save(root / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    files["objects.npy"] = root / "objects.npy"
    np.save(root / "nan.npy", np.full((8, 8), np.nan))
    files["nan.npy"] = root / "nan.npy"
    np.save(root / "huge.npy", np.full((8, 8), 1e308))
    files["huge.npy"] = root / "huge.npy"
    np.save(root / "tiny.npy", np.full((8, 8), 1e-320))
    files["tiny.npy"] = root / "tiny.npy"
    np.save(root / "complex.npy", np.ones((8, 8), dtype=complex))
    files["complex.npy"] = root / "complex.npy"
    np.save(root / "shape5d.npy", np.ones((2, 2, 2, 2, 2)))
    files["shape5d.npy"] = root / "shape5d.npy"
    np.savez(root / "archive.npz", a=np.ones(3))
    files["archive.npz"] = root / "archive.npz"
    (root / "text.json").write_text("{not json")
    files["text.json"] = root / "text.json"
    (root / "a_dir.npy").mkdir(exist_ok=True)
    files["a_dir.npy"] = root / "a_dir.npy"
    files["missing.npy"] = root / "missing.npy"
    return files


# --------------------------------------------------------------------------------------------
# The command tree
# --------------------------------------------------------------------------------------------


def _commands() -> dict[str, Any]:
    """``{name: click command}`` for every leaf command of the app."""
    found: dict[str, Any] = {}

    def walk(cmd: Any, path: list[str]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, [*path, name])
        else:
            found[" ".join(path)] = cmd

    walk(typer.main.get_command(app), [])
    return found


COMMANDS = _commands()

# Small settings for the options a run does not draw, so that a run stays short.
BASE: dict[str, list[str]] = {
    "kernel": ["--cin", "4", "--cout", "4"],
    "propagate": ["--image", "{files}/img8.npy", "--depth", "5"],
    "simulate": ["--image", "{files}/img8.npy", "--depth", "3", "--channels", "8"],
    "reproduce": ["--depth", "3", "--channels", "8", "--networks", "4"],
    "spectrum": ["--depth", "5", "--points", "50"],
    "isometry": ["--depth", "5"],
    "phase-diagram": ["--sigma-w2", "0.5:4:5", "--sigma-b2", "0:1:4"],
    "validate": ["--scale", "tiny", "--depths", "2", "--channels", "2", "--steps", "1"],
}
BASE["simulate"] += ["--networks", "4"]
BASE["validate"] += ["--jobs", "1", "--max-train", "32", "--max-test", "32", "--threads", "1"]
BASE["validate"] += ["--output", "{out}/run"]


def _choices(param: Any) -> list[str] | None:
    """The choices of a ``a|b|c`` metavar (None for other metavars)."""
    mv = str(param.metavar or "")
    if "|" in mv and not re.search(r"[A-Z]", mv):
        return mv.split("|")
    return None


def _pool(param: Any, files: dict[str, Path], long: bool) -> list[str]:
    """Hostile values for one option or argument, from its metavar (and name)."""
    mv = str(param.metavar or "")
    name = param.opts[0]
    paths = [str(p) for p in files.values()]
    outputs = [f"{{out}}/{n}" for n in OUTPUT_NAMES]
    choices = _choices(param)
    if choices is not None:
        return [*choices, "bogus", ""]
    by_name = {"--size": "INT", "--scale": "FLOAT", "--out": "DIR", "--check": "PATH"}
    kind = by_name.get(name, mv) if not mv else mv
    if name in ("--output", "--out"):
        return outputs
    if kind == "PATH" or (kind == "DIR" and name == "--data-dir"):
        return paths
    if kind == "DIR":
        return outputs
    pools = {
        "INT": INTS + (HUGE_INTS if long else []),
        "N": INTS + (HUGE_INTS if long else []),
        "FLOAT": FLOATS + (["1e6", "100000"] if long else []),
        "RANGE": RANGES + (HUGE_RANGES if long else []),
        "FLOAT|RANGE": FLOATS + RANGES + (HUGE_RANGES if long else []),
        "LIST|RANGE": VECTORS + RANGES,
        "LIST|PRESET": VECTORS + (HUGE_VECTORS if long else []),
        "LIST": VECTORS + (HUGE_VECTORS if long else []),
        "NAME|EXPR": EXPRESSIONS,
        "EXPR": EXPRESSIONS,
        "WxH": SIZES + (["1000x1000"] if long else []),
        "NAME": NAMES,
        "ADDRESS": ADDRESSES,
    }
    if kind in pools:
        return pools[kind]
    return FLOATS + INTS + RANGES + VECTORS + EXPRESSIONS  # an option this file does not know


def _command_line(data: Any, name: str, files: dict[str, Path], out: Path, long: bool) -> list[str]:
    """Draw a command line: the command, its arguments, then 1-3 hostile options."""
    cmd = COMMANDS[name]
    args = name.split()
    for param in cmd.params:
        if type(param).__name__.endswith("Argument"):
            args.append(data.draw(st.sampled_from([*(_choices(param) or []), "bogus"])))
    options = [p for p in cmd.params if not type(p).__name__.endswith("Argument")]
    options = [p for p in options if p.opts[0] not in ("--help", "--version")]
    drawn = data.draw(st.lists(st.sampled_from(options), min_size=1, max_size=3, unique_by=id))
    chosen: list[str] = []
    for param in drawn:
        if getattr(param, "is_flag", False):
            chosen.append(param.opts[0])
        else:
            chosen += [param.opts[0], data.draw(st.sampled_from(_pool(param, files, long)))]
    base = BASE.get(args[0], [])
    taken = {p.opts[0] for p in drawn}
    for i in range(0, len(base), 2):
        if base[i] not in taken:
            chosen += base[i : i + 2]
    if "--output" not in taken and "-o" not in chosen and data.draw(st.booleans()):
        if args[0] != "validate":
            chosen += ["--output", f"{{out}}/{data.draw(st.sampled_from(OUTPUT_NAMES[:7]))}"]
    return [
        a.replace("{files}", str(files["img8.npy"].parent)).replace("{out}", str(out))
        for a in args + chosen
    ]


_TEMP = re.compile(r"(^\.|tmp|~$|\.part$)", re.IGNORECASE)


def _leftovers(out: Path) -> list[str]:
    """Files under ``out`` that look temporary or partial."""
    return [str(p.relative_to(out)) for p in out.rglob("*") if _TEMP.search(p.name)]


def check_run(rc: int, timed_out: bool, stderr: str, out: Path, args: list[str]) -> None:
    """The fuzz test's verdict on one run (see the module docstring)."""
    line = " ".join(args)
    assert not timed_out, f"ran past the time limit: mftheory {line}"
    assert "Traceback" not in stderr, f"traceback from mftheory {line}:\n{stderr}"
    assert "Warning" not in stderr, f"warning text from mftheory {line}:\n{stderr}"
    lines = [s for s in stderr.splitlines() if s.strip()]
    if rc in (1, 2):
        assert lines and lines[-1].startswith("Error: "), f"exit {rc} without an Error line: {line}"
        assert "internal warning" not in lines[-1], f"{lines[-1]} from mftheory {line}"
    else:
        assert rc == 0, f"exit code {rc} from mftheory {line}:\n{stderr[-2000:]}"
    left = _leftovers(out)
    assert not left, f"temporary files {left} left by mftheory {line}"


# --------------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def zygote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Zygote]:
    z = Zygote(tmp_path_factory.mktemp("fuzz-cwd"))
    yield z
    z.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _write_files(tmp_path_factory.mktemp("fuzz-files"))


TRIED: Counter[str] = Counter()


def _fuzz(data: Any, name: str, zygote: Zygote, files: dict[str, Path], long: bool) -> None:
    out = Path(tempfile.mkdtemp(prefix=f"out-{name.replace(' ', '_')}-", dir=zygote.workdir))
    (out / "existing_dir").mkdir()
    args = _command_line(data, name, files, out, long)
    TRIED[name] += 1
    limit = VALIDATE_TIME_LIMIT if name == "validate" else TIME_LIMIT
    rc, timed_out, _, stderr = zygote.run(args, limit)
    survey = os.environ.get("MFTHEORY_FUZZ_SURVEY")  # a file: log every run, fail none
    try:
        check_run(rc, timed_out, stderr, out, args)
    except AssertionError as exc:
        if not survey:
            raise
        verdict = "FAIL " + " | ".join(str(exc).splitlines()[:3])[:600]
    else:
        verdict = f"ok   rc={rc} mftheory {' '.join(args)}"[:400]
    if survey:
        with open(survey, "a") as log:
            log.write(f"{name}\t{verdict}\n")


FAST_COMMANDS = [n for n in COMMANDS if n != "validate"]


@pytest.mark.parametrize("name", FAST_COMMANDS)
@settings(
    max_examples=2,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzz_fast(data: Any, name: str, zygote: Zygote, files: dict[str, Path]) -> None:
    """A few hostile command lines per command (validate: the long profile)."""
    _fuzz(data, name, zygote, files, long=False)


LONG = settings(
    max_examples=40,
    deadline=None,
    database=None,
    phases=[Phase.generate],  # no shrinking: a time-out costs 20 s per shrink step
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.slow
@pytest.mark.parametrize("name", FAST_COMMANDS)
@LONG
@given(data=st.data())
def test_fuzz_long(data: Any, name: str, zygote: Zygote, files: dict[str, Path]) -> None:
    """40 hostile command lines per command, huge sizes included (CI)."""
    _fuzz(data, name, zygote, files, long=True)
    print(f"fuzz: {name}: {TRIED[name]} command lines tried")


@pytest.mark.slow
@settings(LONG, max_examples=15)
@given(data=st.data())
def test_fuzz_long_validate(data: Any, zygote: Zygote, files: dict[str, Path]) -> None:
    """15 hostile validate command lines (each one that trains takes ~10 s)."""
    _fuzz(data, "validate", zygote, files, long=True)
    print(f"fuzz: validate: {TRIED['validate']} command lines tried")


def test_every_command_is_fuzzed() -> None:
    """The tree walk finds every command, and each has a hostile value pool per option."""
    assert {"critical", "phase-diagram", "validate", "kernel", "spectrum"} <= set(COMMANDS)
    files = {"img8.npy": Path("img8.npy")}
    for name, cmd in COMMANDS.items():
        for param in cmd.params:
            if not getattr(param, "is_flag", False) and param.opts[0] not in ("--help",):
                assert _pool(param, files, long=True), (name, param.opts)


def test_verdict_flags_what_the_issue_forbids(tmp_path: Path) -> None:
    """check_run fails a traceback, warning text, a bare exit 1, a time-out and temp files."""
    ok = (0, False, "", tmp_path, ["critical"])
    check_run(*ok)
    check_run(2, False, "Error: --sigma-b2 must be finite\n", tmp_path, ["critical"])
    bad = [
        (1, False, "Traceback (most recent call last):\n", tmp_path, ["x"]),
        (0, False, "x.py:1: RuntimeWarning: overflow\n", tmp_path, ["x"]),
        (1, False, "Error: internal warning: RuntimeWarning: overflow\n", tmp_path, ["x"]),
        (137, False, "", tmp_path, ["x"]),
        (0, True, "", tmp_path, ["x"]),
    ]
    for case in bad:
        with pytest.raises(AssertionError):
            check_run(*case)
    (tmp_path / ".out.json.tmp").write_text("{")
    with pytest.raises(AssertionError):
        check_run(*ok)

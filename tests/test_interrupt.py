"""Issue 15 items 5 and 6: real runs interrupted by a signal, and what they leave behind.

* Ctrl-C (SIGINT) ends a command with exit code 130 and the one line ``interrupted`` on stderr
  (SIGTERM: 143, ``terminated``); a file being written is left as it was, with no temporary
  file beside it.
* The validation runner's pool processes stop with their parent: on Ctrl-C the parent ends them
  and exits within a second or two, keeping the finished cells; when the parent is killed
  outright (SIGKILL) they die with it.

Each test starts the command in a subprocess and sends it a real signal. The worker processes
are found in ``/proc`` (their ``started-<cell>-<pid>`` files name them too).
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mftheory import files

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and /proc")

TESTS_DIR = str(Path(__file__).resolve().parent)


def _mftheory(*args: str) -> list[str]:
    return [sys.executable, "-m", "mftheory", *args]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(f"*{files.TEMP_SUFFIX}"))


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float) -> None:
    end = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the command ended early ({proc.returncode}): {proc.stderr}")
        if time.monotonic() > end:
            raise AssertionError("the command did not get there in time")
        time.sleep(0.02)


def _gone(pids: set[int], timeout: float = 3.0) -> set[int]:
    """The processes of ``pids`` still alive after ``timeout`` seconds (then killed)."""
    end = time.monotonic() + timeout
    while {p for p in pids if _alive(p)} and time.monotonic() < end:
        time.sleep(0.05)
    alive = {p for p in pids if _alive(p)}
    for pid in alive:  # do not leave them running if the test fails
        os.kill(pid, signal.SIGKILL)
    return alive


# --- Ctrl-C while a file is written (item 5) -------------------------------------------------

#: Runs ``mftheory ARGS`` with the JSON / npz writers replaced by ones that write part of the
#: file, touch MARKER and wait: the signal then arrives in the middle of the write.
SLOW_WRITER = """
import sys, time
from pathlib import Path
import numpy as np
import mftheory.cli.output as output

marker = Path(sys.argv[1])

def stall(fh, part):
    fh.write(part)
    fh.flush()
    marker.touch()
    time.sleep(60)

output.write_json = lambda fh, payload, indent=2: stall(fh, '{"partial": [1, 2, ')
np.savez = lambda fh, **arrays: stall(fh, b"PK\\x03\\x04 partial")
from mftheory.cli.app import main
sys.argv = ["mftheory", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize(
    ("suffix", "sig", "code", "line"),
    [
        (".json", signal.SIGINT, 130, "interrupted"),
        pytest.param(".npz", signal.SIGINT, 130, "interrupted", marks=pytest.mark.slow),
        pytest.param(".json", signal.SIGTERM, 143, "terminated", marks=pytest.mark.slow),
    ],
)
def test_signal_during_the_write_keeps_the_old_file(
    tmp_path: Path, suffix: str, sig: int, code: int, line: str
) -> None:
    out = tmp_path / f"g{suffix}"
    out.write_bytes(b"the old good file")
    marker = tmp_path / "writing"
    args = ["phase-diagram", "--sigma-w2", "0.5:4:5", "--sigma-b2", "0.01:1:4", "-o", str(out)]
    with subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(marker), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        _wait_for(marker.exists, proc, timeout=60)
        assert len(_leftovers(tmp_path)) == 1  # the partial file is beside the old one
        proc.send_signal(sig)
        start = time.monotonic()
        stdout, stderr = proc.communicate(timeout=10)
    assert time.monotonic() - start < 3
    assert (proc.returncode, stderr, stdout) == (code, f"{line}\n", "")
    assert out.read_bytes() == b"the old good file"
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_ctrl_c_at_random_times_leaves_the_old_or_the_new_file(tmp_path: Path) -> None:
    # The example, smaller: a grid over an existing good g.json, interrupted at random
    # times from the start of the computation to the end of the write.
    out = tmp_path / "g.json"
    args = _mftheory("phase-diagram", "--sigma-w2", "0.5:4:300", "--sigma-b2", "0.01:1:300")
    start = time.monotonic()
    subprocess.run(_mftheory("--version"), check=True, capture_output=True)
    startup = time.monotonic() - start
    start = time.monotonic()
    subprocess.run([*args, "-o", str(out)], check=True, capture_output=True)
    full = time.monotonic() - start
    new = json.loads(out.read_text())
    old = '{"old": "a good file from an earlier run"}\n'
    rng = random.Random(15)
    seen = {0: 0, 130: 0}
    for _ in range(8):
        out.write_text(old)
        with subprocess.Popen(
            [*args, "-o", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as proc:
            # not while Python itself starts (importing numpy), before mftheory can answer
            delay = rng.uniform(min(2.0 * startup + 0.3, 0.5 * full), full)
            time.sleep(delay)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
        assert proc.returncode in seen, (delay, startup, full, proc.returncode, stderr[-2000:])
        seen[proc.returncode] += 1
        if proc.returncode == 130:
            assert stderr == "interrupted\n"
            assert out.read_text() == old
        else:
            assert json.loads(out.read_text()) == new
        assert _leftovers(tmp_path) == []
    assert seen[130] > 0


# --- the validation runner's pool (item 6) ---------------------------------------------------

#: run_cells with 2 pool processes over 6 cells: 2 instant ones, then 4 that sleep a minute.
POOL_DRIVER = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from interrupt_workers import sleepy_cell
from mftheory.validation.runner import Cell, run_cells

folder = Path(sys.argv[1])
cells = [
    Cell(f"x={i}", {"dir": str(folder), "sleep": 0.0 if i < 2 else 60.0, "i": i})
    for i in range(6)
]
try:
    run_cells(cells, sleepy_cell, folder / "cells", jobs=2)
except KeyboardInterrupt:
    sys.stderr.write("interrupted\\n")
    sys.exit(130)
"""


def _start_pool(tmp_path: Path) -> tuple[subprocess.Popen[str], set[int]]:
    """The driver, once the 2 instant cells are written and both workers sleep in a cell."""
    proc = subprocess.Popen(
        [sys.executable, "-c", POOL_DRIVER, str(tmp_path), TESTS_DIR],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def busy() -> bool:
        done = list((tmp_path / "cells").glob("*.json")) if (tmp_path / "cells").is_dir() else []
        return len(done) == 2 and len(list(tmp_path.glob("started-*"))) == 4

    try:
        _wait_for(busy, proc, timeout=60)
    except BaseException:
        proc.kill()
        raise
    workers = {int(p.read_text() or 0) for p in tmp_path.glob("started-*")} - {0}
    workers |= _children(proc.pid)
    return proc, workers


@pytest.mark.slow  # about 3 s: two spawned Python processes
def test_ctrl_c_stops_the_pool_and_keeps_finished_cells(tmp_path: Path) -> None:
    proc, workers = _start_pool(tmp_path)
    with proc:
        assert len(workers) >= 2
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        _, stderr = proc.communicate(timeout=20)
    assert time.monotonic() - start < 3, "Ctrl-C took too long"
    assert (proc.returncode, stderr) == (130, "interrupted\n")
    assert _gone(workers) == set()
    assert sorted(p.name for p in (tmp_path / "cells").iterdir()) == ["x=0.json", "x=1.json"]


@pytest.mark.slow
def test_workers_die_with_a_killed_parent(tmp_path: Path) -> None:
    proc, workers = _start_pool(tmp_path)
    with proc:
        proc.kill()  # SIGKILL: no chance to clean up; the kernel tells the workers
        proc.wait(timeout=10)
    assert _gone(workers) == set()


# --- mftheory validate (needs torch) ---------------------------------------------------------


@pytest.mark.slow
def test_validate_ctrl_c_says_what_was_kept(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    out = tmp_path / "fig2"
    cmd = _mftheory("validate", "trainability", "--scale", "tiny", "--jobs", "2", "--steps",
                    "5000", "-o", str(out))  # fmt: skip
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        workers: set[int] = set()

        def training() -> bool:
            workers.update(_children(proc.pid))
            return len(workers) >= 2 and (out / files.LOCK_NAME).exists()

        _wait_for(training, proc, timeout=120)
        time.sleep(1.0)
        workers.update(_children(proc.pid))
        proc.send_signal(signal.SIGINT)
        start = time.monotonic()
        _, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - start < 5, "Ctrl-C took too long"
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Warning" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert re.fullmatch(rf"interrupted: \d+ of \d+ cells kept in {re.escape(str(out))}; "
                        r"rerun to resume", last), last  # fmt: skip
    assert _gone(workers) == set()
    assert not (out / files.LOCK_NAME).exists()
    assert _leftovers(out) == []


@pytest.mark.slow
def test_validate_refuses_a_folder_in_use(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from test_cli import assert_one_line_error, run

    out = tmp_path / "fig2"
    out.mkdir()
    code = "import sys, time\nfrom mftheory.files import folder_lock\nwith folder_lock(sys.argv[1]):\n    print('locked', flush=True)\n    time.sleep(60)\n"  # noqa: E501
    with subprocess.Popen(
        [sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            result = run("validate", "trainability", "--scale", "tiny", "--jobs", "1", "-o",
                         str(out))  # fmt: skip
            assert_one_line_error(result, code=2, mentions=f"(process {holder.pid})")
        finally:
            holder.kill()
    assert not list((out / "cells").glob("*.json")) if (out / "cells").exists() else True

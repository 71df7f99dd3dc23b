"""Issue 15 items 4 and 5: broken input files, atomic writes, the folder lock.

Every unusable input file (missing, a folder, unreadable, empty, truncated, random bytes, a
pickle or a .npz under a .npy name, Python objects, records, strings, no values) is one line
``Error: ...`` naming the option and the file, exit code 2 (it used to be ``Error: aborted``,
exit 130, for an empty file). Every file written goes through
:func:`mftheory.files.atomic_write`: a failure inside the writer leaves the old file as it was
and no temporary file behind. The interrupted real runs are in ``test_interrupt.py``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_cli import assert_one_line_error, run

from mftheory import files
from mftheory.errors import MFTheoryError
from mftheory.files import LOCK_NAME, atomic_write, folder_lock, lock_holder

SCALES = ["--sigma-w2", "1.5", "--sigma-b2", "0.05"]


def _leftovers(folder: Path) -> list[str]:
    """Temporary files of :func:`atomic_write` left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(files.TEMP_SUFFIX))


# --- broken input files (item 4) ------------------------------------------------------------


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _huge_header() -> bytes:
    """A .npy header claiming 10^12 float64 values, followed by 64 bytes."""
    buf = io.BytesIO()
    header = {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + bytes(64)


def _zip_bytes() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, a=np.ones(3))
    return buf.getvalue()


GOOD = _npy_bytes(np.arange(36.0).reshape(6, 6))
BROKEN: dict[str, tuple[bytes, str]] = {
    "empty": (b"", "is empty (0 bytes)"),
    "truncated": (GOOD[: len(GOOD) // 2], "is truncated: its header says 6x6 float64"),
    "truncated header": (GOOD[:20], "is truncated or corrupt"),
    "magic only": (GOOD[:4], "is truncated (4 bytes)"),
    "random bytes": (bytes(range(7, 250)) * 3, "lacks the NumPy header"),
    "pickle": (pickle.dumps([1.0, 2.0]), "pickled Python data, which is never loaded"),
    "object array": (_npy_bytes(np.array([{"a": 1}, 2], dtype=object)), "Python objects"),
    "npz archive": (_zip_bytes(), "a zip archive (such as .npz)"),
    "records": (_npy_bytes(np.zeros(4, dtype=[("a", "f8"), ("b", "i4")])), "records"),
    "strings": (_npy_bytes(np.array(["a", "b"])), "<U1 values, not real numbers"),
    "complex": (_npy_bytes(np.ones((4, 4)) + 1j), "complex128 values, not real numbers"),
    "no values": (_npy_bytes(np.zeros((0, 4))), "holds no values"),
    "huge header": (_huge_header(), "8000000000000 bytes, but it holds 64"),
}


#: ``kernel --check`` reads through the same function: a few kinds are enough there.
CASES = [("propagate", kind) for kind in sorted(BROKEN)] + [
    ("kernel", kind) for kind in ("truncated", "npz archive", "object array", "strings")
]


@pytest.mark.parametrize(("command", "kind"), CASES)
def test_broken_npy_is_one_line_naming_the_file(tmp_path: Path, kind: str, command: str) -> None:
    content, mentions = BROKEN[kind]
    path = tmp_path / "in.npy"
    path.write_bytes(content)
    option = "--image" if command == "propagate" else "--check"
    result = run(command, option, str(path), *(SCALES if command == "propagate" else []))
    assert_one_line_error(result, code=2, mentions=f"{option} {str(path)!r}")
    assert mentions in result.stderr


@pytest.mark.parametrize("command", ["propagate", "kernel"])
def test_issue_examples_empty_file(tmp_path: Path, command: str, monkeypatch: Any) -> None:
    # `mftheory propagate --image empty.npy` / `kernel --check empty.npy` used to print
    # `Error: aborted` with exit 130 (np.load's EOFError taken for Ctrl-C).
    monkeypatch.chdir(tmp_path)
    Path("empty.npy").write_bytes(b"")
    result = run(command, "--image" if command == "propagate" else "--check", "empty.npy")
    assert_one_line_error(result, code=2, mentions="'empty.npy' is empty")
    assert "aborted" not in result.stderr


@pytest.mark.parametrize(
    ("make", "mentions"),
    [
        (lambda p: p.mkdir(), "is a folder, not a file"),
        (lambda p: None, "does not exist"),
        (lambda p: os.mkfifo(p), "is not a regular file"),
    ],
    ids=["folder", "missing", "fifo"],
)
@pytest.mark.parametrize("option", ["--image", "--check"])
def test_not_a_file(tmp_path: Path, make: Any, mentions: str, option: str) -> None:
    path = tmp_path / "x.npy"
    make(path)
    command = "propagate" if option == "--image" else "kernel"
    assert_one_line_error(run(command, option, str(path)), code=2, mentions=mentions)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "locked.npy"
    np.save(path, np.ones((4, 4)))
    path.chmod(0)
    try:
        for command, option in (("propagate", "--image"), ("kernel", "--check")):
            result = run(command, option, str(path))
            assert_one_line_error(result, code=2, mentions="cannot be read: Permission denied")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize(
    ("content", "mentions"),
    [(b"", "is not a readable PNG"), (b"\x89PNG\r\n\x1a\n" + bytes(40), "is not a readable PNG")],
    ids=["empty", "corrupt"],
)
def test_broken_png(tmp_path: Path, content: bytes, mentions: str) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(content)
    assert_one_line_error(run("propagate", "--image", str(path)), code=2, mentions=mentions)


def test_truncated_png(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "t.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:300])
    assert_one_line_error(run("propagate", "--image", str(path)), code=2, mentions="t.png")


def test_wrong_shape_still_named(tmp_path: Path) -> None:
    path = tmp_path / "k.npy"
    np.save(path, np.ones((3, 3)))
    assert_one_line_error(run("kernel", "--check", str(path)), code=2, mentions="shape (3, 3)")


def test_stray_end_of_file_is_bad_input_not_an_interrupt(monkeypatch: Any, tmp_path: Path) -> None:
    import mftheory.cli.images

    def truncated(*args: Any, **kwargs: Any) -> Any:
        raise EOFError("No data left in file")

    monkeypatch.setattr(mftheory.cli.images, "load_images", truncated)
    result = run("propagate", "--image", str(tmp_path / "x.npy"))
    assert_one_line_error(result, code=2, mentions="an input file ended early")


# --- atomic writes (item 5) -----------------------------------------------------------------


def test_atomic_write_replaces_complete_files(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old")
    path.chmod(0o640)
    with atomic_write(path, "w") as fh:
        fh.write("new")
        assert path.read_text() == "old"  # nothing visible until the block ends
    assert path.read_text() == "new"
    assert path.stat().st_mode & 0o777 == 0o640  # a replaced file keeps its permissions
    with atomic_write(tmp_path / "b.npy", "wb") as fh:
        np.save(fh, np.arange(3))
    assert np.load(tmp_path / "b.npy").tolist() == [0, 1, 2]
    assert _leftovers(tmp_path) == []


def test_new_file_gets_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "n.txt") as fh:
            fh.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "n.txt").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_failure_inside_the_writer_leaves_the_old_file(
    tmp_path: Path, error: BaseException
) -> None:
    path = tmp_path / "g.json"
    path.write_text('{"old": true}\n')
    with pytest.raises(type(error)):
        with atomic_write(path, "w") as fh:
            fh.write('{"new": ')
            fh.flush()
            assert len(_leftovers(tmp_path)) == 1
            raise error
    assert path.read_text() == '{"old": true}\n'
    assert _leftovers(tmp_path) == []


def test_unwritable_places_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        with atomic_write(tmp_path / "missing" / "x.json") as fh:
            fh.write("x")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(OSError):
        with atomic_write(tmp_path / "dir.json") as fh:
            fh.write("x")
    assert (tmp_path / "dir.json").is_dir()
    assert _leftovers(tmp_path) == []
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(tmp_path / "a.txt", "a"):
            pass


def test_a_symlink_keeps_pointing_at_the_new_content(tmp_path: Path) -> None:
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    with atomic_write(link) as fh:
        fh.write("new")
    assert link.is_symlink() and target.read_text() == "new"


@pytest.mark.parametrize("suffix", [".json", ".csv", ".npz", ".png"])
def test_cli_writer_failure_keeps_the_old_output(
    tmp_path: Path, monkeypatch: Any, suffix: str
) -> None:
    import mftheory.cli.output
    import mftheory.plotting

    def half(fh: Any, *args: Any, **kwargs: Any) -> None:
        fh.write("partial" if "b" not in getattr(fh, "mode", "w") else b"partial")
        raise OSError(28, "No space left on device")

    for module, name in (
        (mftheory.cli.output, "write_json"),
        (mftheory.cli.output, "write_csv"),
        (np, "savez"),
    ):
        monkeypatch.setattr(module, name, half)
    monkeypatch.setattr(
        "matplotlib.figure.Figure.savefig", lambda self, fh, *args, **kwargs: half(fh)
    )
    assert mftheory.plotting  # the figure path goes through plotting.save_figure
    out = tmp_path / f"grid{suffix}"
    out.write_bytes(b"the old good file")
    result = run("phase-diagram", "--sigma-w2", "0.5:4:5", "--sigma-b2", "0.01:1:4", "-o", str(out))
    assert_one_line_error(result, code=1, mentions="No space left on device")
    assert out.read_bytes() == b"the old good file"
    assert _leftovers(tmp_path) == []


def test_kernel_output_is_written_whole(tmp_path: Path) -> None:
    out = tmp_path / "k.npy"
    out.write_bytes(b"old")
    result = run(
        "kernel", "--init", "delta-orthogonal", "--cin", "4", "--cout", "4", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert np.load(out, allow_pickle=False).shape == (3, 3, 4, 4)
    assert _leftovers(tmp_path) == []


def test_save_figure_failure_keeps_the_old_figure(tmp_path: Path, monkeypatch: Any) -> None:
    from matplotlib.figure import Figure

    from mftheory.plotting import save_figure

    out = tmp_path / "f.pdf"
    out.write_bytes(b"old")
    fig = Figure()
    fig.add_subplot().plot([0, 1])

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError):
        save_figure(fig, out)
    assert out.read_bytes() == b"old" and _leftovers(tmp_path) == []


# --- the folder lock (item 6) ---------------------------------------------------------------


def test_folder_lock_refuses_a_second_holder_and_cleans_up(tmp_path: Path) -> None:
    with folder_lock(tmp_path) as lock:
        assert lock == tmp_path / LOCK_NAME
        assert lock_holder(tmp_path) == os.getpid()
        with pytest.raises(
            MFTheoryError, match=rf"in use by another mftheory run \(process {os.getpid()}\)"
        ):
            with folder_lock(tmp_path):
                pass
    assert not (tmp_path / LOCK_NAME).exists()
    with folder_lock(tmp_path):  # free again
        pass


def test_a_stale_lock_is_taken_over(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    (tmp_path / LOCK_NAME).write_text(f"{done.stdout.strip()}\n")  # left by a dead process
    with folder_lock(tmp_path):
        assert lock_holder(tmp_path) == os.getpid()
    (tmp_path / LOCK_NAME).write_text(f"{done.stdout.strip()}\n")
    with files._pidfile(tmp_path):  # the variant without fcntl (Windows)
        assert lock_holder(tmp_path) == os.getpid()
        with pytest.raises(MFTheoryError, match="in use"):
            with files._pidfile(tmp_path):
                pass
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_held_by_another_live_process(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from mftheory.files import folder_lock\n"
        "with folder_lock(sys.argv[1]):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            with pytest.raises(MFTheoryError, match=rf"process {holder.pid}\)"):
                with folder_lock(tmp_path):
                    pass
        finally:
            holder.kill()
    with folder_lock(tmp_path):  # the kernel freed the dead holder's lock
        pass


def test_lock_file_is_json_free_text(tmp_path: Path) -> None:
    # a lock file that is not ours (garbage) is simply taken over
    (tmp_path / LOCK_NAME).write_bytes(b"\xff\xfe not a pid")
    assert lock_holder(tmp_path) is None
    with folder_lock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text()) == os.getpid()

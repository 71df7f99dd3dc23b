"""Resumable sweeps: independent cells run inline, in a process pool or on a dask cluster.

A sweep is a list of ``Cell`` (a unique key and a JSON-able config). ``run_cells``
passes each config to a top-level (picklable) worker function and writes the finished cell as
``results_dir/<key>.json``; a rerun skips every cell whose file is complete and was made from the
same config, so an interrupted sweep resumes where it stopped. A cell whose worker raises is
returned as ``"status": "failed"`` and not written, so the next run retries it.

Files are written atomically (``mftheory.files.atomic_write``). Pool processes ignore
SIGINT and die with their parent (``PR_SET_PDEATHSIG`` on Linux, and a thread that watches the
parent); on Ctrl-C (or any exception) in the parent the pool is shut down at once: queued cells
are cancelled and running ones killed, and ``KeyboardInterrupt`` reaches the caller within about
a second. Finished cells stay on disk.

No torch here; ``distributed`` is imported only when a scheduler address is given.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mftheory.errors import MFTheoryError
from mftheory.files import atomic_write
from mftheory.serialize import jsonable

__all__ = ["CONNECT_TIMEOUT", "Cell", "ProgressCallback", "cell_path", "load_result", "run_cells"]

Worker = Callable[[dict[str, Any]], dict[str, Any]]
_Stream = Generator[tuple["Cell", Any, "Exception | None"], None, None]  # (cell, output, error)
CONNECT_TIMEOUT = 10.0  # seconds to reach a dask scheduler before giving up
_RESERVED = ("status", "key", "config", "finished_at", "error")
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Cell:
    """One job of a sweep.

    Attributes
    ----------
    key : str
        Short human-readable unique name, e.g. ``"depth=10_sigma_w2=1.5"``; the file name.
    config : dict
        JSON-able parameters (seeds included) passed to the worker.
    """

    key: str
    config: dict[str, Any]


ProgressCallback = Callable[[int, int, Cell, "dict[str, Any] | None"], None]
"""``(done, total, cell, result)``; ``result`` is None for a cell skipped as already done."""


def cell_path(results_dir: Path, cell: Cell) -> Path:
    """``results_dir / "<key>.json"``, every character outside ``[A-Za-z0-9._=-]`` made ``_``."""
    return Path(results_dir) / f"{re.sub(r'[^A-Za-z0-9._=-]', '_', cell.key)}.json"


def load_result(path: Path, cell: Cell) -> dict[str, Any] | None:
    """The stored result of ``cell``, or None if it must be (re)run.

    None where the file is missing, unreadable, not a JSON object, not ``"status": "done"``,
    or made from another config than ``cell.config`` (compared after a JSON round trip).
    """
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("status") != "done":
        return None
    if stored.get("config") != json.loads(json.dumps(cell.config)):
        return None
    return stored


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file beside ``path``, then rename it over ``path``."""
    with atomic_write(path, "w", encoding="utf-8") as f:
        f.write(text)


def _failed(cell: Cell, exc: BaseException) -> dict[str, Any]:
    error = f"{type(exc).__name__}: {exc}"
    return {"status": "failed", "key": cell.key, "config": cell.config, "error": error}


def _finish(results_dir: Path, cell: Cell, output: Any) -> dict[str, Any]:
    """Write a finished cell (strict JSON: NaN and inf become null) and return it as stored."""
    try:
        if not isinstance(output, dict):
            raise TypeError(f"worker returned {type(output).__name__}, not a dict")
        if clash := sorted(set(output) & set(_RESERVED)):
            raise ValueError(f"worker output uses reserved keys {clash}")
        record = {"status": "done", "key": cell.key, "config": cell.config, **jsonable(output)}
        record["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        return _failed(cell, exc)
    _write_atomic(cell_path(results_dir, cell), text)
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def _call_with_init(init: Callable[[], None] | None, worker: Worker, config: dict) -> Any:
    """Run ``init()`` (if any) then ``worker(config)``: a dask task has no initializer hook."""
    if init is not None:
        init()
    return worker(config)


def _outcome(fn: Callable[..., Any], *args: Any) -> tuple[Any, Exception | None]:
    """``(fn(*args), None)``, or ``(None, exception)`` where it raises an Exception."""
    try:
        return fn(*args), None
    except Exception as exc:
        return None, exc


def _inline(cells: list[Cell], worker: Worker, init: Callable[[], None] | None) -> _Stream:
    if cells and init is not None:
        init()
    for cell in cells:
        yield (cell, *_outcome(worker, cell.config))


def _die_with_parent(parent: int) -> None:
    """In a pool process: exit when ``parent`` dies, however it dies.

    On Linux the kernel sends SIGKILL when the parent exits (``prctl(PR_SET_PDEATHSIG)``);
    elsewhere, and as a second guard, a daemon thread checks the parent every half second.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="mftheory-parent-watch", daemon=True).start()


def _pool_process_start(parent: int, init: Callable[[], None] | None) -> None:
    """The initializer of every pool process: stop with the parent, leave Ctrl-C to it (the
    terminal sends SIGINT to the whole process group; the parent stops the workers), then
    the caller's ``worker_init``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent)
    if init is not None:
        init()


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the worker processes now (SIGTERM, then SIGKILL)."""
    known = getattr(pool, "_processes", None)  # the executor's {pid: Process} (stdlib internals)
    processes = list(known.values()) if isinstance(known, dict) else []
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.terminate()
    deadline = time.monotonic() + 1.0
    for proc in processes:
        with contextlib.suppress(Exception):
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)


def _pool(cells: list[Cell], worker: Worker, jobs: int, init: Callable[[], None] | None) -> _Stream:
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=ctx,
        initializer=_pool_process_start,
        initargs=(os.getpid(), init),
    )
    try:
        futures = {pool.submit(worker, cell.config): cell for cell in cells}
        for future in as_completed(futures):
            yield (futures[future], *_outcome(future.result))
    except BaseException:  # Ctrl-C, an error in the caller, or the stream closed early
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _dask(
    cells: list[Cell], worker: Worker, address: str, init: Callable[[], None] | None
) -> _Stream:
    try:
        import distributed
    except ImportError:
        raise MFTheoryError(
            '--scheduler needs dask.distributed: pip install "mftheory[cluster]"'
        ) from None
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise MFTheoryError(f"cannot reach the dask scheduler at {address}: {reason}") from None
    futures: dict[Any, Cell] = {}
    try:
        run_id = uuid.uuid4().hex[:8]
        for cell in cells:
            key = f"mftheory-{cell.key}-{run_id}"
            future = client.submit(_call_with_init, init, worker, cell.config, key=key, pure=False)
            futures[future] = cell
        for future in distributed.as_completed(futures, loop=client.loop):
            yield (futures[future], *_outcome(future.result))
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        client.close()


def run_cells(
    cells: Sequence[Cell],
    worker: Worker,
    results_dir: Path,
    *,
    jobs: int = 1,
    scheduler: str | None = None,
    progress: ProgressCallback | None = None,
    resume: bool = True,
    worker_init: Callable[[], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every cell not already done and write each as ``results_dir/<key>.json``.

    Parameters
    ----------
    cells : sequence of Cell
        The sweep; keys must stay unique once made file-safe (``cell_path``).
    worker : callable
        Top-level (picklable) function ``config -> dict`` of JSON-able results (numpy scalars,
        arrays, NaN and inf are converted: non-finite -> null). It must not use the keys
        ``status``, ``key``, ``config``, ``finished_at`` or ``error``.
    results_dir : Path
        Folder of the result files; created if missing.
    jobs : int
        1 (default): inline in this process, in order. More: a process pool of ``jobs``
        spawned workers.
    scheduler : str, optional
        Address of a dask scheduler (e.g. ``"tcp://host:8786"``); excludes ``jobs > 1``.
    progress : callable, optional
        ``progress(done, total, cell, result)`` once per cell: first for every cell skipped as
        done (``result`` None), then as each run cell finishes (done or failed).
    resume : bool
        False reruns every cell and overwrites its file.
    worker_init : callable, optional
        Called once per pool process (the process pool's ``initializer``), once in this process
        for inline runs, and before every cell on dask workers; so it must be idempotent.

    Returns
    -------
    list of dict
        One result per cell, in the order of ``cells``: the stored JSON of a done cell
        (``"status": "done"``, ``key``, ``config``, the worker's output, ``finished_at``), or
        ``{"status": "failed", "key", "config", "error": "<ExceptionType>: message"}`` for a
        cell whose worker raised (not written, so the next run retries it).

    Raises
    ------
    MFTheoryError
        ``jobs < 1``, ``jobs > 1`` with a scheduler, an empty, duplicate or too long key, a
        config that is not JSON, no ``distributed`` installed, or an unreachable scheduler.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise MFTheoryError(f"jobs must be an integer >= 1, got {jobs!r}")
    if scheduler is not None and jobs > 1:
        raise MFTheoryError("choose --jobs or --scheduler, not both")
    results_dir = Path(results_dir)
    paths: dict[Path, str] = {}
    for cell in cells:
        path = cell_path(results_dir, cell)
        if not cell.key or len(path.name.encode()) > 255:
            raise MFTheoryError(f"cell key must be non-empty and short, got {cell.key!r}")
        if path in paths:
            raise MFTheoryError(
                f"cell keys {paths[path]!r} and {cell.key!r} share file {path.name}"
            )
        paths[path] = cell.key
        try:
            json.dumps(cell.config, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise MFTheoryError(f"config of cell {cell.key!r} is not JSON: {exc}") from None
    results_dir.mkdir(parents=True, exist_ok=True)

    total, done = len(cells), 0
    results: dict[int, dict[str, Any]] = {}
    pending: list[Cell] = []
    for i, cell in enumerate(cells):
        stored = load_result(cell_path(results_dir, cell), cell) if resume else None
        if stored is None:
            pending.append(cell)
            continue
        results[i] = stored
        done += 1
        if progress is not None:
            progress(done, total, cell, None)

    index = {cell.key: i for i, cell in enumerate(cells)}
    if scheduler is not None and pending:
        stream = _dask(pending, worker, scheduler, worker_init)
    elif jobs > 1 and pending:
        stream = _pool(pending, worker, jobs, worker_init)
    else:
        stream = _inline(pending, worker, worker_init)
    with contextlib.closing(stream):
        for cell, output, error in stream:
            result = (
                _failed(cell, error) if error is not None else _finish(results_dir, cell, output)
            )
            results[index[cell.key]] = result
            done += 1
            if progress is not None:
                progress(done, total, cell, result)
    return [results[i] for i in range(total)]

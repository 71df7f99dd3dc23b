"""Timers, fresh-process runs and the machine description shared by every benchmark."""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "Timing",
    "cold_call",
    "log",
    "machine",
    "measure",
    "parallel_map",
    "set_verbose",
    "timed_map",
]

T = TypeVar("T")
R = TypeVar("R")

_VERBOSE = True


def set_verbose(on: bool) -> None:
    """Switch the progress lines on stderr on or off."""
    global _VERBOSE
    _VERBOSE = on


def log(message: str) -> None:
    """One progress line on stderr (the table goes to stdout)."""
    if _VERBOSE:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Timing:
    """Wall times of one operation, in seconds.

    ``cold`` is the first call (in a fresh process where the case asks for it, so that the
    tables and caches the call builds are part of it); ``times`` are the repeats that follow a
    warm-up call, whose median is the headline figure.
    """

    cold: float | None
    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")


def measure(fn: Callable[[], T], repeat: int, cold: float | None = None) -> tuple[Timing, T]:
    """Time ``fn()``: one first call (the cold time unless ``cold`` is given), then ``repeat``.

    Returns the timing and the result of the last call.
    """
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(max(repeat, 1)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return Timing(cold=first if cold is None else cold, times=times), out


def _timed_call(fn: Callable[..., object], args: tuple[Any, ...]) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def _spawn_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))


def cold_call(fn: Callable[..., object], *args: Any) -> float:
    """Seconds of ``fn(*args)`` as the first call in a fresh interpreter (imports excluded).

    ``fn`` must be a module-level function; the modules it lives in are imported before the
    timer starts, everything it builds on first use (tables, caches) is inside the time.
    """
    with _spawn_pool(1) as pool:
        return pool.submit(_timed_call, fn, args).result()


def _timed_item(fn: Callable[[T], R], item: T) -> tuple[R, float]:
    t0 = time.perf_counter()
    out = fn(item)
    return out, time.perf_counter() - t0


def timed_map(fn: Callable[[T], R], items: Iterable[T]) -> tuple[list[R], list[float]]:
    """``fn`` over ``items`` one after another in this process, with each call's seconds."""
    results, seconds = [], []
    for item in items:
        out, dt = _timed_item(fn, item)
        results.append(out)
        seconds.append(dt)
    return results, seconds


def parallel_map(
    fn: Callable[[T], R], items: Sequence[T], jobs: int
) -> tuple[list[R], list[float]]:
    """``fn`` over ``items`` in ``jobs`` fresh processes (in order), with each call's seconds.

    For the slow reference path only: its per-call times are taken inside the workers.
    """
    if jobs <= 1 or len(items) <= 1:
        return timed_map(fn, items)
    with _spawn_pool(min(jobs, len(items))) as pool:
        pairs = list(pool.map(_timed_item, [fn] * len(items), items))
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError, IndexError):
        pass
    return None


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=10"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    """The machine and software the benchmarks ran on."""
    import numpy
    import scipy

    import mftheory

    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    mem = _memory_gib()
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "memory_gib": None if mem is None else round(mem, 1),
        "platform": platform.platform(),
        "uname": " ".join(x for x in platform.uname() if x),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
        "mftheory": mftheory.__version__,
        "commit": _git_commit(Path(__file__).resolve().parent.parent),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }

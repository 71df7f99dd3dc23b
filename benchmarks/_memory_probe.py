"""Peak memory of one ``phase_grid`` call, in a process of its own (used by the memory case).

``python -m benchmarks._memory_probe N [ACT]`` solves the N x N grid of the benchmarks
(sigma_w2 in [0.5, 4], sigma_b2 in [0.01, 1]; tanh unless ACT is given) and prints one JSON
line: the peak resident set size after the imports and after the call (``VmHWM``, else
``ru_maxrss``), the bytes of the result arrays, the seconds of the call and the solver.
"""

from __future__ import annotations

import json
import resource
import sys
import time


def _peak_bytes() -> int:
    """This process's peak resident set size.

    On Linux ``VmHWM`` of ``/proc/self/status``: ``getrusage(RUSAGE_SELF).ru_maxrss`` is kept
    across ``execve``, so a process started by a large parent would report the parent's peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss) if sys.platform == "darwin" else int(rss) * 1024


def main(argv: list[str]) -> None:
    n = int(argv[0])
    spec = argv[1] if len(argv) > 1 else "tanh"

    import numpy as np

    from benchmarks.cases import RESULT_FIELDS, grid_solver
    from mftheory import get_activation

    solve, label = grid_solver()
    act = get_activation(spec)
    w = np.linspace(0.5, 4.0, n)
    b = np.linspace(0.01, 1.0, n)
    base = _peak_bytes()
    t0 = time.perf_counter()
    fp = solve(act, sigma_w2=w, sigma_b2=b)
    seconds = time.perf_counter() - t0
    peak = _peak_bytes()
    out = sum(np.asarray(getattr(fp, k)).nbytes for k in RESULT_FIELDS)
    print(
        json.dumps(
            {
                "n": n,
                "base_bytes": base,
                "peak_bytes": peak,
                "result_bytes": out,
                "seconds": seconds,
                "solver": label,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])

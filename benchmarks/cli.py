"""Command line of ``python -m benchmarks``."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from .cases import CASES, SOLVER_ENV, Config, Context, grid_solver
from .report import Row, print_report, save_json
from .timing import log, machine, set_verbose

__all__ = ["main"]

EPILOG = f"""\
benchmarks (in the order they run): {", ".join(CASES)}.

Every time is wall-clock seconds. "median" is the median of --repeat runs after a warm-up
run; "cold" is the first call in a fresh Python process (imports excluded, table building
included), and for the CLI rows the first of the runs. "vs slow path" is the slow adaptive
path (mftheory.reference) timed in this run on a few random points of the same inputs,
extrapolated per point to the full size and divided by the median.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time mftheory's grid-scale operations against the slow reference path.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (a smoke run of well under a minute); targets are not judged",
    )
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this benchmark (repeatable or comma-separated; a prefix is enough)",
    )
    p.add_argument(
        "--repeat", type=int, metavar="N", help="timed runs after the first (default 5, --quick 3)"
    )
    p.add_argument(
        "--accuracy-points",
        type=int,
        metavar="N",
        help="grid points checked against the slow path (default 200, --quick 20)",
    )
    p.add_argument(
        "--ref-points",
        type=int,
        metavar="N",
        help="random points the slow path is timed on, per benchmark (default 10, --quick 3)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=_cpus(),
        metavar="N",
        help="processes for the accuracy checks (default: usable CPUs)",
    )
    p.add_argument("--large", action="store_true", help="add a 4000 x 4000 memory run")
    p.add_argument("--seed", type=int, default=Config.seed, help="seed of the random points")
    p.add_argument(
        "--no-fresh-cold",
        action="store_true",
        help="take the cold time in this process instead of a fresh one (faster)",
    )
    p.add_argument(
        "--solver",
        choices=("phase_grid", "fixed_point"),
        default="phase_grid",
        help="grid solver: mftheory.meanfield.grid.phase_grid (default; fixed_point where it "
        "does not exist yet) or the pointwise fixed_point on the broadcast grid, for comparison",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="also write every figure to PATH")
    p.add_argument(
        "--format",
        choices=("auto", "rich", "plain", "markdown"),
        default="auto",
        help="table style (default: rich on a terminal, plain otherwise)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    return p


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _select(only: Sequence[str] | None) -> list[str]:
    if not only:
        return list(CASES)
    wanted = [w.strip().replace("-", "_") for item in only for w in item.split(",") if w.strip()]
    chosen = []
    for w in wanted:
        hits = [name for name in CASES if name == w] or [n for n in CASES if n.startswith(w)]
        if not hits:
            raise SystemExit(f"unknown benchmark {w!r}; choose from {', '.join(CASES)}")
        chosen += [h for h in hits if h not in chosen]
    return [name for name in CASES if name in chosen]


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.list:
        for name, fn in CASES.items():
            print(f"{name:12} {(fn.__doc__ or '').splitlines()[0]}")
        return 0
    repeat = args.repeat if args.repeat is not None else (3 if args.quick else 5)
    if repeat < 1:
        raise SystemExit("--repeat must be at least 1")
    set_verbose(not args.quiet)
    if args.solver == "fixed_point":
        os.environ[SOLVER_ENV] = "fixed_point"
    else:
        os.environ.pop(SOLVER_ENV, None)
    cfg = Config(
        quick=args.quick,
        repeat=repeat,
        accuracy_points=(
            args.accuracy_points
            if args.accuracy_points is not None
            else (20 if args.quick else 200)
        ),
        ref_points=max(
            1, args.ref_points if args.ref_points is not None else (3 if args.quick else 10)
        ),
        jobs=max(1, args.jobs),
        large=args.large,
        seed=args.seed,
        fresh_cold=not args.no_fresh_cold,
    )
    names = _select(args.only)
    info = machine()
    _, solver = grid_solver()
    settings = {
        "benchmarks": ",".join(names),
        "quick": cfg.quick,
        "repeat": cfg.repeat,
        "accuracy_points": cfg.accuracy_points,
        "ref_points": cfg.ref_points,
        "jobs": cfg.jobs,
        "seed": cfg.seed,
        "grid solver": solver,
    }
    ctx = Context(cfg)
    start = time.perf_counter()
    failed = []
    for name in names:
        try:
            CASES[name](ctx)
        except Exception as exc:  # report it in the table, run the other benchmarks
            failed.append(name)
            log(f"{name} FAILED:\n{traceback.format_exc()}")
            message = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
            ctx.rows.append(Row(case=name, operation=name, size="-", points=0,
                                check=f"FAILED: {message}", met="error"))  # fmt: skip
    settings["total seconds"] = round(time.perf_counter() - start, 1)
    log(f"done in {settings['total seconds']} s")
    print_report(info, settings, ctx.rows, ctx.checks, args.format)
    if args.json is not None:
        save_json(args.json, info, settings, ctx.rows, ctx.checks)
        log(f"wrote {args.json}")
    if failed:
        log(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

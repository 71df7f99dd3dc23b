"""``mftheory validate``: train real networks and set the results beside the predictions.

Wires :mod:`mftheory.validation` (plans, the runner, the training worker, the report) to the
command line. Needs PyTorch (the ``[validate]`` extra).
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mftheory.cli.options import Format, Quiet

if TYPE_CHECKING:
    from mftheory.cli.output import Messages
    from mftheory.validation.runner import Cell

__all__ = ["validate"]

EXPERIMENT_HELP = "trainability | learning-speed | ultra-deep | spatial-modes"


def _opt(name: str, metavar: str, help_text: str) -> Any:
    return typer.Option(name, metavar=metavar, help=help_text, show_default=False)


def _list(option: str, text: str | None) -> list[str] | None:
    """Comma-separated items, or None when the option was not given."""
    from mftheory.errors import MFTheoryError

    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise MFTheoryError(f"{option} is empty")
    return items


def _ints(option: str, text: str | None, low: int) -> list[int] | None:
    from mftheory.cli.params import parse_int

    items = _list(option, text)
    if items is None:
        return None
    out = [parse_int(option, t, low=low) for t in items]
    return [int(x) for x in out if x is not None]


def _variances(option: str, text: str | None) -> list[float] | None:
    """A comma list of numbers or one ``START:STOP:COUNT`` range, each >= 0."""
    from mftheory.cli.params import parse_number, parse_range
    from mftheory.errors import MFTheoryError

    if text is None:
        return None
    values = (
        parse_range(option, text).tolist()
        if ":" in text
        else [parse_number(option, t) for t in _list(option, text) or []]
    )
    for v in values:
        if v < 0:
            raise MFTheoryError(f"{option} must be >= 0, got {v:g}")
    return values


def _number(option: str, text: str | None, *, positive: bool = False) -> float | None:
    from mftheory.cli.params import parse_optional_number
    from mftheory.errors import MFTheoryError

    value = parse_optional_number(option, text)
    if value is not None and (value < 0 or (positive and value == 0)):
        raise MFTheoryError(f"{option} must be {'> 0' if positive else '>= 0'}, got {text!r}")
    return value


def _progress_printer(messages: Messages, bar: Any) -> Any:
    """One stderr line per cell (a log shows what each cost), and ``bar(done, total)``."""
    start = time.perf_counter()

    def report(done: int, total: int, cell: Cell, result: dict[str, Any] | None) -> None:
        if result is None:
            text = "already done (resumed)"
        elif result.get("status") != "done":
            text = f"FAILED: {result.get('error')}"
        else:
            final = result["final"]
            acc = final.get("train_accuracy")
            text = (
                "diverged (loss not finite)"
                if result.get("diverged")
                else f"train {acc:.3f}, test {final.get('test_accuracy'):.3f}"
            )
            text += f" ({result['wall_time_s']:.1f} s)"
        elapsed = time.perf_counter() - start
        messages.note(f"[{done}/{total}] {cell.key}: {text}  [{elapsed:.0f} s]")
        bar(done, total)

    return report


def validate(
    experiment: Annotated[str, typer.Argument(metavar="EXPERIMENT", help=EXPERIMENT_HELP)],
    scale: Annotated[
        str,
        typer.Option(
            "--scale",
            metavar="tiny|cpu|paper",
            help="tiny: seconds (tests); cpu: minutes on a laptop (8x8 digits); paper: the "
            "paper's depths and widths on MNIST (--data-dir), for a GPU.",
        ),
    ] = "cpu",
    out: Annotated[
        Path | None,
        _opt(
            "--out",
            "DIR",
            "Results folder (default validation-EXPERIMENT): cells/*.json, "
            "summary.json, the figure, report.md. A rerun resumes.",
        ),
    ] = None,
    dataset: Annotated[
        str | None, _opt("--dataset", "NAME", "digits | mnist1d | mnist | cifar10.")
    ] = None,
    data_dir: Annotated[
        Path | None,
        _opt("--data-dir", "DIR", "Folder with MNIST IDX files or cifar-10-batches-py."),
    ] = None,
    depths: Annotated[str | None, _opt("--depths", "LIST", "Body depths, e.g. 2,8,32.")] = None,
    sigma_w2: Annotated[
        str | None,
        _opt("--sigma-w2", "LIST|RANGE", "trainability: weight variances, list or A:B:N."),
    ] = None,
    sigma_b2: Annotated[
        str | None,
        _opt(
            "--sigma-b2",
            "FLOAT",
            "Bias variance (default 0.05; 1e-5 for learning-speed and ultra-deep).",
        ),
    ] = None,
    schemes: Annotated[
        str | None,
        _opt("--schemes", "LIST", "learning-speed: gaussian,orthogonal,delta-orthogonal."),
    ] = None,
    v: Annotated[str | None, _opt("--v", "LIST", "spatial-modes: presets, e.g. gs0,gs4.")] = None,
    channels: Annotated[str | None, _opt("--channels", "INT", "Channels c.")] = None,
    steps: Annotated[str | None, _opt("--steps", "INT", "Training steps per cell.")] = None,
    epochs: Annotated[
        str | None, _opt("--epochs", "FLOAT", "Training epochs per cell (instead of --steps).")
    ] = None,
    batch_size: Annotated[str | None, _opt("--batch-size", "INT", "Minibatch size.")] = None,
    lr: Annotated[str | None, _opt("--lr", "FLOAT", "Learning rate (constant).")] = None,
    optimizer: Annotated[str | None, _opt("--optimizer", "sgd|adam", "Optimiser.")] = None,
    momentum: Annotated[str | None, _opt("--momentum", "FLOAT", "SGD momentum.")] = None,
    eval_every: Annotated[
        str | None, _opt("--eval-every", "INT", "Steps between evaluations.")
    ] = None,
    max_train: Annotated[
        str | None, _opt("--max-train", "INT", "Use the first N training samples.")
    ] = None,
    max_test: Annotated[
        str | None, _opt("--max-test", "INT", "Use the first N test samples.")
    ] = None,
    threshold: Annotated[
        str | None,
        _opt(
            "--threshold",
            "FLOAT",
            "Training accuracy that counts as trained (default: halfway from chance to 1).",
        ),
    ] = None,
    seed: Annotated[
        str, _opt("--seed", "INT", "Seed of the sweep (each cell derives its own).")
    ] = "0",
    device: Annotated[str, _opt("--device", "cpu|cuda|auto", "Where to train.")] = "cpu",
    jobs: Annotated[
        str | None, _opt("--jobs", "INT", "Cells trained in parallel here (default: CPUs).")
    ] = None,
    scheduler: Annotated[
        str | None,
        _opt("--scheduler", "ADDRESS", "Run the cells on a dask.distributed cluster."),
    ] = None,
    threads: Annotated[
        str | None, _opt("--threads", "INT", "torch CPU threads per cell (default: CPUs / jobs).")
    ] = None,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Retrain every cell instead of resuming.")
    ] = False,
    fmt: Format = None,
    quiet: Quiet = False,
) -> None:
    """Train tanh CNNs and check the mean-field predictions against them.

    trainability (paper Fig. 2): a sigma_w2 x depth grid; prints the share of cells where
    "trained" agrees with depth < 6 xi_c. learning-speed (Fig. 5): a deep critical network,
    Gaussian against orthogonal kernels. ultra-deep (Fig. 1): Delta-Orthogonal at criticality
    over depths, accuracy against epochs. spatial-modes (Fig. 3/4): variance vectors GS0..GS4.
    Every cell is one JSON file in --out/cells; a rerun skips finished cells. Data are never
    downloaded: digits ship with scikit-learn, mnist1d is generated, mnist and cifar10 come
    from --data-dir.

    Example:

    \b
        mftheory validate trainability --scale tiny
        mftheory validate trainability --jobs 2 --out runs/fig2
        mftheory validate ultra-deep --scale paper --device cuda --data-dir ~/mnist
    """
    import os

    from mftheory.cli.output import Column, Messages, Records, Report, emit
    from mftheory.cli.params import parse_int
    from mftheory.errors import MFTheoryError

    messages = Messages(quiet)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MFTheoryError(
            "mftheory validate needs PyTorch: pip install torch, then pip install -e '.[validate]'"
        ) from None
    from mftheory.validation.data import load_dataset
    from mftheory.validation.experiments import plan_experiment, summarise
    from mftheory.validation.report import columns, write_outputs
    from mftheory.validation.runner import run_cells
    from mftheory.validation.train import resolve_device, train_cell

    if optimizer is not None and optimizer not in ("sgd", "adam"):
        raise MFTheoryError(f"--optimizer must be sgd or adam, got {optimizer!r}")
    if steps is not None and epochs is not None:
        raise MFTheoryError("give --steps or --epochs, not both")
    resolve_device(device)
    cpus = os.cpu_count() or 1
    n_jobs = parse_int("--jobs", jobs, low=1)
    if scheduler is not None and n_jobs is not None and n_jobs > 1:
        raise MFTheoryError("choose --jobs or --scheduler, not both")
    if n_jobs is None:
        n_jobs = 1 if scheduler is not None or device != "cpu" else cpus
    n_threads = parse_int("--threads", threads, low=1)
    if n_threads is None:
        n_threads = max(1, cpus // n_jobs) if scheduler is None else 1
    overrides: dict[str, Any] = {
        "dataset": dataset,
        "data_dir": str(data_dir.expanduser()) if data_dir is not None else None,
        "depths": _ints("--depths", depths, 0),
        "sigma_w2": _variances("--sigma-w2", sigma_w2),
        "sigma_b2": _number("--sigma-b2", sigma_b2),
        "schemes": _list("--schemes", schemes),
        "v_presets": _list("--v", v),
        "channels": parse_int("--channels", channels),
        "steps": parse_int("--steps", steps),
        "epochs": _number("--epochs", epochs, positive=True),
        "batch_size": parse_int("--batch-size", batch_size),
        "lr": _number("--lr", lr, positive=True),
        "optimizer": optimizer,
        "momentum": _number("--momentum", momentum),
        "eval_every": parse_int("--eval-every", eval_every),
        "max_train": parse_int("--max-train", max_train),
        "max_test": parse_int("--max-test", max_test),
        "threshold": _number("--threshold", threshold, positive=True),
        "seed": parse_int("--seed", seed, low=0),
        "device": device,
        "threads": n_threads,
    }
    plan = plan_experiment(experiment, scale, overrides)
    # Read the data once here, so that a missing or broken data set is one clear error now
    # rather than a failure in every cell (and so that epochs count the real training set).
    s = plan.settings
    with messages.status(f"loading {s['dataset']}"):
        data = load_dataset(
            s["dataset"],
            data_dir=s["data_dir"],
            split_seed=s["split_seed"],
            max_train=s["max_train"],
            max_test=s["max_test"],
        )
    if "epochs" in s:
        plan = plan_experiment(experiment, scale, overrides | {"n_train": len(data.y_train)})
    folder = out if out is not None else Path(f"validation-{experiment}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MFTheoryError(f"--out {str(folder)!r}: {exc.strerror or exc}") from None
    where = f"dask scheduler {scheduler}" if scheduler else f"{n_jobs} job(s) here"
    messages.note(
        f"{experiment} ({scale}): {len(plan.cells)} cells on {where}, results in {folder}"
    )
    # A rich bar on an interactive stderr (the per-cell lines print above it).
    with messages.progress(f"{experiment}: training", points=len(plan.cells)) as bar:
        results = run_cells(
            plan.cells,
            train_cell,
            folder / "cells",
            jobs=n_jobs,
            scheduler=scheduler,
            resume=not fresh,
            progress=_progress_printer(messages, bar),
        )
    summary = summarise(plan, results)
    command = "mftheory " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    document = write_outputs(plan, results, summary, folder, command)
    messages.note(f"wrote {folder / 'summary.json'}, {folder / 'report.md'}")
    failed = [r for r in results if r.get("status") != "done"]
    cols = columns(experiment)
    report = Report(
        command="validate",
        payload={k: v for k, v in document.items() if k != "settings"},
        settings=document["settings"],
        table=Records(
            [Column(c, justify="left" if c in ("scheme", "v") else "right") for c in cols],
            [{c: row.get(c) for c in cols} for row in summary["cells"]],
            title=summary["headline"],
        ),
    )
    emit(report, fmt=fmt, output=None, messages=messages)
    if failed:
        # A failure is a crash in a cell (a diverging network is a result, not a failure).
        typer.echo(
            f"Error: {len(failed)} of {len(results)} cells failed (first: {failed[0]['error']});"
            " the others are saved, a rerun retries the failed ones",
            err=True,
        )
        raise typer.Exit(1)

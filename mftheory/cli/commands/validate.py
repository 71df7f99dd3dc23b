"""``mftheory validate``: train real networks and set the results beside the predictions.

Wires ``mftheory.validation`` (plans, the runner, the training worker, the report) to the
command line. Needs PyTorch (the ``[validate]`` extra).
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mftheory.cli.options import Dpi, FigSize, Format, Quiet
from mftheory.cli.params import (
    Choice,
    ChoiceEnum,
    FigureSize,
    Int,
    IntList,
    NameList,
    Number,
    VarianceList,
)

if TYPE_CHECKING:
    from mftheory.cli.messages import Messages
    from mftheory.cli.output import FigureStyle
    from mftheory.validation.runner import Cell

__all__ = [
    "DatasetName",
    "Experiment",
    "ExperimentScale",
    "OptimizerName",
    "kept_note",
    "validate",
]


class Experiment(ChoiceEnum):
    """Experiments (``mftheory.validation.experiments.EXPERIMENTS``)."""

    trainability = "trainability"
    learning_speed = "learning-speed"
    ultra_deep = "ultra-deep"
    spatial_modes = "spatial-modes"


class ExperimentScale(ChoiceEnum):
    """How big an experiment is (``mftheory.validation.experiments.SCALES``)."""

    tiny = "tiny"
    cpu = "cpu"
    paper = "paper"


class DatasetName(ChoiceEnum):
    """Data sets (``mftheory.validation.data.DATASETS``)."""

    digits = "digits"
    mnist1d = "mnist1d"
    mnist = "mnist"
    cifar10 = "cifar10"


class OptimizerName(ChoiceEnum):
    """Optimisers."""

    sgd = "sgd"
    adam = "adam"


_EXPERIMENT = Choice(Experiment, "experiment")
_SCALE = Choice(ExperimentScale, "scale")
_DATASET = Choice(DatasetName, "dataset")
_OPTIMIZER = Choice(OptimizerName, "optimizer")


def _opt(name: str, metavar: str, help_text: str, parser: Any = None) -> Any:
    return typer.Option(name, metavar=metavar, help=help_text, parser=parser)


def _int(name: str, help_text: str, low: int = 1, high: int | None = None) -> Any:
    return _opt(name, "INT", help_text, Int(low, high))


def _positive(name: str, help_text: str) -> Any:
    return _opt(name, "FLOAT", help_text, Number(0.0, strict=True))


ExperimentOpt = Annotated[
    Experiment,
    typer.Argument(metavar=_EXPERIMENT.metavar, help="Which experiment.", parser=_EXPERIMENT),
]
ScaleOpt = Annotated[
    ExperimentScale,
    _opt(
        "--scale",
        _SCALE.metavar,
        "tiny: a smoke test, not a result (seconds); cpu: minutes on a laptop (8x8 digits); "
        "paper: the "
        "paper's depths and widths on MNIST (--data-dir), for a GPU.",
        _SCALE,
    ),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="DIR",
        help="Results folder (without it: validation-EXPERIMENT): cells/*.json, "
        "summary.json, the figure, report.md. A rerun resumes.",
    ),
]
OldOutOpt = Annotated[Path | None, typer.Option("--out", hidden=True)]
DatasetOpt = Annotated[
    DatasetName | None, _opt("--dataset", _DATASET.metavar, "Data set.", _DATASET)
]
DataDirOpt = Annotated[
    Path | None,
    _opt("--data-dir", "DIR", "Folder with MNIST IDX files or cifar-10-batches-py."),
]
DepthsOpt = Annotated[Any, _opt("--depths", "LIST", "Body depths, e.g. 2,8,32.", IntList(0))]
SigmaW2Opt = Annotated[
    Any,  # a list: annotated list[...], typer would make the option repeatable
    _opt(
        "--sigma-w2",
        "LIST|RANGE",
        "trainability: weight variances, list or A:B:N.",
        VarianceList(),
    ),
]
SigmaB2Opt = Annotated[
    float | None,
    _opt(
        "--sigma-b2",
        "FLOAT",
        "Bias variance; without it, the experiment's (0.05; 1e-5 for learning-speed and "
        "ultra-deep).",
        Number(0.0),
    ),
]
SchemesOpt = Annotated[
    Any,
    _opt(
        "--schemes",
        "LIST",
        "learning-speed, ultra-deep: from gaussian,orthogonal,delta-orthogonal.",
        NameList(),
    ),
]
VOpt = Annotated[Any, _opt("--v", "LIST", "spatial-modes: presets, e.g. gs0,gs4.", NameList())]
ChannelsOpt = Annotated[int | None, _int("--channels", "Channels c.")]
StepsOpt = Annotated[int | None, _int("--steps", "Training steps per cell.")]
EpochsOpt = Annotated[
    float | None, _positive("--epochs", "Training epochs per cell (instead of --steps).")
]
BatchSizeOpt = Annotated[int | None, _int("--batch-size", "Minibatch size.")]
#: Largest --lr accepted (a constant learning rate above it only diverges).
MAX_LR = 10.0
LrOpt = Annotated[
    float | None,
    _opt(
        "--lr",
        "FLOAT",
        f"Learning rate (constant), in (0, {MAX_LR:g}].",
        Number(0.0, strict=True, high=MAX_LR),
    ),
]
OptimizerOpt = Annotated[
    OptimizerName | None, _opt("--optimizer", _OPTIMIZER.metavar, "Optimiser.", _OPTIMIZER)
]
MomentumOpt = Annotated[float | None, _opt("--momentum", "FLOAT", "SGD momentum.", Number(0.0))]
EvalEveryOpt = Annotated[int | None, _int("--eval-every", "Steps between evaluations.")]
MaxTrainOpt = Annotated[int | None, _int("--max-train", "Use the first N training samples.")]
MaxTestOpt = Annotated[int | None, _int("--max-test", "Use the first N test samples.")]
ThresholdOpt = Annotated[
    float | None,
    _positive(
        "--threshold",
        "Training accuracy that counts as trained (without it: halfway from chance to 1).",
    ),
]
SeedOpt = Annotated[int, _int("--seed", "Seed of the sweep (each cell derives its own).", 0)]
SeedsOpt = Annotated[
    int | None,
    _int("--seeds", "trainability: networks (seeds) per sigma_w2 and depth, 1-1000.", 1, 1000),
]
DeviceOpt = Annotated[str, _opt("--device", "cpu|cuda|cuda:N|auto", "Where to train.")]
JobsOpt = Annotated[
    int | None,
    _int("--jobs", "Cells trained in parallel here, 1-1024 (without it: the CPUs).", 1, 1024),
]
SchedulerOpt = Annotated[
    str | None,
    _opt("--scheduler", "ADDRESS", "Run the cells on a dask.distributed cluster."),
]
ThreadsOpt = Annotated[
    int | None,
    _int("--threads", "torch CPU threads per cell, 1-1024 (without it: CPUs / jobs).", 1, 1024),
]
#: Size (inches) of the PNG figure in the -o folder.
VALIDATE_FIGSIZE = FigureSize(6.4, 4.6)
#: ultra-deep draws two panels side by side: its default is wider
ULTRA_DEEP_FIGSIZE = FigureSize(11.0, 4.4)
FreshOpt = Annotated[bool, typer.Option("--fresh", help="Retrain every cell instead of resuming.")]


def validate(
    ctx: typer.Context,
    experiment: ExperimentOpt,
    scale: ScaleOpt = ExperimentScale.cpu,
    output: OutputOpt = None,
    old_out: OldOutOpt = None,
    dataset: DatasetOpt = None,
    data_dir: DataDirOpt = None,
    depths: DepthsOpt = None,
    sigma_w2: SigmaW2Opt = None,
    sigma_b2: SigmaB2Opt = None,
    schemes: SchemesOpt = None,
    v: VOpt = None,
    channels: ChannelsOpt = None,
    steps: StepsOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchSizeOpt = None,
    lr: LrOpt = None,
    optimizer: OptimizerOpt = None,
    momentum: MomentumOpt = None,
    eval_every: EvalEveryOpt = None,
    max_train: MaxTrainOpt = None,
    max_test: MaxTestOpt = None,
    threshold: ThresholdOpt = None,
    seed: SeedOpt = 0,
    seeds: SeedsOpt = None,
    device: DeviceOpt = "cpu",
    jobs: JobsOpt = None,
    scheduler: SchedulerOpt = None,
    threads: ThreadsOpt = None,
    fresh: FreshOpt = False,
    figsize: FigSize = VALIDATE_FIGSIZE,
    dpi: Dpi = 100.0,
    fmt: Format = None,
    quiet: Quiet = False,
) -> None:
    """Train tanh CNNs and check the mean-field predictions against them.

    trainability (paper Fig. 2): a sigma_w2 x depth x seed grid on both sides of the critical
    line; prints the share of cells where "trained" agrees with depth < 6 xi_c, overall, per
    side and per prediction, with 95% Wilson intervals and the "all train" / "none train"
    baselines (a cell stops once it reaches the threshold). learning-speed (Fig. 5): a deep
    critical network, Gaussian against orthogonal kernels. ultra-deep (Fig. 1):
    Delta-Orthogonal at criticality over depths, accuracy against epochs. spatial-modes
    (Fig. 3/4): variance vectors GS0..GS4. Every cell is one JSON file in the -o folder's
    cells/; a rerun skips finished cells. Data are never downloaded: digits ship with
    scikit-learn, mnist1d is generated, mnist and cifar10 come from --data-dir.

    Example:

    \b
        mftheory validate trainability --scale tiny
        mftheory validate trainability --jobs 2 -o runs/fig2
        mftheory validate ultra-deep --scale paper --device cuda --data-dir ~/mnist
    """
    from mftheory.cli.common import begin, pick_alias
    from mftheory.cli.output import FigureStyle
    from mftheory.errors import MFTheoryError

    if experiment.value == "ultra-deep" and figsize == VALIDATE_FIGSIZE:
        figsize = ULTRA_DEEP_FIGSIZE
    style = FigureStyle(figsize.inches, dpi)
    messages = begin(quiet)
    try:
        import torch  # noqa: F401
    except ImportError:
        raise MFTheoryError(
            'mftheory validate needs PyTorch: pip install "mftheory[validate]"'
        ) from None
    from mftheory.validation.train import resolve_device

    if steps is not None and epochs is not None:
        raise MFTheoryError("give --steps or --epochs, not both")
    resolve_device(device)
    n_jobs, n_threads = _workers(jobs, threads, scheduler, device)
    overrides: dict[str, Any] = {
        "dataset": None if dataset is None else dataset.value,
        "data_dir": str(data_dir.expanduser()) if data_dir is not None else None,
        "depths": depths,
        "sigma_w2": sigma_w2,
        "sigma_b2": sigma_b2,
        "schemes": schemes,
        "v_presets": v,
        "channels": channels,
        "steps": steps,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "optimizer": None if optimizer is None else optimizer.value,
        "momentum": momentum,
        "eval_every": eval_every,
        "max_train": max_train,
        "max_test": max_test,
        "threshold": threshold,
        "seed": seed,
        "seeds": seeds,
        "device": device,
        "threads": n_threads,
    }
    folder = pick_alias(ctx, ("output", "--output", output), ("old_out", "--out", old_out))
    if folder is None:
        folder = Path(f"validation-{experiment.value}")
    where = f"dask scheduler {scheduler}" if scheduler else f"{n_jobs} job(s) here"
    failed = _run(experiment.value, scale.value, overrides, folder, where, n_jobs, scheduler,
                  fresh, fmt, messages, style)  # fmt: skip
    if failed:
        raise typer.Exit(1)


def _workers(
    jobs: int | None, threads: int | None, scheduler: str | None, device: str
) -> tuple[int, int]:
    """Cells trained at once here, and torch threads per cell."""
    import os

    from mftheory.errors import MFTheoryError

    cpus = os.cpu_count() or 1
    if scheduler is not None and jobs is not None and jobs > 1:
        raise MFTheoryError("choose --jobs or --scheduler, not both")
    if jobs is None:
        jobs = 1 if scheduler is not None or device != "cpu" else cpus
    if threads is None:
        threads = max(1, cpus // jobs) if scheduler is None else 1
    return jobs, threads


def _run(
    experiment: str,
    scale: str,
    overrides: dict[str, Any],
    folder: Path,
    where: str,
    n_jobs: int,
    scheduler: str | None,
    fresh: bool,
    fmt: Any,
    messages: Messages,
    style: FigureStyle,
) -> bool:
    """Plan, load the data, train every cell, write the outputs and print the summary table;
    True when a cell failed (reported on stderr)."""
    from mftheory.cli.options import OutputFormat
    from mftheory.cli.output import Interrupted, OutputError, Report, emit
    from mftheory.cli.render import Column, Records
    from mftheory.errors import MFTheoryError
    from mftheory.files import folder_lock
    from mftheory.validation.data import load_dataset
    from mftheory.validation.experiments import SMOKE_TEST_NOTICE, plan_experiment, summarise
    from mftheory.validation.report import columns, write_outputs
    from mftheory.validation.runner import run_cells
    from mftheory.validation.train import resolve_device, train_cell

    plan = plan_experiment(experiment, scale, overrides)
    # Cells trained here on the CPU share this machine's memory: check them up front (a GPU's
    # memory, or a cluster's, is not this machine's).
    if scheduler is None and resolve_device(str(overrides["device"])).type == "cpu":
        _require_memory(plan.cells, plan.settings, n_jobs)
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
    held = contextlib.ExitStack()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        held.enter_context(folder_lock(folder))  # a second run into it is refused meanwhile
    except OSError as exc:
        raise MFTheoryError(f"--output {str(folder)!r}: {exc.strerror or exc}") from None
    with held:
        try:
            messages.note(
                f"{experiment} ({scale}): {len(plan.cells)} cells on {where}, results in {folder}"
            )
            if scale == "tiny":
                typer.echo(f"Note: {SMOKE_TEST_NOTICE}", err=True)
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
            document = write_outputs(
                plan, results, summary, folder, command, figsize=style.figsize, dpi=style.dpi
            )
        except KeyboardInterrupt as exc:  # the pool is stopped; say what stays on disk
            raise Interrupted(kept_note(plan.cells, folder)) from exc
        except OSError as exc:  # a full disk, a folder made read-only meanwhile, ...
            raise OutputError(f"cannot write into {str(folder)!r}: {exc.strerror or exc}") from None
    messages.note(f"wrote {folder / 'summary.json'}, {folder / 'report.md'}")
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
    if summary.get("agreement_groups") and fmt in (None, OutputFormat.table):
        _agreement_table(summary["agreement_groups"])
    failed = [r for r in results if r.get("status") != "done"]
    if failed:
        # A failure is a crash in a cell (a diverging network is a result, not a failure).
        typer.echo(
            f"Error: {len(failed)} of {len(results)} cells failed (first: {failed[0]['error']});"
            " the others are saved, a rerun retries the failed ones",
            err=True,
        )
    return bool(failed)


def _agreement_table(groups: Sequence[dict[str, Any]]) -> None:
    """Print the trainability agreement per side and prediction (Wilson 95% intervals and the
    "all train" / "none train" baselines) under the per-cell table."""
    from mftheory.cli.render import Column, Records, render_table
    from mftheory.validation.report import AGREEMENT_COLUMNS

    render_table(
        Records(
            [Column(c, justify="left" if c == "group" else "right") for c in AGREEMENT_COLUMNS],
            [{c: g.get(c) for c in AGREEMENT_COLUMNS} for g in groups],
            title="agreement per group (95% Wilson score interval; baselines on the same cells)",
        )
    )


#: Bytes a training worker holds besides its network (torch, the data set).
WORKER_BYTES = 400 * 1024**2
#: Pixels of a body feature map (at most 8 x 8, see mftheory.validation.network) and of the
#: largest input (CIFAR-10's 32 x 32).
BODY_PIXELS, INPUT_PIXELS = 64, 1024


def cell_bytes(depth: int, channels: int, batch: int) -> float:
    """About the peak bytes of training one cell (float32): ``9 c^2 (depth + 3)`` weights
    held 4 times (values, gradients and two optimiser states), and per minibatch sample
    ``3 c (depth BODY_PIXELS + 3 INPUT_PIXELS)`` activations (output, tanh and gradient of every
    layer, the stem at the input's size), plus ``WORKER_BYTES``."""
    c = float(channels)
    weights = 9.0 * c * c * (depth + 3) * 4 * 4
    activations = 3.0 * batch * c * (depth * BODY_PIXELS + 3 * INPUT_PIXELS) * 4
    return weights + activations + WORKER_BYTES


def _require_memory(cells: Any, settings: dict[str, Any], jobs: int) -> None:
    """Refuse, before any data is read or a worker started, a sweep whose largest cell times
    the cells trained at once (``--jobs``) needs more than the memory limit."""
    from mftheory.cli.budget import require_memory

    if not cells:
        return
    biggest = max(
        cells,
        key=lambda cell: cell_bytes(
            cell.config["depth"], cell.config["channels"], cell.config["batch_size"]
        ),
    )
    c = biggest.config
    at_once = min(jobs, len(cells))
    need = at_once * cell_bytes(c["depth"], c["channels"], c["batch_size"])
    require_memory(
        need,
        f"training {at_once} cell(s) at once, the largest of depth {c['depth']} with"
        f" {c['channels']} channels (batch {c['batch_size']}),",
    )


def kept_note(cells: Sequence[Cell], folder: Path) -> str:
    """``"12 of 55 cells kept in runs/fig2; rerun to resume"``: the cells finished on disk."""
    from mftheory.validation.runner import cell_path, load_result

    kept = sum(load_result(cell_path(folder / "cells", c), c) is not None for c in cells)
    return f"{kept} of {len(cells)} cells kept in {folder}; rerun to resume"


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

"""Train one network of a sweep: the worker that ``mftheory.validation.runner`` runs per cell.

A cell's config is a JSON-able dict (built by ``mftheory.validation.experiments``); the
result is a JSON-able dict with the learning curve and the final accuracies. Plain SGD with
momentum, a constant learning rate, no weight decay, no schedule (docs/theory.md section 7: no
learning-rate decay). A loss that becomes NaN or infinite ends the run and is recorded as
``diverged`` (not trainable), never raised.

Reproducibility: the initialisation and the minibatch order come from two
``torch.Generator`` seeded from ``config["seed"]``; the dataset split from
``config["split_seed"]``. On the CPU with the same thread count a cell is bit-for-bit
repeatable; on a GPU, cuDNN's algorithms may differ in the last bits.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from mftheory import __version__
from mftheory.errors import MFTheoryError
from mftheory.serialize import jsonable
from mftheory.validation.data import load_dataset
from mftheory.validation.network import build_network

__all__ = ["CONFIG_KEYS", "resolve_device", "train_cell"]

CONFIG_KEYS: tuple[str, ...] = (
    "dataset",
    "data_dir",
    "split_seed",
    "max_train",
    "max_test",
    "channels",
    "depth",
    "scheme",
    "v",
    "sigma_w2",
    "sigma_b2",
    "lr",
    "momentum",
    "optimizer",
    "batch_size",
    "steps",
    "eval_every",
    "eval_size",
    "seed",
    "device",
    "threads",
)
"""Keys every cell config has (extra keys, such as the experiment's labels, are kept).

An optional key ``stop_at`` (a training accuracy in (0, 1], ``"auto"`` for halfway from
chance to 1, or None) ends the run at the first evaluation whose training accuracy reaches
it; the step is recorded as ``stopped_at_step``. An optional ``test_at_end`` (true: the
test set is evaluated only at the last evaluation, the curve's other test accuracies None)
saves time on very deep networks."""


def resolve_device(name: str) -> torch.device:
    """``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (CUDA when available) as a device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise MFTheoryError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise MFTheoryError(f"device {name!r} asked for, but torch sees no CUDA device")
    return dev


@torch.no_grad()
def _evaluate(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of ``net`` on ``(x, y)``, in batches."""
    net.eval()
    correct = 0
    loss = 0.0
    for i in range(0, len(x), batch):
        out = net(x[i : i + batch])
        loss += float(nn.functional.cross_entropy(out, y[i : i + batch], reduction="sum"))
        correct += int((out.argmax(dim=1) == y[i : i + batch]).sum())
    net.train()
    return correct / len(x), loss / len(x)


def _optimizer(net: nn.Module, config: dict[str, Any]) -> torch.optim.Optimizer:
    """Adam, or SGD with momentum, at the config's constant learning rate."""
    lr = float(config["lr"])
    if config["optimizer"] == "adam":
        return torch.optim.Adam(net.parameters(), lr=lr)
    return torch.optim.SGD(net.parameters(), lr=lr, momentum=float(config["momentum"]))


def _minibatches(
    n_train: int, batch: int, generator: torch.Generator, device: torch.device
) -> Iterator[torch.Tensor]:
    """Index minibatches without end: a new permutation whenever a batch would run over."""
    perm = torch.randperm(n_train, generator=generator).to(device)
    pos = 0
    while True:
        if pos + batch > n_train:
            perm = torch.randperm(n_train, generator=generator).to(device)
            pos = 0
        yield perm[pos : pos + batch]
        pos += batch


def _stop_accuracy(value: Any, chance: float) -> float | None:
    """The training accuracy that ends a run early: given, ``"auto"`` (halfway), or None."""
    if value is None:
        return None
    if value == "auto":
        return 0.5 * (1.0 + chance)
    f = float(value)
    if not 0 < f <= 1:
        raise MFTheoryError(f"stop_at must be in (0, 1] or 'auto', got {value!r}")
    return f


def train_cell(config: dict[str, Any]) -> dict[str, Any]:
    """Build, initialise and train the network of one cell; return its learning curve.

    Parameters
    ----------
    config : dict
        At least ``CONFIG_KEYS``: the data (``dataset``, ``data_dir``, ``split_seed``,
        ``max_train``, ``max_test``), the network (``channels``, ``depth``, ``scheme``,
        ``v``, ``sigma_w2``, ``sigma_b2``), the optimiser (``lr``, ``momentum``,
        ``batch_size``, ``steps``), the evaluation (``eval_every`` steps, on at most
        ``eval_size`` training samples and the whole test set), ``seed``, ``device`` and
        ``threads`` (CPU threads, 0 to leave torch's default).

    Returns
    -------
    dict
        ``curve`` (lists ``step``, ``epoch``, ``train_loss``, ``train_accuracy``,
        ``test_accuracy``; a non-finite loss is None), ``final`` (the last evaluation; its
        accuracies and loss None when the run diverged), ``diverged`` and
        ``diverged_at_step``, ``stop_at`` and ``stopped_at_step`` (early stopping, None
        when off or not reached), ``chance``, ``dataset`` (its description), ``notes`` (from the
        initialiser), ``wall_time_s``, ``device``, ``torch_version``,
        ``mftheory_version``.

    Notes
    -----
    docs/theory.md sections 5 and 7: the experiment the trainability prediction ``L < 6 xi_c``
    is checked against.
    """
    missing = [k for k in CONFIG_KEYS if k not in config]
    if missing:
        raise MFTheoryError(f"cell config lacks {', '.join(missing)}")
    start = time.perf_counter()
    threads = int(config["threads"])
    if threads > 0:
        torch.set_num_threads(threads)
    device = resolve_device(str(config["device"]))
    data = load_dataset(
        str(config["dataset"]),
        data_dir=config["data_dir"],
        split_seed=int(config["split_seed"]),
        max_train=config["max_train"],
        max_test=config["max_test"],
    )
    seed = int(config["seed"])
    init_gen = torch.Generator().manual_seed(seed)
    order_gen = torch.Generator().manual_seed(seed + 1)
    net, notes = build_network(
        data.input_shape,
        data.n_classes,
        channels=int(config["channels"]),
        depth=int(config["depth"]),
        sigma_w2=float(config["sigma_w2"]),
        sigma_b2=float(config["sigma_b2"]),
        scheme=str(config["scheme"]),
        v=config["v"],
        generator=init_gen,
    )
    net.to(device)
    arrays = (data.x_train, data.y_train, data.x_test, data.y_test)
    x_train, y_train, x_test, y_test = (torch.as_tensor(a, device=device) for a in arrays)
    x_eval, y_eval = x_train[: int(config["eval_size"])], y_train[: int(config["eval_size"])]
    batch = int(config["batch_size"])
    steps = int(config["steps"])
    eval_every = max(1, int(config["eval_every"]))
    n_train = len(x_train)
    opt = _optimizer(net, config)
    curve: dict[str, list[float | None]] = {
        k: [] for k in ("step", "epoch", "train_loss", "train_accuracy", "test_accuracy")
    }

    def record(step: int) -> bool:
        train_acc, train_loss = _evaluate(net, x_eval, y_eval, max(batch, 256))
        at_end = config.get("test_at_end")  # the test set only at the last evaluation
        test_acc = None if at_end else _evaluate(net, x_test, y_test, max(batch, 256))[0]
        curve["step"].append(step)
        curve["epoch"].append(step * batch / n_train)
        curve["train_loss"].append(train_loss)
        curve["train_accuracy"].append(train_acc)
        curve["test_accuracy"].append(test_acc)
        return math.isfinite(train_loss)

    chance = float(np.max(np.bincount(data.y_test)) / len(data.y_test))
    stop_at = _stop_accuracy(config.get("stop_at"), chance)
    stopped_at: int | None = None

    def reached() -> bool:
        return stop_at is not None and float(curve["train_accuracy"][-1] or 0) >= stop_at

    diverged_at: int | None = None
    if not record(0):
        diverged_at = 0
    elif reached():
        stopped_at = 0
    batches = _minibatches(n_train, batch, order_gen, device)
    step = 0
    while diverged_at is None and stopped_at is None and step < steps:
        idx = next(batches)
        loss = nn.functional.cross_entropy(net(x_train[idx]), y_train[idx])
        step += 1
        if not torch.isfinite(loss):
            diverged_at = step
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % eval_every == 0 or step == steps:
            if not record(step):
                diverged_at = step
            elif reached():
                stopped_at = step
    if config.get("test_at_end") and diverged_at is None:
        curve["test_accuracy"][-1] = _evaluate(net, x_test, y_test, max(batch, 256))[0]
    final: dict[str, float | None] = {k: v[-1] for k, v in curve.items()}
    if diverged_at is not None:
        epoch = diverged_at * batch / n_train
        final = dict.fromkeys(curve, None) | {"step": diverged_at, "epoch": epoch}
    result = {
        "curve": curve,
        "final": final,
        "diverged": diverged_at is not None,
        "diverged_at_step": diverged_at,
        "stop_at": stop_at,
        "stopped_at_step": stopped_at,
        "chance": chance,
        "dataset": data.as_dict(),
        "notes": notes,
        "wall_time_s": time.perf_counter() - start,
        "device": str(device),
        "torch_version": torch.__version__,
        "mftheory_version": __version__,
    }
    return dict(jsonable(result))

"""Array back ends of ``mftheory.montecarlo.simulate_ensemble``: the protocol and numpy.

The ensemble sampler needs a handful of array operations (Gaussian draws per network,
batched matrix products, rolls, symmetric eigendecompositions, ``phi``). It does not import an
array library for them: it *receives* a back end, an object with a ``name`` and a
``ArrayBackend.bind`` method that returns the operations (``ArrayOps``) for one run,
bound to the activation, the seed and the number of networks.

* ``NumpyBackend`` (here) is the default, used for ``backend="numpy"``;
* ``mftheory.torch.TorchBackend(device=...)`` (the optional torch layer, which sits above
  this package) runs the same algorithm with torch, on a GPU when there is one.

Any other object with the same two members works too (duck typing, ``ArrayBackend`` is a
``typing.Protocol``).

Randomness: each network draws from its own child of
``numpy.random.SeedSequence(seed).spawn(networks)``, so results do not depend on how the
networks are chunked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from mftheory.activations.builtins import Activation
from mftheory.errors import MFTheoryError

__all__ = [
    "BACKENDS",
    "ArrayBackend",
    "ArrayOps",
    "NumpyBackend",
    "NumpyOps",
    "drop_roundoff",
    "resolve_backend",
]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

BACKENDS: tuple[str, ...] = ("numpy", "torch")
"""Array libraries ``mftheory.montecarlo.simulate_ensemble`` can run on."""


@runtime_checkable
class ArrayOps(Protocol):
    """The array operations of one ensemble run, bound to its activation, seed and networks.

    Arrays are the back end's own type (``Any`` here), always float64. ``K`` below is the
    number of networks of a chunk.
    """

    @property
    def name(self) -> str:
        """The back end's name (``"numpy"``, ``"torch"``...)."""
        ...

    @property
    def device(self) -> str:
        """Where the arrays live (``"cpu"``, ``"cuda:0"``...)."""
        ...

    def normal(self, net: int, shape: tuple[int, ...]) -> Any:
        """Standard normal draws of ``shape`` from network ``net``'s own random stream."""
        ...

    def asarray(self, a: FloatArray) -> Any:
        """A numpy array as a back-end array (on its device)."""
        ...

    def to_numpy(self, a: Any) -> FloatArray:
        """A back-end array as a float64 numpy array."""
        ...

    def stack(self, arrays: list[Any]) -> Any:
        """Stack along a new first axis."""
        ...

    def concat(self, arrays: list[Any], axis: int) -> Any:
        """Concatenate along ``axis``."""
        ...

    def roll(self, a: Any, shifts: tuple[int, ...], axes: tuple[int, ...]) -> Any:
        """Circular shift, as ``numpy.roll`` with tuples of shifts and axes."""
        ...

    def eigh(self, a: Any) -> tuple[Any, Any]:
        """Eigenvalues (ascending) and eigenvectors of a stack of symmetric matrices."""
        ...

    def sqrt_clip(self, w: Any) -> Any:
        """Square roots of eigenvalues, round-off-level ones set to 0 (``drop_roundoff``)."""
        ...

    def phi(self, a: Any) -> Any:
        """The activation, elementwise."""
        ...

    def bad_networks(self, a: Any) -> IntArray:
        """Indices (along the first axis) of the networks whose entries are not all finite."""
        ...


@runtime_checkable
class ArrayBackend(Protocol):
    """What ``mftheory.montecarlo.simulate_ensemble`` receives as ``backend``.

    ``name`` is recorded as ``mftheory.montecarlo.EnsembleResult.backend``.
    """

    @property
    def name(self) -> str:
        """The back end's name."""
        ...

    def bind(self, act: Activation, seed: int, networks: int) -> ArrayOps:
        """The operations of one run: ``networks`` random streams from ``seed``.

        Raises ``mftheory.errors.MFTheoryError`` when the back end cannot run (a missing
        library, an unusable device).
        """
        ...


def drop_roundoff(w: Any, xp: Any) -> Any:
    """Eigenvalues ``w`` (ascending along the last axis) with round-off-level ones set to 0.

    Parameters
    ----------
    w : array
        Eigenvalues of symmetric positive semi-definite matrices, ascending along the last
        axis, of any array library ``xp`` supports.
    xp : module
        The array library (``numpy`` or ``torch``): its ``where`` is used.

    Returns
    -------
    array
        ``w`` with entries below ``size * eps * max(w)`` (the accuracy of a symmetric
        eigensolver) set to 0; negative ones (round-off for PSD matrices) are always below.
    """
    size = w.shape[-1]
    floor = size * float(np.finfo(np.float64).eps) * w[..., -1:]
    return xp.where(w > floor, w, 0.0 * w)


class NumpyOps:
    """``ArrayOps`` on numpy, on the cpu (see ``NumpyBackend``).

    Parameters
    ----------
    act : Activation
    seed : int
        Seed of ``numpy.random.SeedSequence``; network ``k`` uses its ``k``-th child.
    networks : int
    """

    name = "numpy"

    def __init__(self, act: Activation, seed: int, networks: int) -> None:
        self.act = act
        self.device = "cpu"
        children = np.random.SeedSequence(seed).spawn(networks)
        self.rngs = [np.random.default_rng(ch) for ch in children]

    def normal(self, net: int, shape: tuple[int, ...]) -> Any:
        """Standard normal draws from network ``net``'s generator."""
        return self.rngs[net].standard_normal(shape)

    def asarray(self, a: FloatArray) -> Any:
        """``a`` itself."""
        return a

    def to_numpy(self, a: Any) -> FloatArray:
        """``a`` as float64."""
        return np.asarray(a, dtype=np.float64)

    def stack(self, arrays: list[Any]) -> Any:
        """``numpy.stack``."""
        return np.stack(arrays)

    def concat(self, arrays: list[Any], axis: int) -> Any:
        """``numpy.concatenate``."""
        return np.concatenate(arrays, axis=axis)

    def roll(self, a: Any, shifts: tuple[int, ...], axes: tuple[int, ...]) -> Any:
        """``numpy.roll``."""
        return np.roll(a, shifts, axis=axes)

    def eigh(self, a: Any) -> tuple[Any, Any]:
        """``numpy.linalg.eigh``."""
        w, vec = np.linalg.eigh(a)
        return w, vec

    def sqrt_clip(self, w: Any) -> Any:
        """Square roots after ``drop_roundoff``."""
        return np.sqrt(drop_roundoff(w, np))

    def phi(self, a: Any) -> Any:
        """The activation's numpy ``phi``."""
        return self.act.phi(a)

    def bad_networks(self, a: Any) -> IntArray:
        """Networks with a non-finite entry."""
        flat = a.reshape(a.shape[0], -1)
        return np.flatnonzero(~np.isfinite(flat).all(axis=1)).astype(np.int64)


@dataclass(frozen=True)
class NumpyBackend:
    """The numpy back end (the default of ``mftheory.montecarlo.simulate_ensemble``)."""

    name: ClassVar[str] = "numpy"

    def bind(self, act: Activation, seed: int, networks: int) -> NumpyOps:
        """``NumpyOps`` for one run."""
        return NumpyOps(act, seed, networks)


def resolve_backend(backend: str | ArrayBackend, device: str | None) -> ArrayBackend:
    """The back-end object for ``simulate_ensemble``'s ``backend`` and ``device`` arguments.

    Parameters
    ----------
    backend : str or ArrayBackend
        ``"numpy"``, or an object such as ``mftheory.torch.TorchBackend(device=...)``.
    device : str, optional
        Only ``None`` or ``"cpu"`` with numpy; a back-end object carries its own device.

    Returns
    -------
    ArrayBackend

    Raises
    ------
    MFTheoryError
        ``"torch"`` as a string (this numpy core never imports torch: pass
        ``mftheory.torch.TorchBackend()``), an unknown name, an object that is not a back end,
        or a device the back end does not take.
    """
    if isinstance(backend, str):
        if backend == "torch":
            raise MFTheoryError(
                "backend='torch' needs PyTorch through mftheory.torch: pass"
                " backend=mftheory.torch.TorchBackend(device=...) (pip install"
                " \"mftheory[torch]\" if torch is missing) or use backend='numpy'"
            )
        if backend not in BACKENDS:
            raise MFTheoryError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if device not in (None, "cpu"):
            raise MFTheoryError(
                f"device {device!r} needs backend='torch'"
                f" (mftheory.torch.TorchBackend(device={device!r})); numpy runs on the cpu"
            )
        return NumpyBackend()
    if not isinstance(backend, ArrayBackend):
        raise MFTheoryError(
            f"backend must be 'numpy' or an array back end such as"
            f" mftheory.torch.TorchBackend(), got {type(backend).__name__}"
        )
    if device is not None:
        raise MFTheoryError(
            f"device {device!r}: give the device to the back end itself"
            " (e.g. TorchBackend(device=...)), not to simulate_ensemble"
        )
    return backend

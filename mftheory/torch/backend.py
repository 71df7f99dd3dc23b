"""The torch array back end of ``mftheory.montecarlo.simulate_ensemble``.

``simulate_ensemble(..., backend=TorchBackend(device="cuda"))`` runs the numpy core's ensemble
sampler with torch, in float64, on the given device (default: CUDA when available, else the
cpu). The sampler itself (``mftheory.montecarlo.sampler``) never imports torch: it calls
the ``mftheory.montecarlo.backends.ArrayOps`` this back end binds for each run.

Randomness: one ``torch.Generator`` per network, seeded from the same
``numpy.random.SeedSequence(seed).spawn(networks)`` children as the numpy back end, so a run
is reproducible and independent of the chunk size (but does not draw numpy's numbers).
Activations with a native torch version (``_torch_phi``) run on the device; a user
expression is evaluated with numpy and copied back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from mftheory.activations.builtins import Activation
from mftheory.errors import MFTheoryError
from mftheory.montecarlo.backends import drop_roundoff

__all__ = ["TorchBackend"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def _torch_phi(act: Activation, torch: Any) -> Callable[[Any], Any] | None:
    """A native torch version of a registered activation, None for anything else.

    Only an activation built by its registry record (same functions and parameters) gets
    the record's ``torch_phi``; any other, even one sharing a name, is evaluated through
    NumPy.
    """
    from mftheory.activations.registry import record_of

    record = record_of(act)
    if record is None or record.torch_phi is None:
        return None
    return record.torch_phi(torch, **dict(act.params))


class _TorchOps:
    name = "torch"

    def __init__(self, act: Activation, seed: int, networks: int, device: str | None) -> None:
        try:
            import torch
        except ImportError:
            raise MFTheoryError(
                "backend='torch' needs PyTorch, which is not installed:"
                " pip install 'mftheory[torch]' or use backend='numpy'"
            ) from None
        self.torch = torch
        self.act = act
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.dev = torch.device(device)
            torch.zeros(1, device=self.dev)
        except (RuntimeError, TypeError, ValueError, AssertionError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise MFTheoryError(f"torch cannot use device {device!r}: {msg}") from None
        self.device = str(self.dev)
        self.native = _torch_phi(act, torch)
        children = np.random.SeedSequence(seed).spawn(networks)
        self.gens = []
        for ch in children:
            gen = torch.Generator(device=self.dev)
            gen.manual_seed(int(ch.generate_state(1, np.uint64)[0]))
            self.gens.append(gen)

    def normal(self, net: int, shape: tuple[int, ...]) -> Any:
        return self.torch.randn(
            shape, generator=self.gens[net], dtype=self.torch.float64, device=self.dev
        )

    def asarray(self, a: FloatArray) -> Any:
        return self.torch.as_tensor(a, dtype=self.torch.float64, device=self.dev)

    def to_numpy(self, a: Any) -> FloatArray:
        return np.asarray(a.detach().cpu().numpy(), dtype=np.float64)

    def stack(self, arrays: list[Any]) -> Any:
        return self.torch.stack(arrays)

    def concat(self, arrays: list[Any], axis: int) -> Any:
        return self.torch.cat(arrays, dim=axis)

    def roll(self, a: Any, shifts: tuple[int, ...], axes: tuple[int, ...]) -> Any:
        return self.torch.roll(a, shifts=shifts, dims=axes)

    def eigh(self, a: Any) -> tuple[Any, Any]:
        w, vec = self.torch.linalg.eigh(a)
        return w, vec

    def sqrt_clip(self, w: Any) -> Any:
        return self.torch.sqrt(drop_roundoff(w, self.torch))

    def phi(self, a: Any) -> Any:
        if self.native is not None:
            return self.native(a)
        # A user expression: evaluate it with numpy (exactly the mean-field phi) and come back.
        out = self.act.phi(a.detach().cpu().numpy())
        return self.asarray(np.asarray(out, dtype=np.float64))

    def bad_networks(self, a: Any) -> IntArray:
        flat = a.reshape(a.shape[0], -1)
        ok = self.torch.isfinite(flat).all(dim=1)
        return np.flatnonzero(~ok.cpu().numpy()).astype(np.int64)


@dataclass(frozen=True)
class TorchBackend:
    """The torch back end of ``mftheory.montecarlo.simulate_ensemble``.

    Parameters
    ----------
    device : str, optional
        A torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``...); default ``"cuda"`` when
        available, else ``"cpu"``.

    Examples
    --------
    >>> from mftheory.montecarlo import simulate_ensemble
    >>> from mftheory.torch import TorchBackend
    >>> res = simulate_ensemble("tanh", sigma_w2=1.5, sigma_b2=0.05, v=[1.0], image_shape=1,
    ...                         depth=2, channels=8, networks=4, Sigma0=[[1.0]],
    ...                         backend=TorchBackend(device="cpu"))
    >>> res.backend, res.device
    ('torch', 'cpu')
    """

    device: str | None = None
    name: ClassVar[str] = "torch"

    def bind(self, act: Activation, seed: int, networks: int) -> _TorchOps:
        """The torch operations of one run (checks that torch can use the device)."""
        return _TorchOps(act, seed, networks, self.device)

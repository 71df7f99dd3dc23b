"""How much memory a command may use, and the up-front refusal of requests that need more.

Every size-bearing option (grid counts, image sizes, ``--n``, depths, channels, networks, kernel
sizes, spectrum points, empirical widths, validation depths and channels) is turned by its command
into an estimate of the bytes the request allocates, before any work starts; a request whose
estimate exceeds ``memory_limit`` is refused with exit code 2 and one line that gives the
estimate, the limit and the way to raise it.

The limit, first that applies:

1. the global option ``--max-memory SIZE`` (``mftheory --max-memory 8G phase-diagram ...``; it may
   also follow the command's name);
2. the environment variable ``MFTHEORY_MAX_MEMORY``;
3. half the memory available when the command starts (``MemAvailable`` of ``/proc/meminfo``, or
   the physical memory where that is unknown), no more than a container's (cgroup) free memory
   and three quarters of the free address space under ``ulimit -v`` (``RLIMIT_AS``).

``SIZE`` is a number of bytes with an optional binary suffix: ``500M``, ``4G``, ``1.5GiB``,
``2T``, ``800k``.
"""

from __future__ import annotations

import math
import os
import re
from contextvars import ContextVar

from mftheory.errors import MFTheoryError

__all__ = [
    "ENV_VAR",
    "MAX_MEMORY_HELP",
    "ComputationFailed",
    "format_bytes",
    "memory_limit",
    "parse_size",
    "require_memory",
    "require_time",
    "set_max_memory",
]

#: The environment variable that sets the limit when ``--max-memory`` is not given.
ENV_VAR = "MFTHEORY_MAX_MEMORY"
#: Share of the available memory used when no limit is given.
DEFAULT_SHARE = 0.5
#: Used only where the machine's memory cannot be read at all.
FALLBACK_BYTES = 4 * 1024**3
MAX_MEMORY_HELP = (
    "Refuse, before any work, a request estimated to need more memory than SIZE (e.g. 500M, "
    f"4G, 1.5T; also the environment variable {ENV_VAR}). Without either: half the memory "
    "available when the command starts."
)

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmgtp]?)(?:i?b)?\s*$", re.I)


class ComputationFailed(Exception):
    """A computation on accepted input failed (a solver did not converge): exit code 1, one
    line, as the app's exit-code table says (2 is for bad input and refused requests)."""


# The value of --max-memory for the command being run (set by the app's callback on every
# invocation, so that one invocation never sees another's).
_OVERRIDE: ContextVar[int | None] = ContextVar("mftheory_max_memory", default=None)


def parse_size(text: str, what: str = "--max-memory") -> int:
    """Bytes from ``text``: a number with an optional suffix k, M, G, T, P (powers of 1024;
    ``B``/``iB`` after it are accepted), at least 1 MiB.

    Raises
    ------
    MFTheoryError
        Not of that form, or below 1 MiB (``what`` names the option in the message).
    """
    shown = text if len(text) <= 60 else text[:57] + "..."
    match = _SIZE.match(text)
    if match is None:
        raise MFTheoryError(
            f"{what} must be a size such as 500M, 4G or 1.5T, got {shown!r}"
        ) from None
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if not math.isfinite(value) or value > 2.0**62:
        raise MFTheoryError(f"{what} is too large: {shown!r}")
    if value < 1024**2:
        raise MFTheoryError(f"{what} must be at least 1M, got {shown!r}")
    return int(value)


def set_max_memory(value: int | None) -> None:
    """Record ``--max-memory`` (in bytes; ``None``: not given) for the command being run."""
    _OVERRIDE.set(value)


def format_bytes(n: float) -> str:
    """``n`` bytes as ``12.3 GiB``, ``512 MiB``, ``800 KiB`` or ``17 bytes``."""
    if not math.isfinite(n):
        return "an unbounded amount"
    for unit, size in (("PiB", 1024**5), ("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    if n >= 1024:
        return f"{n / 1024:.3g} KiB"
    return f"{int(n)} bytes"


def _meminfo(key: str) -> int | None:
    """A ``/proc/meminfo`` entry in bytes (Linux), None where there is none."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _sysconf_bytes(name: str) -> int | None:
    try:
        pages, size = os.sysconf(name), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return pages * size if pages > 0 and size > 0 else None


def _cgroup_room() -> int | None:
    """Free memory under a cgroup v2 or v1 limit (containers), None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            with open(limit_file, encoding="ascii") as f:
                limit_text = f.read().strip()
            if limit_text == "max" or int(limit_text) >= 2**60:
                return None
            with open(usage_file, encoding="ascii") as f:
                usage = int(f.read().strip())
            return max(0, int(limit_text) - usage)
        except (OSError, ValueError):
            continue
    return None


def _address_space_room() -> int | None:
    """Three quarters of the address space left under ``RLIMIT_AS`` (``ulimit -v``)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return None
    used = _vm_size() or 0
    return int(0.75 * max(0, soft - used))


def _vm_size() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def default_memory_limit() -> int:
    """Half the available memory, within a cgroup's and ``ulimit -v``'s room (module notes)."""
    available = (
        _meminfo("MemAvailable")
        or _sysconf_bytes("SC_PHYS_PAGES")
        or _sysconf_bytes("SC_AVPHYS_PAGES")
        or 2 * FALLBACK_BYTES
    )
    limit = int(DEFAULT_SHARE * available)
    room = _cgroup_room()
    if room is not None:
        limit = min(limit, int(DEFAULT_SHARE * room) if room < available else limit)
    room = _address_space_room()
    if room is not None:
        limit = min(limit, room)
    return max(limit, 64 * 1024**2)


def memory_limit() -> tuple[int, str]:
    """The limit in bytes and where it comes from (for the refusal message).

    Raises
    ------
    MFTheoryError
        ``MFTHEORY_MAX_MEMORY`` is set but not a size.
    """
    given = _OVERRIDE.get()
    if given is not None:
        return given, "--max-memory"
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        return parse_size(env, ENV_VAR), ENV_VAR
    return default_memory_limit(), "half the available memory"


def require_memory(need: float, what: str) -> None:
    """Refuse a request estimated to need ``need`` bytes when that exceeds the limit.

    Parameters
    ----------
    need : float
        The estimate, in bytes (``inf`` for a size that overflows any estimate).
    what : str
        What needs it, with the formula, e.g. ``"the phase grid (100000 x 100000 points x 96
        bytes)"``.

    Raises
    ------
    MFTheoryError
        One line: the estimate, the limit and how to raise it.
    """
    limit, source = memory_limit()
    if need <= limit:
        return
    head = (
        f"{what} would need about {format_bytes(need)} of memory, over the limit of"
        f" {format_bytes(limit)} ({source}); ask for less"
    )
    if need > _MAX_SUGGESTED:
        raise MFTheoryError(head)
    raise MFTheoryError(
        f"{head}, or raise the limit with --max-memory SIZE or {ENV_VAR}"
        f" (e.g. --max-memory {_suggest(need)})"
    )


#: The longest estimated run accepted, in seconds (``MFTHEORY_MAX_TIME`` changes it).
MAX_SECONDS = 3600.0
TIME_ENV_VAR = "MFTHEORY_MAX_TIME"


def require_time(seconds: float, what: str) -> None:
    """Refuse a request whose rough time estimate exceeds an hour (or ``MFTHEORY_MAX_TIME``,
    in seconds): work that long is a mistyped size far more often than a wish.

    Raises
    ------
    MFTheoryError
        One line: the estimate and the limit.
    """
    limit = MAX_SECONDS
    env = os.environ.get(TIME_ENV_VAR, "").strip()
    if env:
        try:
            limit = float(env)
        except ValueError:
            limit = math.nan
        if not (math.isfinite(limit) and limit > 0):
            shown = env if len(env) <= 60 else env[:57] + "..."
            raise MFTheoryError(f"{TIME_ENV_VAR} must be a number of seconds > 0, got {shown!r}")
    if seconds <= limit:
        return
    raise MFTheoryError(
        f"{what} would take about {format_seconds(seconds)} (a rough estimate), over the"
        f" limit of {format_seconds(limit)}; ask for less, or raise the limit with"
        f" {TIME_ENV_VAR}=SECONDS"
    )


def format_seconds(t: float) -> str:
    """``t`` seconds as ``45 s``, ``12 min``, ``3.5 hours``, ``2e+04 days``."""
    if not math.isfinite(t):
        return "forever"
    if t < 120:
        return f"{t:.0f} s"
    if t < 7200:
        return f"{t / 60:.0f} min"
    if t < 2 * 86400:
        return f"{t / 3600:.1f} hours"
    return f"{t / 86400:.3g} days"


#: Above this estimate no machine could run the request: the refusal suggests no limit.
_MAX_SUGGESTED = 16 * 1024**4


def _suggest(need: float) -> str:
    """A round ``--max-memory`` value above ``need``."""
    gib = need * 1.1 / 1024**3
    if gib < 1:
        return f"{max(1, math.ceil(need * 1.1 / 1024**2))}M"
    return f"{math.ceil(gib)}G"

"""Worker-side measuring shared by the executor and the decorator.

Everything here runs inside a Dask task (or inside ``process()``), so it is cheap:
no tracemalloc, no extra copy of the output, one pass of the pickler that writes into
a byte counter instead of memory.

Memory
------
``mem_peak_bytes`` is the worker process's peak resident set size while the chunk
ran. On Linux the kernel keeps that peak (``VmHWM`` in ``/proc/self/status``) and
lets a process reset it (``echo 5 > /proc/self/clear_refs``); the probe resets it
when the chunk starts and reads it when the chunk ends, so the figure is the real
process peak during the chunk, not a sample. ``mem_usage_bytes`` is that peak minus
the resident size when the chunk started: a *lower bound* of what the chunk
allocated, because memory the allocator had already taken from the system and
re-used does not show. With several threads per worker, concurrent chunks share one
process: each one's peak then includes the others' memory, and a reset by one chunk
shortens the window another one sees. The probe counts the chunks running in the
process and sets ``mem_shared`` to ``True`` on any chunk that overlapped another.
Where the kernel offers no reset (non-Linux), the peak is the larger of the
resident sizes at start and end, again a lower bound.
"""

from __future__ import annotations

import io
import os
import pickle
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ChunkContext",
    "ChunkProbe",
    "active_chunk",
    "current_task_key",
    "current_worker_address",
    "pickled_size",
]

_PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class _ByteCounter(io.RawIOBase):
    """A write-only file that counts bytes and keeps none of them."""

    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:  # type: ignore[override]
        n = memoryview(b).nbytes
        self.count += n
        return n


def pickled_size(obj: Any) -> int:
    """Length in bytes of ``pickle.dumps(obj, protocol=HIGHEST_PROTOCOL)``.

    The pickler writes into a counter, so the pickled bytes are never held in
    memory. Objects the standard pickler refuses (lambdas, local classes) are counted
    with cloudpickle, as Dask would ship them.

    Parameters
    ----------
    obj : object
        Anything picklable.

    Returns
    -------
    int
        The pickled size in bytes.

    Raises
    ------
    TypeError
        When neither pickle nor cloudpickle can serialise ``obj``.

    Examples
    --------
    >>> import pickle
    >>> from coffea_sizing.probe import pickled_size
    >>> value = {"a": list(range(100))}
    >>> pickled_size(value) == len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))
    True
    """
    counter = _ByteCounter()
    try:
        pickle.Pickler(counter, protocol=_PICKLE_PROTOCOL).dump(obj)
    except (pickle.PicklingError, TypeError, AttributeError) as first:
        import cloudpickle

        counter = _ByteCounter()
        try:
            cloudpickle.CloudPickler(counter, protocol=_PICKLE_PROTOCOL).dump(obj)
        except Exception as second:
            raise TypeError(
                f"cannot be pickled: {first!r}; cloudpickle: {second!r}"
            ) from second
    return counter.count


def current_task_key() -> str | None:
    """The Dask key of the task running in this thread, or ``None`` outside Dask.

    Examples
    --------
    >>> from coffea_sizing.probe import current_task_key
    >>> current_task_key() is None  # not inside a Dask task
    True
    """
    try:
        from distributed import get_worker

        key: Any = get_worker().get_current_task()
    except (ImportError, ValueError, AttributeError, KeyError):
        return None
    return None if key is None else str(key)


def current_worker_address() -> str | None:
    """Address of the Dask worker running this code, or ``None`` outside Dask.

    Examples
    --------
    >>> from coffea_sizing.probe import current_worker_address
    >>> current_worker_address() is None
    True
    """
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError, AttributeError):
        return None


# --------------------------------------------------------------------- memory
_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def _status_kib(field_name: bytes) -> int | None:
    try:
        with open(_STATUS, "rb") as f:
            for line in f:
                if line.startswith(field_name):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        pass
    try:  # pragma: no cover - not Linux; psutil comes with distributed
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - no figure is better than a failed chunk
        return None


def _reset_peak() -> bool:
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


class _Registry:
    """The probes running in this process.

    Resetting the kernel's peak is process-wide, so before any probe resets it the
    peak reached so far is handed to every probe still running (nested probes, as
    the executor's around the decorator's, and concurrent chunks in other threads);
    each one's own peak is the larger of that carry and the peak at its end.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active: list[ChunkProbe] = []

    def enter(self, probe: ChunkProbe) -> bool:
        me = threading.get_ident()
        with self.lock:
            if self.active:
                hwm = _status_kib(b"VmHWM:")
                for other in self.active:
                    if hwm is not None:
                        other._carry = max(other._carry, hwm * 1024)
                    if other._thread != me:  # another chunk runs concurrently
                        other.mem_shared = probe.mem_shared = True
            reset = _reset_peak()
            self.active.append(probe)
        return reset

    def leave(self, probe: ChunkProbe) -> None:
        with self.lock:
            self.active = [p for p in self.active if p is not probe]


_REGISTRY = _Registry()


@dataclass
class ChunkProbe:
    """Time, CPU and memory of one chunk, measured in the thread that runs it.

    Use it as a context manager around the work; afterwards its fields hold the
    figures. ``cputime`` is the CPU time of this thread (``time.thread_time``), so
    other threads of the worker (its event loop, concurrent chunks) are not counted.

    Attributes
    ----------
    walltime, cputime : float
        Seconds of wall-clock and thread CPU time inside the ``with`` block.
    mem_peak_bytes, mem_usage_bytes : int or None
        Peak resident size of the process during the block, and its rise above the
        resident size at the start (see the module notes: a lower bound).
    mem_shared : bool
        ``True`` when another probe ran in this process at the same time.

    Examples
    --------
    >>> from coffea_sizing.probe import ChunkProbe
    >>> with ChunkProbe() as probe:
    ...     data = bytearray(10_000_000)
    >>> probe.walltime > 0 and probe.mem_peak_bytes > 0
    True
    >>> probe.mem_shared
    False
    """

    walltime: float = 0.0
    cputime: float = 0.0
    mem_peak_bytes: int | None = None
    mem_usage_bytes: int | None = None
    mem_shared: bool = False
    _t0: float = field(default=0.0, repr=False)
    _c0: float = field(default=0.0, repr=False)
    _rss0: int | None = field(default=None, repr=False)
    _reset: bool = field(default=False, repr=False)
    _carry: int = field(default=0, repr=False)
    _thread: int = field(default=0, repr=False)

    def __enter__(self) -> ChunkProbe:  # noqa: PYI034
        self._thread = threading.get_ident()
        self._rss0 = _rss_bytes()
        self._reset = _REGISTRY.enter(self)
        self._c0 = time.thread_time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.walltime = time.perf_counter() - self._t0
        self.cputime = time.thread_time() - self._c0
        rss1 = _rss_bytes()
        hwm = _status_kib(b"VmHWM:") if self._reset else None
        _REGISTRY.leave(self)
        candidates = [v for v in (self._rss0, rss1, self._carry or None) if v]
        if hwm is not None:
            candidates.append(hwm * 1024)
        if candidates:
            self.mem_peak_bytes = max(candidates)
            if self._rss0 is not None:
                self.mem_usage_bytes = max(0, self.mem_peak_bytes - self._rss0)


# ------------------------------------------------------------- chunk context
_LOCAL = threading.local()


class ChunkContext:
    """A slot for fields measured inside ``process()`` while an executor task runs.

    :class:`~coffea_sizing.SizingDaskExecutor`'s chunk task opens a context around
    coffea's work function; code running in the same thread (the
    :func:`~coffea_sizing.track_sizes` decorator) finds it with :func:`active_chunk`
    and adds its fields there instead of to the processor's output. The task then
    merges them into the chunk's record. Outside such a task there is no context.

    Examples
    --------
    >>> from coffea_sizing.probe import ChunkContext, active_chunk
    >>> active_chunk() is None
    True
    >>> with ChunkContext() as ctx:
    ...     active_chunk().fields["bytesread_open"] = 527
    >>> ctx.fields
    {'bytesread_open': 527}
    >>> active_chunk() is None
    True
    """

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self._previous: ChunkContext | None = None

    def __enter__(self) -> ChunkContext:  # noqa: PYI034
        self._previous = getattr(_LOCAL, "chunk", None)
        _LOCAL.chunk = self
        return self

    def __exit__(self, *exc: object) -> None:
        _LOCAL.chunk = self._previous


def active_chunk() -> ChunkContext | None:
    """The :class:`ChunkContext` of the task running in this thread, if any."""
    return getattr(_LOCAL, "chunk", None)

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

import contextlib
import io
import os
import pickle
import sys
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
class _ProcFiles:
    """``/proc/self/status`` and ``/proc/self/clear_refs``, opened once per process.

    Reading both figures (``VmRSS``, ``VmHWM``) with one ``pread`` of a descriptor
    kept open, and resetting the peak with one ``pwrite``, costs three system calls
    per probe instead of an open, read and close for each file (each of which, made
    through :mod:`os`, would release the GIL: see ``_libc_calls_holding_gil``). A
    process forked after the files were opened would read its parent's entries, so
    they are closed and opened again whenever the process id changes.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid = -1
        self.status: int | None = None
        self.clear_refs: int | None = None

    def _fds(self) -> tuple[int | None, int | None]:
        pid = os.getpid()
        if self.pid != pid:
            with self.lock:
                if self.pid != pid:
                    for inherited in (self.status, self.clear_refs):
                        if inherited is not None:  # the parent's entries
                            with contextlib.suppress(OSError):
                                os.close(inherited)
                    self.status = _open_fd("/proc/self/status", os.O_RDONLY)
                    self.clear_refs = _open_fd("/proc/self/clear_refs", os.O_WRONLY)
                    self.pid = pid
        return self.status, self.clear_refs

    def read(self) -> tuple[int | None, int | None]:
        """``(resident bytes, peak resident bytes)`` of this process now."""
        fd = self._fds()[0]
        if fd is None:  # pragma: no cover - not Linux
            return _psutil_rss(), None
        status = _pread(fd, _STATUS_BYTES)
        if status is None:  # pragma: no cover - /proc went away
            return _psutil_rss(), None
        return _kib(status, b"VmRSS:"), _kib(status, b"VmHWM:")

    def reset_peak(self) -> bool:
        """Reset the kernel's peak (``VmHWM``) to the current resident size."""
        fd = self._fds()[1]
        return fd is not None and _pwrite(fd, b"5")


#: ``VmRSS`` and ``VmHWM`` are in the first kilobyte of ``/proc/self/status``.
_STATUS_BYTES = 4096


def _libc_calls_holding_gil() -> tuple[Any, Any] | None:
    """``pread`` and ``pwrite`` from libc, called *without* releasing the GIL.

    ``os.pread`` releases the GIL around the system call; in a Dask task the worker's
    other threads may take it and the task waits until they let it go. Timed in chunk
    tasks (``benchmarks/``), the decorator's probe, which runs when ``process()``
    starts and ends, cost 0.48 ms per chunk with ``os.pread`` and 0.37 ms with these.
    A read of ``/proc`` takes microseconds, so holding the GIL through it is the
    cheaper side. None where libc cannot be loaded (``os.pread`` is used then).
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.PyDLL(None)  # PyDLL: calls keep the GIL
        pread, pwrite = libc.pread, libc.pwrite
        for fn in (pread, pwrite):
            fn.argtypes = [
                ctypes.c_int,
                ctypes.c_char_p,
                ctypes.c_size_t,
                ctypes.c_long,
            ]
            fn.restype = ctypes.c_ssize_t
    except (ImportError, OSError, AttributeError):  # pragma: no cover - no libc
        return None
    buffers = threading.local()

    def read(fd: int, size: int) -> bytes | None:
        buf = getattr(buffers, "buf", None)
        if buf is None or len(buf) < size:
            buf = buffers.buf = ctypes.create_string_buffer(size)
        n = pread(fd, buf, size, 0)
        return ctypes.string_at(buf, n) if n >= 0 else None

    def write(fd: int, data: bytes) -> bool:
        return bool(pwrite(fd, data, len(data), 0) == len(data))

    return read, write


_LIBC = _libc_calls_holding_gil()


def _pread(fd: int, size: int) -> bytes | None:
    if _LIBC is not None:
        return _LIBC[0](fd, size)  # type: ignore[no-any-return]
    try:
        return os.pread(fd, size, 0)
    except OSError:  # pragma: no cover - /proc went away
        return None


def _pwrite(fd: int, data: bytes) -> bool:
    if _LIBC is not None:
        return bool(_LIBC[1](fd, data))
    try:
        return os.pwrite(fd, data, 0) == len(data)
    except OSError:
        return False


def _open_fd(path: str, flags: int) -> int | None:
    try:
        return os.open(path, flags)
    except OSError:
        return None


def _kib(status: bytes, field_name: bytes) -> int | None:
    """Bytes of a ``kB`` field of ``/proc/<pid>/status``."""
    start = status.find(field_name)
    if start < 0:
        return None
    end = status.find(b"\n", start)
    try:
        return int(status[start + len(field_name) : end].split()[0]) * 1024
    except (ValueError, IndexError):
        return None


def _psutil_rss() -> int | None:  # pragma: no cover - not Linux
    try:  # psutil comes with distributed
        import psutil

        return int(psutil.Process().memory_info().rss)
    except Exception:  # noqa: BLE001 - no figure is better than a failed chunk
        return None


_PROC = _ProcFiles()


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
        """Register ``probe``, note its starting resident size, reset the peak."""
        me = threading.get_ident()
        with self.lock:
            rss, hwm = _PROC.read()
            probe._rss0 = rss
            for other in self.active:
                if hwm is not None:
                    other._carry = max(other._carry, hwm)
                if other._thread != me:  # another chunk runs concurrently
                    other.mem_shared = probe.mem_shared = True
            reset = _PROC.reset_peak()
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
        self._reset = _REGISTRY.enter(self)
        self._c0 = time.thread_time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.walltime = time.perf_counter() - self._t0
        self.cputime = time.thread_time() - self._c0
        rss1, hwm = _PROC.read()
        _REGISTRY.leave(self)
        candidates = [v for v in (self._rss0, rss1, self._carry or None) if v]
        if hwm is not None and self._reset:
            candidates.append(hwm)
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
        #: seconds of the phases timed inside coffea's work function
        #: (:mod:`coffea_sizing.phases`)
        self.loadtime = 0.0
        self.opentime = 0.0
        self.buildtime = 0.0
        #: seconds blocked in the file's reads after it was opened
        self.readtime = 0.0
        #: the file coffea opened for the chunk (an ``uproot.ReadOnlyDirectory``)
        self.file: Any = None
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

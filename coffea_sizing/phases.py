"""Where a chunk's time goes: coffea's work function timed from inside the task.

Covers the phases of a chunk task of :class:`~coffea_sizing.SizingDaskExecutor`
that happen inside coffea's ``Runner._work_function``: loading the processor coffea
ships with every chunk (``loadtime``), opening the file, reading the tree's metadata
and closing the file (``opentime``) and building NanoEvents (``buildtime``). The task runs a
copy of that function whose globals name timing stand-ins (``cloudpickle.loads`` and
``lz4f.decompress``, ``uproot`` with a timed ``open``, ``NanoEventsFactory`` with
timed ``from_root`` and ``from_parquet``); coffea's module, and any other code in
the worker, keep the real ones. Each stand-in adds its seconds to the chunk's
:class:`~coffea_sizing.probe.ChunkContext` (a few ``perf_counter`` calls; no read of
its own: the tree's metadata is read once, by the stand-in, into the file's object
cache, where ``from_root`` finds it).

Not here: ``processtime`` is coffea's; ``outputtime``, ``walltime`` and
``sizing_overhead`` are timed by the chunk task (:mod:`coffea_sizing.executor`);
the rule by which the phases add up to ``walltime`` is
:func:`coffea_sizing.records.phase_gap`.
"""

from __future__ import annotations

import time
import types
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from .probe import ChunkContext, active_chunk

__all__ = ["protocol", "timed_work_function"]

_perf = time.perf_counter


def timed_work_function(function: Any) -> Any:
    """``function`` with coffea's ``_work_function`` inside it replaced by a timed copy.

    ``Runner`` hands the executor ``partial(automatic_retries, retries, skipbadfiles,
    partial(_work_function, ...))``; the partials are rebuilt around the copy. A
    function of another shape is returned as it is (no phases are then measured).

    Examples
    --------
    >>> from coffea_sizing.phases import timed_work_function
    >>> timed_work_function(len) is len
    True
    """
    return _rebuild(function, 0)


def protocol(filename: str) -> str:
    """How a file is read, from its name: ``file``, ``root``, ``https``, ...

    Examples
    --------
    >>> from coffea_sizing.phases import protocol
    >>> protocol("root://eospublic.cern.ch//eos/f.root"), protocol("/data/f.root")
    ('root', 'file')
    >>> protocol("file:///data/f.root"), protocol("HTTPS://host/f.root")
    ('file', 'https')
    """
    scheme = urlsplit(str(filename)).scheme.lower()
    return scheme if len(scheme) > 1 else "file"  # "c:" is a Windows drive


def _rebuild(fn: Any, depth: int) -> Any:
    if not isinstance(fn, partial) or depth > 8:
        return fn
    func = fn.func
    if getattr(func, "__name__", "") == "_work_function" and isinstance(
        func, types.FunctionType
    ):
        copy = _timed_copy(func)
        return fn if copy is None else partial(copy, *fn.args, **fn.keywords)
    args = [_rebuild(a, depth + 1) for a in fn.args]
    return partial(_rebuild(func, depth + 1), *args, **fn.keywords)


#: The timed copy of each coffea ``_work_function`` seen in this process.
_COPIES: dict[Any, types.FunctionType | None] = {}


def _timed_copy(func: types.FunctionType) -> types.FunctionType | None:
    if func in _COPIES:
        return _COPIES[func]
    scope = dict(func.__globals__)
    if "uproot" not in scope or "NanoEventsFactory" not in scope:
        _COPIES[func] = None  # a coffea that opens files some other way
        return None
    scope["uproot"] = _TimedUproot(scope["uproot"])
    for name, function in (("cloudpickle", "loads"), ("lz4f", "decompress")):
        if name in scope:
            scope[name] = _TimedLoad(scope[name], function)
    scope["NanoEventsFactory"] = _TimedFactory(scope["NanoEventsFactory"])
    copy = types.FunctionType(
        func.__code__, scope, func.__name__, func.__defaults__, func.__closure__
    )
    copy.__kwdefaults__ = func.__kwdefaults__
    copy.__qualname__ = func.__qualname__
    _COPIES[func] = copy
    return copy


class _TimedLoad:
    """A module whose ``function`` counts as loading the processor (``loadtime``):
    coffea's work function decompresses and unpickles the processor for every
    chunk; the first time in a worker process that imports the processor's modules.
    """

    def __init__(self, module: Any, function: str) -> None:
        self._module = module
        self._function = getattr(module, function)
        setattr(self, function, self._timed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def _timed(self, *args: Any, **kwargs: Any) -> Any:
        chunk = active_chunk()
        t0 = _perf()
        try:
            return self._function(*args, **kwargs)
        finally:
            if chunk is not None:
                chunk.loadtime += _perf() - t0


class _TimedUproot:
    """``uproot`` as coffea's work function sees it: ``open`` is timed."""

    def __init__(self, module: Any) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def open(self, *args: Any, **kwargs: Any) -> Any:
        chunk = active_chunk()
        t0 = _perf()
        file = self._module.open(*args, **kwargs)
        if chunk is None:
            return file
        chunk.opentime += _perf() - t0
        chunk.file = file
        _watch_reads(file, chunk)
        return _TimedClose(file, chunk)


class _TimedClose:
    """What coffea's ``with uproot.open(...) as file`` gets: the real directory as
    ``file``, and closing it (a round trip over XRootD) counted in ``opentime``."""

    def __init__(self, file: Any, chunk: ChunkContext) -> None:
        self._file = file
        self._chunk = chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def __enter__(self) -> Any:
        return self._file.__enter__()

    def __exit__(self, *exc: object) -> Any:
        t0 = _perf()
        try:
            return self._file.__exit__(*exc)
        finally:
            self._chunk.opentime += _perf() - t0


def _watch_reads(file: Any, chunk: ChunkContext) -> None:
    """Time the reads of ``file``'s source from now on (``chunk.readtime``).

    Counted: every ``source.chunk(start, stop)`` call whole (uproot reads the tree's
    metadata and RNTuple pages that way, blocking), every ``source.chunks(ranges,
    notifications)`` call (it only sends the requests) and then every wait in that
    call's ``notifications.get()``, where uproot's reading thread blocks until the
    next range has arrived. Not counted: the reads inside ``uproot.open`` (the
    file's header and root directory, before the source can be wrapped: they are
    in ``opentime``). With uproot's default (trivial) executors the reading thread
    decompresses between the waits, so the waits are time blocked on the source;
    with a thread pool as ``decompression_executor`` they include waiting for it.
    Only this source is wrapped (attributes of the instance), for this chunk.
    """
    source: Any = getattr(getattr(file, "file", None), "source", None)
    real_chunk = getattr(source, "chunk", None)
    real_chunks = getattr(source, "chunks", None)
    if real_chunk is None or real_chunks is None:
        return

    def chunk_timed(start: int, stop: int) -> Any:
        t0 = _perf()
        try:
            return real_chunk(start, stop)
        finally:
            chunk.readtime += _perf() - t0

    def chunks_timed(ranges: Any, notifications: Any) -> Any:
        t0 = _perf()
        try:
            return real_chunks(ranges, notifications)
        finally:
            chunk.readtime += _perf() - t0
            _watch_queue(notifications, chunk)

    try:
        source.chunk = chunk_timed
        source.chunks = chunks_timed
    except AttributeError:  # pragma: no cover - a source with __slots__
        return


def _watch_queue(notifications: Any, chunk: ChunkContext) -> None:
    """Time every ``get()`` of a ``queue.Queue`` uproot waits on (once per queue)."""
    real_get = getattr(notifications, "get", None)
    if real_get is None or getattr(real_get, "_coffea_sizing_timed", False):
        return

    def get_timed(*args: Any, **kwargs: Any) -> Any:
        t0 = _perf()
        try:
            return real_get(*args, **kwargs)
        finally:
            chunk.readtime += _perf() - t0

    get_timed._coffea_sizing_timed = True  # type: ignore[attr-defined]
    try:
        notifications.get = get_timed
    except AttributeError:  # pragma: no cover - not a queue.Queue
        return


class _TimedFactory:
    """``NanoEventsFactory`` as coffea's work function sees it.

    ``from_root`` reads the tree's metadata first (``opentime``: it lands in the
    file's object cache, where ``from_root`` finds it), then builds the factory
    (``buildtime``); ``events()`` of the factory is timed as building too.
    """

    def __init__(self, cls: Any) -> None:
        self._cls = cls

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cls, name)

    def from_root(self, *args: Any, **kwargs: Any) -> Any:
        chunk = active_chunk()
        if chunk is None:
            return self._cls.from_root(*args, **kwargs)
        t0 = _perf()
        file = kwargs.get("file", args[0] if args else None)
        treepath = kwargs.get("treepath")
        cache = getattr(getattr(file, "file", None), "object_cache", None)
        if isinstance(treepath, str) and cache is not None:
            file[treepath]  # type: ignore[index]
        t1 = _perf()
        chunk.opentime += t1 - t0
        try:
            factory = self._cls.from_root(*args, **kwargs)
        finally:
            chunk.buildtime += _perf() - t1
        return _TimedEvents(factory, chunk)

    def from_parquet(self, *args: Any, **kwargs: Any) -> Any:
        chunk = active_chunk()
        if chunk is None:
            return self._cls.from_parquet(*args, **kwargs)
        t0 = _perf()
        try:
            factory = self._cls.from_parquet(*args, **kwargs)
        finally:
            chunk.buildtime += _perf() - t0
        return _TimedEvents(factory, chunk)


class _TimedEvents:
    """A NanoEvents factory whose ``events()`` counts as building."""

    def __init__(self, factory: Any, chunk: ChunkContext) -> None:
        self._factory = factory
        self._chunk = chunk

    def __getattr__(self, name: str) -> Any:
        return getattr(self._factory, name)

    def events(self, *args: Any, **kwargs: Any) -> Any:
        t0 = _perf()
        try:
            return self._factory.events(*args, **kwargs)
        finally:
            self._chunk.buildtime += _perf() - t0

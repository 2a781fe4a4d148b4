"""``@track_sizes``: what each chunk cost, measured inside ``process()``, any executor.

Covers the decorator (on ``process`` or on a processor class), the fields it measures
(:data:`TRACKED_FIELDS`: ``bytesread`` split into opening and payload, bytes per
column, time and memory of ``process()``) and where its records go: into the chunk's
record under :class:`~coffea_sizing.SizingDaskExecutor`, else into the output under
:data:`OUTPUT_KEY`, which :func:`split_records` and
:func:`~coffea_sizing.chunk_table` read back and ``postprocess`` never sees.
Does not know file formats (bytes per column come from :mod:`coffea_sizing.layout`)
or measure memory itself (:mod:`coffea_sizing.probe`). The manual, with the fields'
definitions, the columns each executor fills and the caveats (coffea 2025.11, outputs
that are not mappings, lazy arrays in an output), is ``docs/guide/decorator.md``.

Examples
--------
>>> from coffea import processor
>>> from coffea_sizing import track_sizes
>>> class MyProcessor(processor.ProcessorABC):
...     @track_sizes
...     def process(self, events):
...         return {"n": len(events)}
...     def postprocess(self, accumulator):
...         return accumulator
>>> MyProcessor().process.__name__
'process'
"""

from __future__ import annotations

import copy
import functools
import inspect
import threading
import warnings
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any, TypeVar, overload

import awkward as ak

from .layout import column_bytes as _column_bytes
from .probe import ChunkProbe, active_chunk, pickled_size
from .records import (
    IDENTITY_FIELDS,
    OUTPUT_KEY,
    TRACKED_FIELDS,
    SizingWarning,
    plain_value,
)

__all__ = ["OUTPUT_KEY", "TRACKED_FIELDS", "split_records", "track_sizes"]

#: The chunk identity copied into records that travel in the output.
_IDENTITY = IDENTITY_FIELDS

#: Attribute marking a function already wrapped by ``track_sizes``.
_MARK = "__coffea_sizing_tracked__"

_T = TypeVar("_T")

_LOCAL = threading.local()
_WARNED: set[str] = set()
_WARNED_LOCK = threading.Lock()


def _warn_once(key: str, message: str) -> None:
    """Warn with ``message`` the first time ``key`` comes up in this process."""
    with _WARNED_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    warnings.warn(message, SizingWarning, stacklevel=4)


# ----------------------------------------------------------------- the chunk
def _find_events(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    """The events array among a call's arguments (the one built by coffea first)."""
    candidates = [a for a in (*args, *kwargs.values()) if isinstance(a, ak.Array)]
    for array in candidates:
        if "@events_factory" in (array.attrs or {}):
            return array
    return candidates[0] if candidates else None


def _source_of(handle: Any) -> Any:
    """The uproot source behind a factory's ``file_handle`` (directory or file)."""
    for obj in (getattr(handle, "file", None), handle):
        source = getattr(obj, "source", None)
        if source is not None and hasattr(source, "num_requested_bytes"):
            return source
    return None


def _tree_of(factory: Any) -> Any:
    """The uproot ``TTree`` or RNTuple the factory already holds (never read
    again)."""
    mapping: Any = getattr(factory, "_mapping", None)
    cache = getattr(mapping, "_cache", None)
    if not isinstance(cache, Mapping):
        return None
    try:
        from coffea.nanoevents.util import key_to_tuple, tuple_to_key

        uuid, treepath, *_ = key_to_tuple(factory._partition_key)
        tree = cache.get(mapping.key_root() + tuple_to_key((uuid, treepath)))
    except Exception:  # noqa: BLE001 - private coffea layout; fall back to a scan
        tree = None
    if tree is None:
        trees = [v for v in cache.values() if hasattr(v, "num_entries")]
        tree = trees[0] if len(trees) == 1 else None
    # a TTree has branches, an RNTuple fields
    return tree if hasattr(tree, "branches") or hasattr(tree, "fields") else None


def _basket_bytes(
    factory: Any, branches: list[str], start: int, stop: int
) -> dict[str, int | None] | None:
    """Bytes uproot reads for each branch (or RNTuple field) for ``[start, stop)``.

    Only the metadata in memory is used (the ``TBranch`` basket index, or the
    RNTuple's page lists, which coffea read when it opened the tree): no byte is
    requested from the file (:func:`coffea_sizing.layout.column_bytes`).
    """
    tree = _tree_of(factory)
    if tree is None:
        return None
    preloaded = getattr(getattr(factory, "_mapping", None), "preloaded_arrays", None)
    read = [name for name in branches if not (preloaded and name in preloaded)]
    sizes = _column_bytes(tree, read, start, stop)
    # a preloaded branch was read when the events were built: in bytesread_open
    return {name: sizes.get(name, 0) for name in branches}


class _Chunk:
    """What ``process()`` can see of its chunk: the factory, the file, the log."""

    def __init__(self, events: Any) -> None:
        attrs = getattr(events, "attrs", None) or {}
        self.events = events
        self.factory = attrs.get("@events_factory")
        self.source: Any = None
        self.access_log: Any = None
        self.log_start = 0
        self.bytes_start: int | None = None
        if self.factory is None:
            _warn_once(
                "no-factory",
                "track_sizes: the events were not built by coffea's NanoEventsFactory "
                "(virtual mode), so the bytes read and the columns cannot be told; "
                "bytesread_open, bytesread_payload, columns_read and column_bytes "
                "are None (time, memory and output size are recorded).",
            )
            return
        log = getattr(self.factory, "access_log", None)
        if log is None:  # coffea < 2025.12 keeps it on the mapping only
            log = getattr(getattr(self.factory, "_mapping", None), "_access_log", None)
        if isinstance(log, list):
            self.access_log = log
            self.log_start = len(log)
        if not hasattr(self.factory, "file_handle"):
            import coffea

            _warn_once(
                "no-file-handle",
                f"track_sizes: coffea {coffea.__version__} gives process() no handle "
                "on the input file (NanoEventsFactory.file_handle needs coffea >= "
                "2025.12), so bytesread_open, bytesread_payload and bytesread are "
                "None; the other fields are recorded.",
            )
            return
        self.source = _source_of(self.factory.file_handle)
        if self.source is None:
            _warn_once(
                "no-source",
                "track_sizes: the input file has no uproot source to count bytes "
                "(not a ROOT file read by uproot: coffea's Parquet path counts no "
                "bytes), so bytesread_open, bytesread_payload and bytesread are None.",
            )
            return
        self.bytes_start = int(self.source.num_requested_bytes)

    def identity(self) -> dict[str, Any]:
        try:
            meta = self.events.layout.parameter("metadata")
        except AttributeError:
            meta = None
        meta = meta if isinstance(meta, Mapping) else {}
        record = {name: plain_value(meta.get(name)) for name in _IDENTITY}
        try:
            record["entries"] = len(self.events)
        except TypeError:
            record["entries"] = None
        return record

    def finish(self, probe: ChunkProbe) -> dict[str, Any]:
        """The tracked fields; reads the byte counter last (nothing reads after)."""
        columns: list[str] | None = None
        column_bytes: dict[str, int | None] | None = None
        if self.access_log is not None:
            accessed = self.access_log[self.log_start :]
            columns = sorted({str(getattr(a, "branch", a)) for a in accessed})
            mapping = getattr(self.factory, "_mapping", None)
            start = getattr(mapping, "_start", None)
            stop = getattr(mapping, "_stop", None)
            if isinstance(start, int) and isinstance(stop, int):
                column_bytes = _basket_bytes(self.factory, columns, start, stop)
        payload: int | None = None
        if self.source is not None and self.bytes_start is not None:
            payload = int(self.source.num_requested_bytes) - self.bytes_start
        return {
            "bytesread_open": self.bytes_start,
            "bytesread_payload": payload,
            "columns_read": columns,
            "column_bytes": column_bytes,
            "process_walltime": probe.walltime,
            "process_cputime": probe.cputime,
            "process_mem_peak_bytes": probe.mem_peak_bytes,
            "process_mem_usage_bytes": probe.mem_usage_bytes,
            "process_mem_shared": probe.mem_shared,
        }


# --------------------------------------------------------------- measuring
def _measure(func: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
    if getattr(_LOCAL, "active", False):  # a tracked process() inside another one
        return func(*args, **kwargs)
    events = _find_events(args, kwargs)
    if events is None:
        _warn_once(
            "no-events",
            "track_sizes: process() was called without an awkward events array; "
            "nothing is recorded for such calls.",
        )
        return func(*args, **kwargs)
    chunk = _Chunk(events)
    _LOCAL.active = True
    try:
        with ChunkProbe() as probe:
            out = func(*args, **kwargs)
    finally:
        _LOCAL.active = False

    context = active_chunk()
    if context is not None:
        # SizingDaskExecutor's task: the record is the executor's, which pickles
        # the output itself (output_pickled_bytes); the output stays untouched
        context.fields.update(chunk.finish(probe))
        return out
    if not isinstance(out, MutableMapping):
        _warn_once(
            "not-a-mapping",
            f"track_sizes: process() returned a {type(out).__name__}, not a mapping, "
            f"so the chunk records cannot travel with the output (under the "
            f"{OUTPUT_KEY!r} key) and are dropped. Return a dict, or run with "
            "SizingDaskExecutor (records in report['sizing']).",
        )
        return out
    try:
        pickled: int | None = pickled_size(out)
    except TypeError:
        pickled = None  # coffea (or the executor) reports the unpicklable output
    record = chunk.identity()
    record["bytesread"] = None
    record.update(chunk.finish(probe))  # the byte counter is read last
    record["output_pickled_bytes"] = pickled
    if record["bytesread_open"] is not None and record["bytesread_payload"] is not None:
        record["bytesread"] = record["bytesread_open"] + record["bytesread_payload"]
    try:
        carried = copy.copy(out)  # leave the object the processor returned alone
    except Exception:  # noqa: BLE001 - an uncopyable mapping: add the key in place
        carried = out
    previous = carried.get(OUTPUT_KEY)
    carried[OUTPUT_KEY] = [*(previous if isinstance(previous, list) else []), record]
    return carried


def _is_tracked(obj: Any) -> bool:
    return bool(getattr(obj, _MARK, False))


def _tracked(func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` measured on every call (once, however often it is decorated)."""
    if _is_tracked(func):
        return func

    @functools.wraps(func)
    def tracked(*args: Any, **kwargs: Any) -> Any:
        return _measure(func, args, kwargs)

    setattr(tracked, _MARK, True)
    return tracked


def _tracked_postprocess(func: Callable[..., Any]) -> Callable[..., Any]:
    """``postprocess`` that sees the user's output without the records."""
    if _is_tracked(func):
        return func

    @functools.wraps(func)
    def postprocess(self: Any, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        records = _pop_records(accumulator)
        try:
            result = func(self, accumulator, *args, **kwargs)
        except BaseException:
            if records is not None:
                accumulator[OUTPUT_KEY] = records
            raise
        if records is None:
            return result
        target = accumulator if result is None else result
        if isinstance(target, MutableMapping):
            target[OUTPUT_KEY] = records
        else:
            _warn_once(
                "postprocess-not-a-mapping",
                f"track_sizes: postprocess() returned a {type(target).__name__}, not "
                f"a mapping, so the {len(records)} chunk records cannot be put back "
                f"under the {OUTPUT_KEY!r} key and are dropped.",
            )
        return result

    setattr(postprocess, _MARK, True)
    return postprocess


def _wrap_postprocess(owner: type) -> None:
    original = inspect.getattr_static(owner, "postprocess", None)
    if inspect.isfunction(original) and not _is_tracked(original):
        owner.postprocess = _tracked_postprocess(original)  # type: ignore[attr-defined]


def _pop_records(output: Any) -> list[Any] | None:
    if isinstance(output, MutableMapping) and OUTPUT_KEY in output:
        records = output.pop(OUTPUT_KEY)
        return list(records) if records is not None else []
    return None


class _TrackedProcess:
    """What ``@track_sizes`` returns for a function: a method descriptor.

    When the class is created, :meth:`__set_name__` puts the measured function in
    its place (so the class holds a plain function and pickles as usual) and wraps
    the class's ``postprocess``. Assigned to a class later, it still binds like a
    method through :meth:`__get__`, but ``postprocess`` then sees the records.
    """

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = _tracked(function)
        functools.update_wrapper(self, function)

    def __set_name__(self, owner: type, name: str) -> None:
        setattr(owner, name, self.function)
        _wrap_postprocess(owner)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return self.function.__get__(instance, owner)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<track_sizes {getattr(self, '__qualname__', self.function)}>"


def _track_class(cls: type[_T]) -> type[_T]:
    """A subclass of ``cls`` (same name) whose process and postprocess are tracked.

    A subclass rather than ``cls`` changed in place: a class decorated at run time
    (``track_sizes(ImportedProcessor)``) is then shipped to the workers by value
    (cloudpickle finds it is not ``module.ImportedProcessor``), instead of by
    reference to the undecorated class the workers would import.
    """
    static = inspect.getattr_static(cls, "process", None)
    if isinstance(static, _TrackedProcess):
        function: Any = static.function
    elif inspect.isfunction(static):
        function = static
    else:
        raise TypeError(
            f"track_sizes: {cls.__name__} has no process method to measure "
            f"(found {static!r}); decorate a coffea ProcessorABC subclass."
        )
    namespace: dict[str, Any] = {}
    tracked = _tracked(function)
    if tracked is not static:
        namespace["process"] = tracked
    postprocess = inspect.getattr_static(cls, "postprocess", None)
    if inspect.isfunction(postprocess) and not _is_tracked(postprocess):
        namespace["postprocess"] = _tracked_postprocess(postprocess)
    if not namespace:  # already tracked: decorating twice measures once
        return cls
    namespace.update(
        __module__=cls.__module__, __qualname__=cls.__qualname__, __doc__=cls.__doc__
    )
    metaclass: Any = type(cls)  # ABCMeta for a ProcessorABC
    subclass: type[_T] = metaclass(cls.__name__, (cls,), namespace)
    return subclass


@overload
def track_sizes(obj: type[_T]) -> type[_T]: ...
@overload
def track_sizes(obj: Callable[..., Any]) -> Any: ...
def track_sizes(obj: Any) -> Any:
    """Record, for every chunk, what ``process()`` read, took and returned.

    Decorate a processor's ``process`` method or the processor class itself. The
    records go into ``report["sizing"]`` under
    :class:`~coffea_sizing.SizingDaskExecutor`, and into the output (under the
    :data:`OUTPUT_KEY` key, one record per chunk) under any other executor; see the
    module notes for the fields and the mechanism. Decorating twice (the method and
    the class, or the same thing twice) measures once; names and docstrings are
    kept; an exception from ``process()`` propagates unchanged.

    Parameters
    ----------
    obj : type or function
        A processor class (its ``process`` is measured and its ``postprocess`` made
        to see the output without the records), at its definition or later
        (``track_sizes(ImportedProcessor)(...)``); or a ``process`` function
        defined in a class body (the class's ``postprocess`` is wrapped when the
        class is created).

    Returns
    -------
    type or descriptor
        For a class, a subclass with the same name, qualified name, module and
        docstring whose ``process`` and ``postprocess`` are wrapped (the class
        itself is not modified, and is returned as is when already tracked); for a
        function, a method descriptor that replaces itself with the measured
        function when the class is created.

    Raises
    ------
    TypeError
        When ``obj`` is neither a class with a ``process`` method nor a function
        (an instance, a ``staticmethod``).

    Examples
    --------
    >>> import awkward as ak
    >>> from coffea import processor
    >>> from coffea.nanoevents import BaseSchema
    >>> from coffea_sizing import chunk_table, split_records, track_sizes
    >>> from coffea_sizing.datasets import ttbar_path
    >>> class JetCount(processor.ProcessorABC):
    ...     @track_sizes
    ...     def process(self, events):
    ...         return {"jets": int(ak.sum(events.nJet))}
    ...     def postprocess(self, accumulator):
    ...         assert "@coffea_sizing" not in accumulator
    ...         return accumulator
    >>> runner = processor.Runner(executor=processor.IterativeExecutor(status=False),
    ...                           schema=BaseSchema, chunksize=100)
    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()):  # coffea's progress bars
    ...     out = runner({"ttbar": [ttbar_path()]}, treename="Events",
    ...                  processor_instance=JetCount())
    >>> df = chunk_table(out)
    >>> df[["entrystart", "bytesread_open", "bytesread_payload", "columns_read"]]
       entrystart  bytesread_open  bytesread_payload columns_read
    0           0          336624                  0       [nJet]
    1         100          336624                  0       [nJet]
    >>> split_records(out)[0]
    {'jets': 537}
    """
    if isinstance(obj, type):
        return _track_class(obj)
    if isinstance(obj, _TrackedProcess):
        return obj
    if not inspect.isfunction(obj):
        hint = (
            "; decorate its class instead"
            if callable(getattr(obj, "process", None))
            else ""
        )
        raise TypeError(
            f"track_sizes decorates a processor class or its process method (a "
            f"function), not a {type(obj).__name__}{hint}"
        )
    return _TrackedProcess(obj)


def split_records(output: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Separate the chunk records from a processor's output.

    Parameters
    ----------
    output : object
        What ``Runner`` returned for a processor decorated with :func:`track_sizes`
        (the output alone, not the ``(output, report)`` pair).

    Returns
    -------
    (object, list of dict)
        A shallow copy of ``output`` without the :data:`OUTPUT_KEY` key, and the
        records it held (one per chunk). ``output`` itself is not modified. An
        output without records is returned as is, with an empty list.

    Examples
    --------
    >>> from coffea_sizing import split_records
    >>> out = {"nevents": 200, "@coffea_sizing": [{"entrystart": 0}, {"entrystart": 100}]}
    >>> user, records = split_records(out)
    >>> user, len(records), "@coffea_sizing" in out
    ({'nevents': 200}, 2, True)
    """
    if not isinstance(output, Mapping) or OUTPUT_KEY not in output:
        return output, []
    records = output[OUTPUT_KEY]
    if isinstance(output, MutableMapping):
        user: Any = copy.copy(output)
        del user[OUTPUT_KEY]
    else:
        user = {k: v for k, v in output.items() if k != OUTPUT_KEY}
    return user, [] if records is None else list(records)

"""``SizingDaskExecutor``: coffea's ``DaskExecutor`` that records what every chunk cost.

Covers the client side of a sized run: submitting the same work as
:class:`coffea.processor.DaskExecutor` (the same lz4 payload per chunk, reduced by
the same tree of ``_reduce`` tasks) under keys named after the run, measuring each
chunk in its task, receiving the joined records as chunks finish, and putting them
in the ``Runner`` report, or on the exception when the run fails. The scheduler side
is :mod:`coffea_sizing.plugin`; the record format :mod:`coffea_sizing.records`;
the measuring :mod:`coffea_sizing.probe`. The manual is ``docs/guide/executor.md``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import math
import pickle
import threading
import time
import uuid
import warnings
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from secrets import token_hex
from typing import TYPE_CHECKING, Any

from coffea.processor import DaskExecutor
from coffea.processor.accumulator import accumulate
from coffea.processor.executor import _compress, _decompress, _reduce

from ._version import __version__
from .columnar import ChunkRecords
from .findings import format_bytes, plural
from .phases import protocol, timed_work_function
from .plugin import (
    MERGE_PREFIX,
    META_KEY,
    STARTED,
    TOPIC,
    _announce_start,
    _ensure_plugin,
    _start_token,
    chunk_key,
    merge_key,
)
from .probe import (
    ChunkContext,
    ChunkProbe,
    pickled_size,
)
from .records import (
    CHUNK_FIELDS,
    CLIENT_FIELDS,
    IDENTITY_FIELDS,
    REPORT_KEY,
    REPORT_MERGES_KEY,
    REPORT_RUN_KEY,
    WIRE_LAYOUT,
    SizingWarning,
    WireFormatError,
    drop_mistyped,
    pack_record,
    plain_value,
    unpack_record,
)

if TYPE_CHECKING:
    from distributed import Client, Future

__all__ = ["SizingDaskExecutor", "SizingWarning", "describe_chunk"]

logger = logging.getLogger(__name__)


def describe_chunk(item: Any) -> str:
    """A short human description of a coffea ``WorkItem``, for error messages.

    Examples
    --------
    >>> from coffea.processor.executor import WorkItem
    >>> from coffea_sizing.executor import describe_chunk
    >>> describe_chunk(WorkItem("ttbar", "/data/f.root", "Events", 0, 100, b""))
    "/data/f.root (tree 'Events', entries 0-100, dataset 'ttbar')"
    """
    if isinstance(item, tuple) and item and not hasattr(item, "filename"):
        item = item[0]
    filename = getattr(item, "filename", None)
    if filename is None:
        return repr(item)
    return (
        f"{filename} (tree {getattr(item, 'treename', None)!r}, entries "
        f"{getattr(item, 'entrystart', '?')}-{getattr(item, 'entrystop', '?')}, "
        f"dataset {getattr(item, 'dataset', None)!r})"
    )


def _branch_names(columns: Any) -> list[str]:
    """Branch names from coffea's ``metrics["columns"]`` of one chunk.

    coffea >= 2025.12 writes ``"<branch>-<buffer kind>"`` strings; older releases
    the form keys themselves. Both reduce to the branch names.
    """
    names: set[str] = set()
    for col in columns or ():
        branch = getattr(col, "branch", None)
        if branch is None:
            text = str(col)
            branch = text.rsplit("-", 1)[0] if "-" in text else text
        names.add(str(branch))
    return sorted(names)


def _find_savemetrics(function: Any) -> bool | None:
    """Whether coffea's work function (inside ``function``) has ``savemetrics`` on.

    ``Runner`` hands the executor
    ``partial(automatic_retries, n, skip, partial(_work_function, format, timeout,
    schema, use_dataframes, savemetrics, ...))``; ``None`` when that shape is not
    found (a caller other than ``Runner``).
    """
    seen = 0
    stack = [function]
    while stack and seen < 16:
        fn = stack.pop()
        seen += 1
        if not isinstance(fn, partial):
            continue
        if getattr(fn.func, "__name__", "") == "_work_function":
            if len(fn.args) >= 5:
                return bool(fn.args[4])
            return bool(fn.keywords.get("savemetrics", False))
        stack.append(fn.func)
        stack.extend(a for a in fn.args if isinstance(a, partial))
    return None


# ====================================================================== workers
def _worker_check_function() -> Callable[[], Any]:
    """A function shipped to workers *by value* (cloudpickle: it is not importable)
    that says which coffea-sizing each worker has, without needing one."""

    def coffea_sizing_check() -> Any:
        try:
            import coffea_sizing
            from coffea_sizing.records import WIRE_LAYOUT
        except Exception as err:  # noqa: BLE001 - reported by name
            return f"{type(err).__name__}: {err}"
        return [coffea_sizing.__version__, WIRE_LAYOUT]

    return coffea_sizing_check


_WORKER_CHECK = _worker_check_function()


def _chunk_tasks(task: Callable[[Any], Any], items: list[Any]) -> tuple[Any, list[Any]]:
    """What ``client.map`` gets for the chunk (and merge) tasks:
    ``apply(loads(blob), (item,))``.

    Only dask's ``apply`` and ``pickle.loads`` travel by reference: the chunk task
    itself is bytes, unpickled when the task runs. A worker without coffea_sizing
    (one that joins an adaptive cluster late, say) then fails the task with a
    ``ModuleNotFoundError`` the client can name, instead of failing to read the
    scheduler's message and dropping its connection; and the scheduler sends each
    task without pickling any function by value.
    """
    import cloudpickle
    from dask._task_spec import Task

    loader = Task(None, pickle.loads, cloudpickle.dumps(task))
    return [loader] * len(items), [(item,) for item in items]


class _SizingTask:
    """The chunk task: run coffea's work function, measure, compress, report.

    Travels to the workers as bytes (see :func:`_chunk_tasks`); the record goes
    back in the task's own ``TaskState.metadata``, with the task's result. Its first
    act is to tell the scheduler plugin it started (``start_token``; the time it
    takes is measuring, in ``sizing_overhead``).
    """

    def __init__(
        self,
        function: Callable[..., Any],
        compression: int | None,
        start_token: str = "",
    ) -> None:
        self.function = function
        self.compression = compression
        self.start_token = start_token

    def __str__(self) -> str:
        return "coffea-sizing-chunk"

    def __call__(self, item: Any) -> Any:
        workitem = item[0] if isinstance(item, tuple) else item
        t_enter = time.perf_counter()
        _announce_start(self.start_token)
        function = timed_work_function(self.function)
        t_probe = time.perf_counter()
        with ChunkProbe() as probe, ChunkContext() as context:
            out = function(item)
        t0 = time.perf_counter()
        # the measuring so far: instrumenting coffea's work function, the probe's
        # own enter and exit (the time around the block minus inside it)
        overhead = (t_probe - t_enter) + max(0.0, (t0 - t_probe) - probe.walltime)
        record = _base_record()
        record.update(
            cputime=probe.cputime,
            mem_peak_bytes=probe.mem_peak_bytes,
            mem_usage_bytes=probe.mem_usage_bytes,
            mem_shared=probe.mem_shared,
        )
        record["protocol"] = protocol(getattr(workitem, "filename", ""))
        if function is not self.function:
            record["loadtime"] = context.loadtime
            record["opentime"] = context.opentime
            record["buildtime"] = context.buildtime
            source = getattr(getattr(context.file, "file", None), "source", None)
            if source is not None:
                record["read_requests"] = source.num_requests
                record["readtime"] = context.readtime
        # fields measured inside process() by @track_sizes (decorator.py)
        record.update(context.fields)
        if out is None:  # skipbadfiles swallowed an error for this chunk
            record["skipped"] = True
            _send(record, t_enter, overhead, t0)
            return None
        metrics = out.get("metrics") if isinstance(out, dict) else None
        if isinstance(metrics, dict):
            record["bytesread"] = metrics.get("bytesread")
            record["entries"] = metrics.get("entries")
            record["processtime"] = metrics.get("processtime")
            record["columns"] = _branch_names(metrics.get("columns"))
        user_out = out["out"] if isinstance(out, dict) and "out" in out else out
        try:
            record["output_pickled_bytes"] = pickled_size(user_out)
        except TypeError as err:
            raise TypeError(
                f"The output of the processor for chunk {describe_chunk(workitem)} "
                f"{err}. Dask cannot ship it to the client; return only picklable "
                "accumulators (dicts, hist.Hist, numbers, awkward arrays)."
            ) from err
        t1 = time.perf_counter()
        overhead += t1 - t0
        if self.compression is not None:
            try:
                payload = _compress(out, self.compression)
            except Exception as err:
                raise TypeError(
                    f"The output for chunk {describe_chunk(workitem)} could not be "
                    f"pickled and lz4-compressed: {err!r}"
                ) from err
            record["output_compressed_bytes"] = len(payload)
        t2 = time.perf_counter()
        if self.compression is None:
            payload = out  # Dask pickles it after the task, outside its time
            overhead += t2 - t1
            record["outputtime"] = 0.0
        else:
            record["outputtime"] = t2 - t1
        _send(record, t_enter, overhead, t2)
        return payload


class _MergeTask:
    """A reduction task: tells the scheduler plugin it started, then merges.

    Travels as bytes like the chunk tasks (:func:`_chunk_tasks`).
    """

    def __init__(self, reducer: Callable[[Any], Any], start_token: str) -> None:
        self.reducer = reducer
        self.start_token = start_token

    def __str__(self) -> str:
        return "coffea-sizing-merge"

    def __call__(self, batch: Any) -> Any:
        _announce_start(self.start_token)
        return self.reducer(batch)


#: Field of a packed record that says why the worker could not send the record.
SIZING_ERROR = "sizing_error"


def _base_record() -> dict[str, Any]:
    """The worker's part of a chunk record (the client adds identity and key)."""
    return {
        "entries": None,
        "skipped": False,
        "bytesread": None,
        "columns": [],
        "processtime": None,
        "output_pickled_bytes": None,
        "output_compressed_bytes": None,
    }


def _send(
    record: dict[str, Any], t_enter: float, overhead: float, t_last: float
) -> None:
    """Pack the record into this task's ``TaskState.metadata`` (outside a worker:
    nothing).

    The worker sends the metadata to the scheduler with the task's result, in the
    message that carries its ``nbytes``: no message of its own. ``t_enter`` is when
    the task started, ``overhead`` the measuring until ``t_last``, the end of the
    task's last phase; the time from there to the clock's stop (finding the task's
    state) is measuring too. ``walltime`` runs from ``t_enter`` to that stop, so
    every phase and ``sizing_overhead`` lie inside it; packing (a few tens of
    microseconds) comes after the clock stops.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    ts = worker.state.tasks.get(worker.get_current_task())
    if ts is None:
        return
    t_stop = time.perf_counter()
    record["walltime"] = t_stop - t_enter
    record["sizing_overhead"] = overhead + (t_stop - t_last)
    try:
        packed = pack_record(record)
    except TypeError as err:
        # the measuring must not fail the analysis: send why, the client warns
        problem = f"coffea-sizing could not pack the record of this chunk: {err}"
        try:
            packed = pack_record({SIZING_ERROR: problem})
        except TypeError:  # pragma: no cover - a plain string always packs
            return
    ts.metadata[META_KEY] = packed


# ====================================================================== client
def _identity_table(keys: list[str], items: list[Any]) -> ChunkRecords:
    """A row per chunk holding its identity and key, the other fields ``None``."""
    table = ChunkRecords(len(keys), CHUNK_FIELDS)
    workitems = [_workitem(item) for item in items]
    for name in IDENTITY_FIELDS:
        table.fill(name, [plain_value(getattr(w, name, None)) for w in workitems])
    table.fill("key", keys)
    return table


def _workitem(item: Any) -> Any:
    return item[0] if isinstance(item, tuple) else item


_SCHEDULER_FIELDS = (
    "task_nbytes",
    "worker",
    "worker_memory_limit",
    "compute_start",
    "compute_stop",
    "attempts",
)
#: The fields of a chunk's row that its item sets (``None`` when it lacks them).
_WORKER_FIELDS = tuple(name for name in CHUNK_FIELDS if name not in CLIENT_FIELDS)


class _Collector:
    """The records of one run, as they arrive (on the client's event loop)."""

    def __init__(
        self,
        run_id: str,
        keys: list[str],
        items: list[Any],
        desc: str = "",
        secret: str = "",
    ) -> None:
        self.run_id = run_id
        #: the run's capability: only items carrying it are accepted
        self.secret = secret or token_hex(16)
        self.items = dict(zip(keys, items, strict=True))
        self.rows = {key: row for row, key in enumerate(keys)}
        self.merge_inputs: dict[str, int] = {}
        #: the records, column-wise: a row per chunk (its identity until it arrives)
        self.table = _identity_table(keys, items)
        #: the chunks whose item arrived: their row
        self.chunks: dict[str, int] = {}
        self.merges: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []
        self.mistyped: list[str] = []
        self.bytesread = 0
        self.shipped = 0
        self.peak = 0
        #: items of this run the client received (the plugin says how many it sent)
        self.received = 0
        self.progress: Any = None
        self.desc = desc

    # --------------------------------------------------------- arriving items
    def add(self, item: dict[str, Any]) -> None:
        key = item.get("key")
        if type(key) is not str or not (key in self.items or key in self.merge_inputs):
            return  # no task of this run
        item, bad = _checked_item(item)
        if bad:
            what = (
                describe_chunk(_workitem(self.items[key]))
                if key in self.items
                else f"reduction {key}"
            )
            self.mistyped.append(f"{what}: {', '.join(bad)} (scheduler fields)")
        if key in self.items:
            if "error" in item:
                self.errors[key] = item
                return
            # a recomputed chunk: its latest item
            self._join(key, item)
            self.chunks[key] = self.rows[key]
            self.errors.pop(key, None)
        elif key in self.merge_inputs:
            if "error" in item:
                self.errors[key] = item
                return
            self.merges[key] = item
            if isinstance(item.get("task_nbytes"), int):
                self.shipped += item["task_nbytes"]
        # anything else is no task of this run: ignored
        self._show()

    def record(self, key: str) -> dict[str, Any]:
        """The full record of a chunk that finished."""
        return self.table[self.rows[key]]

    def _join(self, key: str, item: dict[str, Any]) -> None:
        """Write one chunk's record in its row: identity from the work item (there
        since the start), the worker's measurements, then what the scheduler saw
        (the worker cannot override identity or scheduler fields)."""
        row = self.rows[key]
        if key in self.chunks:  # recomputed: the totals count its latest record
            self._count(row, -1)
            for name in self.table.fields:
                if name not in CHUNK_FIELDS:
                    self.table.discard(row, name)
        worker_part: dict[str, Any] = dict.fromkeys(_WORKER_FIELDS)
        packed = item.get("record")
        if packed is not None:
            workitem = _workitem(self.items[key])
            try:
                unpacked = unpack_record(packed)
            except WireFormatError as err:
                self.problems.append(f"chunk {describe_chunk(workitem)}: {err}")
            else:
                problem = unpacked.pop(SIZING_ERROR, None)
                if problem is not None:
                    self.problems.append(f"chunk {describe_chunk(workitem)}: {problem}")
                for name in CLIENT_FIELDS:
                    unpacked.pop(name, None)
                bad = drop_mistyped(unpacked)
                if bad:
                    self.mistyped.append(
                        f"chunk {describe_chunk(workitem)}: {', '.join(bad)}"
                    )
                worker_part.update(unpacked)
        for name in _SCHEDULER_FIELDS:
            worker_part[name] = item.get(name)
        self.table.update(row, worker_part)
        self._count(row, 1)

    def _count(self, row: int, sign: int) -> None:
        """Add (``sign`` 1) or take away (-1) a row's bytes to the running totals."""
        bytesread, shipped, peak = (
            self.table.value(row, name)
            for name in ("bytesread", "task_nbytes", "mem_peak_bytes")
        )
        if isinstance(bytesread, int):
            self.bytesread += sign * bytesread
        if isinstance(shipped, int):
            self.shipped += sign * shipped
        if sign > 0 and isinstance(peak, int):
            self.peak = max(self.peak, peak)

    def totals_text(self) -> str:
        return (
            f"read {format_bytes(self.bytesread)} · shipped "
            f"{format_bytes(self.shipped)} · peak {format_bytes(self.peak or None)}"
        )

    def _show(self) -> None:
        if self.progress is None:
            return
        pbar = self.progress
        if pbar.task_ids:
            pbar.update(pbar.task_ids[-1], sizes=self.totals_text())

    # --------------------------------------------------------- the report
    def records(self) -> ChunkRecords:
        """One record per chunk of the run, in submission order (column-wise)."""
        for key, error in self.errors.items():
            if key in self.chunks:
                continue
            self.table.update(
                self.rows[key],
                {
                    "error": error.get("error"),
                    "worker": error.get("worker"),
                    "worker_memory_limit": error.get("worker_memory_limit"),
                    "attempts": error.get("attempts"),
                },
            )
        return self.table.finish()

    def finished_records(self) -> ChunkRecords:
        """Records of the chunks that finished or failed, in submission order."""
        table = self.records()
        done = sorted(
            {self.rows[k] for k in self.chunks} | {self.rows[k] for k in self.errors}
        )
        return table.take(done)

    def merge_records(self) -> list[dict[str, Any]]:
        out = []
        for key, n_inputs in self.merge_inputs.items():
            item = self.merges.get(key)
            if item is None:
                continue
            cstart, cstop = item.get("compute_start"), item.get("compute_stop")
            out.append(
                {
                    "key": key,
                    "level": int(key[len(MERGE_PREFIX) + 1 :].split("-")[1]),
                    "inputs": n_inputs,
                    "nbytes": item.get("task_nbytes"),
                    "worker": item.get("worker"),
                    "walltime": (
                        None if cstart is None or cstop is None else cstop - cstart
                    ),
                    "attempts": item.get("attempts"),
                    "compute_start": cstart,
                    "compute_stop": cstop,
                }
            )
        return out

    def missing(self) -> int:
        return len(self.items) - len(self.chunks)


def _count(value: Any) -> bool:
    return type(value) is int and value >= 0


def _number(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _address(value: Any) -> bool:
    return type(value) is str and len(value) <= 512


def _lost(value: Any) -> bool:
    return (
        type(value) in (list, tuple)
        and len(value) <= 1_000
        and all(
            type(w) in (list, tuple)
            and len(w) == 3
            and (w[0] is None or _address(w[0]))
            and all(v is None or _count(v) for v in w[1:])
            for w in value
        )
    )


#: What the client keeps of an item from the scheduler, and the test of each field
#: (the worker and the scheduler fill them: a worker can send anything).
_ITEM_FIELDS: dict[str, Callable[[Any], bool]] = {
    "record": lambda v: type(v) is bytes,
    "error": lambda v: type(v) is str,
    "task_nbytes": _count,
    "worker": _address,
    "worker_memory": _count,
    "worker_memory_limit": _count,
    "compute_start": _number,
    "compute_stop": _number,
    "attempts": _count,
    "lost_workers": _lost,
}


def _checked_item(item: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The item's known fields, those of the wrong type set to ``None`` (an error
    text of the wrong type becomes a placeholder, so the chunk still counts as
    failed); and the names of those fields."""
    out: dict[str, Any] = {"key": item["key"]}
    bad: list[str] = []
    for name, ok in _ITEM_FIELDS.items():
        if name not in item:
            continue
        value = item[name]
        if value is None or ok(value):
            out[name] = value
        else:
            bad.append(name)
            out[name] = "(error text of the wrong type)" if name == "error" else None
    return out, bad


class _Dispatcher:
    """The one handler of a client's coffea-sizing items: routes them to runs.

    Registered as the client's handler of ``TOPIC`` stream messages, which only
    code on the scheduler (the plugin) can send; an item reaches its run only with
    the run's secret.
    """

    def __init__(self) -> None:
        self.runs: dict[str, _Collector] = {}

    def secrets(self) -> list[str]:
        """The secrets of this client's open runs."""
        return [c.secret for c in list(self.runs.values())]

    def __call__(self, item: Any = None, **_: Any) -> None:
        # never raise: an exception here is logged by the client's message loop
        try:
            if type(item) is not dict:
                return
            run, secret = item.get("run"), item.get("secret")
            if type(run) is not str or type(secret) is not str:
                return
            collector = self.runs.get(run)
            if collector is None or not hmac.compare_digest(
                collector.secret.encode(), secret.encode()
            ):
                return
            collector.received += 1
            collector.add(item)
        except Exception:  # pragma: no cover - defensive
            logger.debug("coffea-sizing dropped an item", exc_info=True)


_DISPATCHERS: weakref.WeakKeyDictionary[Any, _Dispatcher] = weakref.WeakKeyDictionary()
_DISPATCHERS_LOCK = threading.Lock()


def _dispatcher(client: Client) -> _Dispatcher:
    """The client's one dispatcher, created and registered once as the client's
    handler of ``TOPIC`` messages (threads may start runs on a new client at the
    same time)."""
    with _DISPATCHERS_LOCK:
        dispatcher = _DISPATCHERS.get(client) or _Dispatcher()
        _DISPATCHERS[client] = dispatcher
        handlers: dict[str, Any] = client._stream_handlers  # type: ignore[attr-defined]
        if handlers.get(TOPIC) is not dispatcher:
            handlers[TOPIC] = dispatcher
        return dispatcher


def _connected(client: Client) -> bool:
    """Whether the client is connected to its scheduler now (not reconnecting)."""
    comm = getattr(client, "scheduler_comm", None)
    return client.status == "running" and comm is not None and not comm.closed()


def _on_loop(dask_client: Client, handler: str, timeout: float, **kwargs: Any) -> Any:
    """Call a scheduler handler on the client's loop and wait for the answer.

    The call goes on even if this thread is interrupted while waiting (Ctrl-C), so
    opening and closing a run on the scheduler cannot be cut in half. The wait
    stops at once when the client loses its scheduler (``ConnectionError``).
    """
    coro = getattr(dask_client.scheduler, handler)(**kwargs)
    loop = dask_client.loop.asyncio_loop  # type: ignore[union-attr]
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return future.result(timeout=0.1)
        except concurrent.futures.TimeoutError:
            if not _connected(dask_client):
                future.cancel()
                raise ConnectionError(
                    f"{handler}: the client lost its Dask scheduler"
                ) from None
            if time.monotonic() > deadline:
                future.cancel()
                raise TimeoutError(
                    f"{handler}: no answer from the Dask scheduler in {timeout} s"
                ) from None


def _wait_for_records(
    client: Client, collector: _Collector | None, timeout: float, failed: bool
) -> None:
    """Wait for records still on their way, up to ``timeout`` s.

    A run that succeeded waits for every chunk's record; a run that failed only
    until no record arrived for ``_SETTLE`` s (its unfinished chunks send none).
    No wait outlasts the client's connection to the scheduler.
    """
    if collector is None:
        return
    deadline = time.monotonic() + timeout
    count, quiet_since = len(collector.chunks), time.monotonic()
    while collector.missing() and time.monotonic() < deadline and _connected(client):
        time.sleep(0.02)
        if len(collector.chunks) != count:
            count, quiet_since = len(collector.chunks), time.monotonic()
        elif failed and time.monotonic() - quiet_since > _SETTLE:
            return


#: Seconds without a new record after which a failed run stops waiting for more.
_SETTLE = 0.25


#: Longest the client waits, after the run ended, for items the plugin says it sent.
_SENT_TIMEOUT = 2.0


def _wait_for_sent(client: Client, collector: _Collector | None, sent: Any) -> None:
    """Wait (at most ``_SENT_TIMEOUT`` s, while connected) until the client has the
    ``sent`` items the plugin says it sent for the run; normally they are all there
    already."""
    if collector is None or type(sent) is not int:
        return
    deadline = time.monotonic() + _SENT_TIMEOUT
    while (
        collector.received < sent and time.monotonic() < deadline and _connected(client)
    ):
        time.sleep(0.01)


#: Per client: the workers that answered with this coffea-sizing (checked once).
_CHECKED: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()
#: Seconds the pre-flight waits for the workers' answers before it goes on without.
CHECK_TIMEOUT = 10.0


def _ask_workers(client: Client, workers: list[str], timeout: float) -> dict[str, Any]:
    """Each worker's answer to ``_WORKER_CHECK``; an exception for those that did not
    answer (restarting, retiring, busy past ``timeout``), ``{}`` on a timeout."""

    async def ask() -> dict[str, Any]:
        return await asyncio.wait_for(
            client._run(_WORKER_CHECK, workers=workers, on_error="return"),  # type: ignore[attr-defined]
            timeout,
        )

    try:
        return client.sync(ask)  # type: ignore[no-any-return]
    except (asyncio.TimeoutError, OSError) as err:
        logger.info("coffea-sizing: no answer from workers %s (%r)", workers, err)
        return {}


def _check_workers(client: Client, timeout: float = CHECK_TIMEOUT) -> None:
    """Fail in seconds, naming them, when workers *answer* that they cannot import
    this coffea-sizing (or run another).

    Only an answer proves a missing or different install: a worker that does not
    answer (its nanny restarting it after a KilledWorker, retiring from an adaptive
    cluster, joining, too busy) is skipped now and checked at the next run; a
    chunk that fails to import on it names the worker. Workers that answered well
    are not asked again for this client's lifetime; workers that join later are
    asked at the next run.
    """
    checked = _CHECKED.setdefault(client, set())
    todo = sorted(set(client.ncores()) - checked)
    if not todo:
        return
    answers = _ask_workers(client, todo, timeout)
    missing: list[str] = []
    other: list[str] = []
    for address, answer in sorted(answers.items()):
        if isinstance(answer, list | tuple) and len(answer) == 2:
            if answer[1] == WIRE_LAYOUT:
                checked.add(address)
            else:
                other.append(f"{address} (coffea-sizing {answer[0]})")
        elif isinstance(answer, str):  # the check ran there and could not import
            missing.append(f"{address} ({answer})")
        else:  # no answer: an exception from the comm, not from the check
            logger.info("coffea-sizing: worker %s did not answer: %r", address, answer)
    asked = len(todo)
    if missing:
        raise ModuleNotFoundError(
            f"{plural(len(missing), 'worker')} of {asked} cannot import "
            f"coffea_sizing: {', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''}. Install coffea-sizing=="
            f"{__version__} in the workers' environment (as coffea is), or run with "
            "coffea's DaskExecutor.",
            name="coffea_sizing",
        )
    if other:
        raise RuntimeError(
            f"{plural(len(other), 'worker')} of {asked} run another "
            f"coffea-sizing than this client ({__version__}): {', '.join(other[:5])}. "
            "Install the same coffea-sizing version on the client and the workers."
        )


_SAVEMETRICS_WARNED = False


def _progress_bar() -> Any:
    """coffea's rich progress bar, with a column of running sizes."""
    from coffea.util import rich_bar
    from rich.progress import ProgressColumn
    from rich.text import Text

    class SizesColumn(ProgressColumn):
        def render(self, task: Any) -> Text:
            return Text(str(task.fields.get("sizes", "")), style="cyan")

    pbar = rich_bar()
    pbar.columns = (*pbar.columns, SizesColumn())
    return pbar


@dataclass
class SizingDaskExecutor(DaskExecutor):
    """coffea's ``DaskExecutor`` with a per-chunk record of sizes, memory and time.

    A drop-in replacement: every ``DaskExecutor`` option works the same. With
    ``Runner(..., savemetrics=True)`` the report gains ``report["sizing"]``, one
    record per processed chunk (fields in :data:`coffea_sizing.CHUNK_FIELDS`), and
    ``report["sizing_merges"]``, one record per tree-reduction task; turn them
    into tables with :func:`coffea_sizing.chunk_table` and
    :func:`coffea_sizing.merge_table`. The processor's output is exactly what
    ``DaskExecutor`` returns. When the run fails, the exception that reaches you
    carries the records of the chunks that finished as ``exc.sizing`` (the same
    keys as the report) and a one-line note.

    Parameters
    ----------
    client : distributed.Client, optional
        As for ``DaskExecutor``; the scheduler and the workers must be able to
        import ``coffea_sizing`` (the run stops at once, naming them, otherwise).
    treereduction, status, compression, priority, retries, heavy_input,
    function_name, use_dataframes, worker_affinity
        As for ``DaskExecutor``. With ``use_dataframes=True`` nothing is recorded
        (coffea returns no report then). With ``status=True`` the progress bar
        shows the bytes read, the output shipped and the largest peak so far.
    collect_timeout : float
        Seconds to wait, after the last task, for records still on their way
        (default 30; they normally arrive before the task's result does). A run
        that failed waits only until no record came for a quarter second (its
        unfinished chunks send none); no wait outlasts the client's connection to
        the scheduler.

    Examples
    --------
    >>> from coffea import processor
    >>> from distributed import Client, LocalCluster
    >>> from coffea_sizing import SizingDaskExecutor, chunk_table
    >>> from coffea_sizing.sweep import BranchSweepProcessor, SweepSchema
    >>> from coffea_sizing.datasets import ttbar_path
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
    ...     with Client(cluster) as client:
    ...         runner = processor.Runner(
    ...             executor=SizingDaskExecutor(client=client, status=False),
    ...             savemetrics=True, schema=SweepSchema, chunksize=100)
    ...         out, report = runner({"ttbar": [ttbar_path()]}, treename="Events",
    ...                              processor_instance=BranchSweepProcessor(1))
    >>> df = chunk_table(report)
    >>> len(df) == report["chunks"] == 2
    True
    >>> df[["entrystart", "entrystop", "bytesread", "columns"]]
       entrystart  entrystop  bytesread             columns
    0           0        100     336624  [Jet_pt, nJet]
    1         100        200     336624  [Jet_pt, nJet]
    >>> int(df["bytesread"].sum()) == report["bytesread"]
    True
    """

    collect_timeout: float = 30.0

    def __post_init__(self) -> None:
        # Only what DaskExecutor would fail on later (or never finish with): the
        # rest is passed through as DaskExecutor passes it.
        problems = []
        client: Any = self.client
        if client is not None:
            from distributed import Client

            if not isinstance(client, Client):
                problems.append(
                    f"client must be a distributed.Client, got "
                    f"{type(client).__name__} (wrap a cluster with Client(cluster))"
                )
        if not isinstance(self.treereduction, int) or self.treereduction < 2:
            problems.append(
                f"treereduction must be an integer >= 2, got {self.treereduction!r}"
            )
        compression: Any = self.compression
        if compression is not None and (
            not isinstance(compression, int) or not 0 <= compression <= 16
        ):
            problems.append(
                f"compression must be None or an lz4 level 0-16, got {self.compression!r}"
            )
        retries: Any = self.retries
        if retries is not None and (not isinstance(retries, int) or retries < 0):
            problems.append(
                f"retries must be None or an integer >= 0, got {self.retries!r}"
            )
        priority: Any = self.priority
        if not isinstance(priority, int | float) or isinstance(priority, bool):
            problems.append(f"priority must be a number, got {self.priority!r}")
        timeout: Any = self.collect_timeout
        if not isinstance(timeout, int | float) or timeout < 0:
            problems.append(
                f"collect_timeout must be a number >= 0, got {self.collect_timeout!r}"
            )
        if problems:
            raise ValueError("SizingDaskExecutor: " + "; ".join(problems))

    def __call__(
        self, items: Iterable[Any], function: Callable[..., Any], accumulator: Any
    ) -> Any:
        global _SAVEMETRICS_WARNED  # noqa: PLW0603 - once per process
        items = list(items)
        if len(items) == 0:
            return accumulator
        if self.function_name == "get_metadata" or self.use_dataframes:
            return super().__call__(items, function, accumulator)
        if _find_savemetrics(function) is False:
            if not _SAVEMETRICS_WARNED:
                _SAVEMETRICS_WARNED = True
                warnings.warn(
                    "SizingDaskExecutor records per-chunk sizes only with "
                    "Runner(..., savemetrics=True); runs without it record nothing "
                    "and behave like DaskExecutor (said once per process).",
                    SizingWarning,
                    stacklevel=3,
                )
            return super().__call__(items, function, accumulator)

        client: Any = self.client  # type: ignore[has-type]
        if client is None:
            from distributed import Client

            client = self.client = Client(threads_per_worker=1)
        _ensure_plugin(client)
        _check_workers(client)
        run_id = uuid.uuid4().hex[:12]
        keys = [chunk_key(run_id, i) for i in range(len(items))]
        collector = _Collector(run_id, keys, items, secret=token_hex(16))
        dispatcher = _dispatcher(client)
        dispatcher.runs[run_id] = collector
        info: dict[str, Any] = {}
        t_run = time.perf_counter()
        try:
            # opened inside the try: an interrupt anywhere from here still ends it
            hello = _on_loop(
                client,
                "coffea_sizing_begin",
                60,
                run_id=run_id,
                client=client.id,
                secret=collector.secret,
            )
            # tasks announce their starts to a plugin that counts them
            takes_starts = isinstance(hello, dict) and hello.get("starts") == STARTED
            token = _start_token(collector.secret) if takes_starts else ""
            out = self._sized_run(client, collector, keys, items, function, token)
        except BaseException as err:
            info = self._end(client, run_id, dispatcher, failed=True)
            _attach_to_exception(err, collector, info, time.perf_counter() - t_run)
            raise
        try:
            info = self._end(client, run_id, dispatcher)
        except KeyboardInterrupt as err:  # a Ctrl-C as the run closed: it stops
            _attach_to_exception(err, collector, {}, time.perf_counter() - t_run)
            raise
        out = accumulate(
            [out if self.compression is None else _decompress(out)], accumulator
        )
        self._attach(collector, info, out)
        return out, 0

    def _end(
        self,
        client: Client,
        run_id: str,
        dispatcher: _Dispatcher,
        failed: bool = False,
    ) -> Any:
        """Close the run on the scheduler; never hides the run's own outcome.

        A Ctrl-C while it waits for the last records stops the wait, still closes
        the run, and is raised.
        """
        t0 = time.perf_counter()
        collector = dispatcher.runs.get(run_id)
        interrupted: KeyboardInterrupt | None = None
        try:
            # records still on their way (normally none: they precede the result)
            _wait_for_records(client, collector, self.collect_timeout, failed)
        except KeyboardInterrupt as err:
            interrupted = err
        try:
            if not _connected(client):
                raise ConnectionError("the client lost its Dask scheduler")
            secret = collector.secret if collector is not None else ""
            answer = _on_loop(
                client, "coffea_sizing_end", 60, run_id=run_id, secret=secret
            )
            # a plugin of another version may answer otherwise: never fail on it
            info = answer if isinstance(answer, dict) else {}
        except (Exception, asyncio.CancelledError) as err:  # noqa: BLE001 - the run stands
            # (not KeyboardInterrupt/SystemExit: a Ctrl-C while a run closes stops it)
            logger.warning("could not close coffea-sizing run %s: %r", run_id, err)
            info = {"end_error": repr(err)}
        else:
            # the plugin sends the items still waiting before it ends the run; they
            # come on the client's stream, the answer on another connection
            _wait_for_sent(client, collector, info.get("sent"))
        finally:
            dispatcher.runs.pop(run_id, None)
        info["collect_seconds"] = time.perf_counter() - t0
        if interrupted is not None:
            raise interrupted
        return info

    # ------------------------------------------------------------------
    def _sized_run(
        self,
        client: Client,
        collector: _Collector,
        keys: list[str],
        items: list[Any],
        function: Callable[..., Any],
        start_token: str = "",
    ) -> Any:
        from dask.utils import apply

        task = _SizingTask(function, self.compression, start_token)
        reducer = _MergeTask(_reduce(self.compression), start_token)
        task_items: list[Any] = items
        if self.heavy_input is not None:
            # as DaskExecutor: client.scatter is not robust against adaptive clusters
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Large object of size")
                heavy = client.submit(lambda x: x, self.heavy_input)
            task_items = list(zip(items, repeat(heavy), strict=False))

        key_to_item: dict[str, Any] = dict(zip(keys, items, strict=True))
        # Hold only the newest level of futures, as DaskExecutor does: a chunk's
        # output is released from its worker once its reduction has taken it.
        work = self._submit_chunks(client, task, task_items, keys)

        level = 0
        run_id = collector.run_id
        while len(work) > 1:
            level += 1
            batches = [
                work[i : i + self.treereduction]
                for i in range(0, len(work), self.treereduction)
            ]
            mkeys = [merge_key(run_id, level, j) for j in range(len(batches))]
            collector.merge_inputs.update(zip(mkeys, map(len, batches), strict=True))
            loaders, args = _chunk_tasks(reducer, batches)
            work = client.map(
                apply,
                loaders,
                args,
                key=mkeys,
                priority=self.priority,
                retries=self.retries,
            )
            key_to_item.update(dict.fromkeys(mkeys, "(output reducer)"))
        final = work[0]
        try:
            return self._wait(final, key_to_item, collector)
        except BaseException:
            # Stop the rest of a failed run: without the final reduction nothing
            # wants the queued chunks, which would otherwise go on computing while
            # the user's traceback holds these futures.
            client.cancel(work)
            raise

    def _wait(
        self, final: Future, key_to_item: dict[str, Any], collector: _Collector
    ) -> Any:
        from distributed.scheduler import KilledWorker

        try:
            if self.status:
                self._progress(final, collector)
            result = final.result()
        except KilledWorker as ex:
            baditem = key_to_item.get(str(ex.task), ex.task)
            raise RuntimeError(
                f"Work item {describe_chunk(baditem)} caused a KilledWorker exception "
                "(likely a segfault or out-of-memory issue)"
            ) from ex
        return result

    def _progress(self, final: Future, collector: _Collector) -> None:
        try:
            from coffea.processor._dask import RichProgressBar
        except ImportError:  # pragma: no cover - older coffea
            from distributed import progress

            progress(final)
            return
        pbar = _progress_bar()
        collector.progress = pbar
        try:
            RichProgressBar(
                [final],
                complete=True,
                progress_bar=pbar,
                description=f"[green]{self.desc}",
                unit=self.unit,
            )
        finally:
            collector.progress = None

    def _submit_chunks(
        self, client: Client, task: _SizingTask, task_items: list[Any], keys: list[str]
    ) -> list[Future]:
        from dask.utils import apply

        loaders, args = _chunk_tasks(task, task_items)
        if not self.worker_affinity:
            return list(
                client.map(
                    apply,
                    loaders,
                    args,
                    key=keys,
                    priority=self.priority,
                    retries=self.retries,
                )
            )
        from coffea.processor.executor import _hash

        workers = list(client.run(lambda: 0))
        by_worker: dict[int, list[int]] = {}
        for i, it in enumerate(task_items):
            wi = it[0] if isinstance(it, tuple) else it
            h = _hash((wi.fileuuid, wi.treename, wi.entrystart, wi.entrystop))
            by_worker.setdefault(h % len(workers), []).append(i)
        futures: dict[int, Future] = {}
        for wi, idx in by_worker.items():
            submitted = client.map(
                apply,
                [loaders[i] for i in idx],
                [args[i] for i in idx],
                key=[keys[i] for i in idx],
                priority=self.priority,
                retries=self.retries,
                workers={workers[wi]},
                allow_other_workers=False,
            )
            futures.update(zip(idx, submitted, strict=True))
        return [futures[i] for i in range(len(task_items))]

    def _attach(self, collector: _Collector, info: dict[str, Any], out: Any) -> None:
        """Put the records in the report; a failure here warns and keeps the output."""
        try:
            sizing = _sizing(collector, info, collector.records())
        except Exception as err:  # noqa: BLE001 - the analysis output stands
            warnings.warn(
                f"coffea-sizing could not assemble the chunk records ({err!r}); the "
                "output is complete, the report has no records.",
                SizingWarning,
                stacklevel=4,
            )
            return
        n = len(collector.items)
        if sizing[REPORT_RUN_KEY]["missing"]:
            warnings.warn(
                f"{sizing[REPORT_RUN_KEY]['missing']} of {n} chunk records did not "
                f"arrive within {self.collect_timeout} s; their rows hold only the "
                "chunk's identity.",
                SizingWarning,
                stacklevel=4,
            )
        if collector.problems:
            warnings.warn(
                f"{len(collector.problems)} of {n} chunk records could not be sent or "
                f"read, e.g. {collector.problems[0]}; their rows hold only the chunk's "
                "identity and what the scheduler saw (the run itself is not affected).",
                SizingWarning,
                stacklevel=4,
            )
        if collector.mistyped:
            warnings.warn(
                f"{len(collector.mistyped)} of {n} chunk records had fields of the "
                f"wrong type, set to None, e.g. {collector.mistyped[0]}",
                SizingWarning,
                stacklevel=4,
            )
        if isinstance(out, dict) and isinstance(out.get("metrics"), dict):
            out["metrics"].update(sizing)
        else:
            warnings.warn(
                "the output has no metrics dictionary to hold the chunk records "
                "(was the executor called outside Runner?)",
                SizingWarning,
                stacklevel=4,
            )


def _sizing(
    collector: _Collector, info: dict[str, Any], records: ChunkRecords
) -> dict[str, Any]:
    """The report's three keys for the records given."""
    return {
        REPORT_KEY: records,
        REPORT_MERGES_KEY: collector.merge_records(),
        REPORT_RUN_KEY: {
            "run_id": collector.run_id,
            "chunks": len(records),
            "merges": len(collector.merges),
            "missing": len(collector.items)
            - len(collector.chunks.keys() | collector.errors.keys()),
            "failed": sum(1 for k in collector.items if k in collector.errors),
            "collect_seconds": info.get("collect_seconds"),
            "scheduler_peak_records": info.get("peak"),
            "records_sent": info.get("sent"),
        },
    }


def _attach_to_exception(
    err: BaseException, collector: _Collector, info: dict[str, Any], seconds: float
) -> None:
    """Give a failed run's exception the records of the chunks that finished."""
    try:
        records = collector.finished_records()
        sizing = _sizing(collector, info, records)
        done = [
            key
            for key, error in zip(
                records.column("key"), records.column("error"), strict=True
            )
            if error is None and key in collector.chunks
        ]
        line = (
            f"coffea-sizing: {len(done)} of {plural(len(collector.items), 'chunk')} "
            f"finished in {seconds:.1f} s before the run failed (read "
            f"{format_bytes(collector.bytesread)}, shipped "
            f"{format_bytes(collector.shipped)}, largest peak "
            f"{format_bytes(collector.peak or None)}); their records are in "
            "exc.sizing (chunk_table(exc.sizing))."
        )
        failing = _failing_chunk(err, collector)
        if failing:
            line += f" Failing chunk: {failing}."
        sizing[REPORT_RUN_KEY]["note"] = line
        err.sizing = sizing  # type: ignore[attr-defined]
        if hasattr(err, "add_note"):
            err.add_note(line)
        else:  # pragma: no cover - Python 3.10
            warnings.warn(line, SizingWarning, stacklevel=4)
    except Exception:  # the user's exception must reach them as it is
        logger.warning("coffea-sizing could not attach records", exc_info=True)


def _failing_chunk(err: BaseException, collector: _Collector) -> str | None:
    """The chunk that failed the run, with its attempts, worker and memory."""
    key = None
    cause = err.__cause__
    task = getattr(cause, "task", None)
    if isinstance(task, str) and task in collector.items:
        key = task
    if key is None:
        erred = [k for k in collector.items if k in collector.errors]
        key = erred[0] if erred else None
    if key is None:
        return None
    item = collector.errors.get(key, {})
    workitem = _workitem(collector.items[key])
    parts = [describe_chunk(workitem)]
    if item.get("attempts"):
        parts.append(f"{plural(int(item['attempts']), 'attempt')}")
    lost = item.get("lost_workers") or []
    worker, memory, limit = (
        tuple(lost[-1])
        if lost
        else (
            item.get("worker"),
            item.get("worker_memory"),
            item.get("worker_memory_limit"),
        )
    )
    if worker:
        where = f"on worker {worker}"
        if memory or limit:
            where += (
                f" (last reported memory {format_bytes(memory)} of its "
                f"{format_bytes(limit) if limit else 'unlimited'} memory_limit)"
            )
        parts.append(where)
    columns = sorted(
        {c for listed in collector.table.distinct("columns") for c in (listed or ())}
    )
    predicted = _predicted_bytes(workitem, columns)
    if predicted is not None:
        parts.append(f"predicted input {format_bytes(predicted)}")
    raw = str(item.get("error") or "")
    cause = err.__cause__
    if cause is not None and type(cause).__name__ != "KilledWorker":
        # the processor's own exception, as coffea chained it
        parts.append(f"error: {type(cause).__name__}({str(cause)[:200]!r})")
    elif raw and "KilledWorker" not in raw:
        # coffea wraps a chunk's exception: "... The error was: <it>."
        text = raw.rsplit("The error was: ", 1)[-1].strip().rstrip(".")
        parts.append(f"error: {text.splitlines()[0][:200]}")
    if "No module named 'coffea_sizing" in raw + str(err):
        parts.append(
            "that worker cannot import coffea_sizing: install "
            f"coffea-sizing=={__version__} in its environment (as coffea is)"
        )
    return ", ".join(parts)


def _predicted_bytes(workitem: Any, columns: list[str]) -> int | None:
    """The chunk's predicted bytesread from the file's metadata, when reachable.

    ``columns``: those the run's finished chunks read (the same processor).
    """
    try:
        from .predict import predict_bytesread  # above us: imported only on failure

        table = predict_bytesread(
            workitem.filename,
            workitem.treename,
            columns,
            [(workitem.entrystart, workitem.entrystop)],
        )
        return int(table["predicted_bytesread"].iloc[0])
    except Exception:  # noqa: BLE001 - a prediction is a bonus
        return None

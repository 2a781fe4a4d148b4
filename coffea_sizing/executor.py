"""``SizingDaskExecutor``: coffea's ``DaskExecutor`` that records what every chunk cost.

The executor submits the same work as :class:`coffea.processor.DaskExecutor` (each
chunk's task returns the same lz4-compressed ``{"out", "metrics", "processed"}``
payload, reduced by the same tree of ``_reduce`` tasks), with three differences:

* each chunk task is wrapped by ``_SizingTask``, which measures the chunk in
  the worker (:class:`~coffea_sizing.probe.ChunkProbe`), counts the pickled size of
  the processor's output, compresses the payload itself (so the compressed size is
  known without compressing twice) and sends a chunk record to the scheduler;
* task keys are named after the run (see :mod:`coffea_sizing.plugin`), so that the
  scheduler plugin can tell runs apart and capture ``TaskState.nbytes`` of every
  chunk and reduction task;
* after the final reduction the records are fetched from the scheduler, joined and
  put into the ``Runner`` report as ``report["sizing"]`` (one record per chunk) and
  ``report["sizing_merges"]`` (one per reduction task), and the run's state on the
  scheduler is dropped, whether the run succeeded or not.

The executor holds no state between calls: ``Runner`` works on
``executor.copy(...)``, and every field is an ``__init__`` argument.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from itertools import repeat
from typing import TYPE_CHECKING, Any

from coffea.processor import DaskExecutor
from coffea.processor.accumulator import accumulate
from coffea.processor.executor import _compress, _decompress, _reduce

from .plugin import (
    TOPIC,
    add_merges,
    begin_run,
    chunk_key,
    collect_run,
    end_run,
    ensure_plugin,
    merge_key,
)
from .probe import (
    ChunkContext,
    ChunkProbe,
    current_task_key,
    pickled_size,
)
from .records import (
    CHUNK_FIELDS,
    IDENTITY_FIELDS,
    REPORT_KEY,
    REPORT_MERGES_KEY,
    REPORT_RUN_KEY,
    SizingWarning,
    WireFormatError,
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


def _identity(x: Any) -> Any:
    return x


class _SizingTask:
    """The chunk task: run coffea's work function, measure, compress, report.

    Picklable (a module-level class holding coffea's closure), so Dask ships it to
    the workers like the ``_compression_wrapper`` it replaces.
    """

    def __init__(self, function: Callable[..., Any], compression: int | None) -> None:
        self.function = function
        self.compression = compression

    def __str__(self) -> str:
        return "coffea-sizing-chunk"

    def __call__(self, item: Any) -> Any:
        workitem = item[0] if isinstance(item, tuple) else item
        t_enter = time.perf_counter()
        with ChunkProbe() as probe, ChunkContext() as context:
            out = self.function(item)
        t0 = time.perf_counter()
        # the probe's own enter and exit: the time around the block minus inside it
        probe_cost = max(0.0, (t0 - t_enter) - probe.walltime)
        record = _base_record()
        record.update(
            walltime=probe.walltime,
            cputime=probe.cputime,
            mem_peak_bytes=probe.mem_peak_bytes,
            mem_usage_bytes=probe.mem_usage_bytes,
            mem_shared=probe.mem_shared,
        )
        # fields measured inside process() by @track_sizes (decorator.py)
        record.update(context.fields)
        if out is None:  # skipbadfiles swallowed an error for this chunk
            record["skipped"] = True
            _send(record, t0 - probe_cost)
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
        measuring = time.perf_counter() - t0 + probe_cost
        if self.compression is not None:
            try:
                payload = _compress(out, self.compression)
            except Exception as err:
                raise TypeError(
                    f"The output for chunk {describe_chunk(workitem)} could not be "
                    f"pickled and lz4-compressed: {err!r}"
                ) from err
            record["output_compressed_bytes"] = len(payload)
        else:
            payload = out
        _send(record, time.perf_counter() - measuring)
        return payload


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


def _chunk_identity(workitem: Any) -> dict[str, Any]:
    return {
        name: plain_value(getattr(workitem, name, None)) for name in IDENTITY_FIELDS
    }


def _assemble(
    joined: dict[str, Any], item: Any, unreadable: list[str]
) -> dict[str, Any]:
    """One chunk's full record: identity (from the work item), the worker's
    record (unpacked) and what the scheduler saw, in :data:`CHUNK_FIELDS` order."""
    workitem = item[0] if isinstance(item, tuple) else item
    record: dict[str, Any] = dict.fromkeys(CHUNK_FIELDS)
    record.update(_chunk_identity(workitem))
    record["key"] = joined.get("key")
    packed = joined.get("record")
    if packed is not None:
        try:
            worker_part = unpack_record(packed)
        except WireFormatError as err:
            unreadable.append(f"chunk {describe_chunk(workitem)}: {err}")
        else:
            problem = worker_part.pop(SIZING_ERROR, None)
            if problem is not None:
                unreadable.append(f"chunk {describe_chunk(workitem)}: {problem}")
            record.update(worker_part)
    for name in (
        "task_nbytes",
        "worker_memory_limit",
        "compute_start",
        "compute_stop",
        "attempts",
    ):
        record[name] = joined.get(name)
    if joined.get("worker") is not None:
        record["worker"] = joined["worker"]
    return record


def _send(record: dict[str, Any], t0: float) -> None:
    """Pack the record and log it to the scheduler (outside a worker: nothing).

    ``t0`` is when the measuring started, moved later by the time spent
    compressing (not measuring: ``DaskExecutor`` compresses too). The record's
    ``sizing_overhead`` therefore covers the probe, building the record and
    counting the pickled output; packing the record (a few tens of microseconds,
    timed by the benchmarks) and ``log_event`` (a message put on a queue) come
    after the clock stops.
    """
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return
    key = current_task_key()
    record["sizing_overhead"] = time.perf_counter() - t0
    try:
        packed = pack_record(record)
    except TypeError as err:
        # the measuring must not fail the analysis: send why, the client warns
        problem = f"coffea-sizing could not pack the record of this chunk: {err}"
        try:
            packed = pack_record({SIZING_ERROR: problem})
        except TypeError:  # pragma: no cover - a plain string always packs
            return
    worker.log_event(TOPIC, {"key": key, "record": packed})


@dataclass
class SizingDaskExecutor(DaskExecutor):
    """coffea's ``DaskExecutor`` with a per-chunk record of sizes, memory and time.

    A drop-in replacement: every ``DaskExecutor`` option works the same. With
    ``Runner(..., savemetrics=True)`` the report gains ``report["sizing"]``, one
    record per processed chunk (fields in :data:`coffea_sizing.CHUNK_FIELDS`), and
    ``report["sizing_merges"]``, one record per tree-reduction task; turn them
    into tables with :func:`coffea_sizing.chunk_table` and
    :func:`coffea_sizing.merge_table`. The processor's output is exactly what
    ``DaskExecutor`` returns.

    Parameters
    ----------
    client : distributed.Client, optional
        As for ``DaskExecutor``; the scheduler (and workers) must be able to import
        ``coffea_sizing``.
    treereduction, status, compression, priority, retries, heavy_input,
    function_name, use_dataframes, worker_affinity
        As for ``DaskExecutor``. With ``use_dataframes=True`` nothing is recorded
        (coffea returns no report then).
    collect_timeout : float
        Seconds to wait after the last task for chunk records still in flight to
        the scheduler (default 30; records normally arrive before the task ends).

    Examples
    --------
    >>> from coffea import processor
    >>> from distributed import Client, LocalCluster
    >>> from coffea_sizing import SizingDaskExecutor, chunk_table
    >>> from coffea_sizing.compare import BranchSweepProcessor, SweepSchema
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
        if not isinstance(self.retries, int) or self.retries < 0:
            problems.append(f"retries must be an integer >= 0, got {self.retries!r}")
        if not isinstance(self.priority, int):
            problems.append(f"priority must be an integer, got {self.priority!r}")
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
        items = list(items)
        if len(items) == 0:
            return accumulator
        if self.function_name == "get_metadata" or self.use_dataframes:
            return super().__call__(items, function, accumulator)
        if _find_savemetrics(function) is False:
            warnings.warn(
                "SizingDaskExecutor records per-chunk sizes only with "
                "Runner(..., savemetrics=True); this run records nothing and "
                "behaves like DaskExecutor.",
                SizingWarning,
                stacklevel=3,
            )
            return super().__call__(items, function, accumulator)

        client: Any = self.client  # type: ignore[has-type]
        if client is None:
            from distributed import Client

            client = self.client = Client(threads_per_worker=1)
        ensure_plugin(client)
        run_id = begin_run(client)
        try:
            return self._sized_run(client, run_id, items, function, accumulator)
        finally:
            try:
                end_run(client, run_id)
            except Exception:  # never hide the run's own error behind ours
                logger.warning(
                    "could not clear coffea-sizing run %s", run_id, exc_info=True
                )

    # ------------------------------------------------------------------
    def _sized_run(
        self,
        client: Client,
        run_id: str,
        items: list[Any],
        function: Callable[..., Any],
        accumulator: Any,
    ) -> Any:
        task = _SizingTask(function, self.compression)
        reducer = _reduce(self.compression)
        task_items: list[Any] = items
        if self.heavy_input is not None:
            # as DaskExecutor: client.scatter is not robust against adaptive clusters
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Large object of size")
                heavy = client.submit(_identity, self.heavy_input)
            task_items = list(zip(items, repeat(heavy), strict=False))

        keys = [chunk_key(run_id, i) for i in range(len(items))]
        key_to_item: dict[str, Any] = dict(zip(keys, items, strict=True))
        # Hold only the newest level of futures, as DaskExecutor does: a chunk's
        # output is released from its worker once its reduction has taken it.
        work = self._submit_chunks(client, task, task_items, keys)

        merge_inputs: dict[str, int] = {}
        level = 0
        while len(work) > 1:
            level += 1
            batches = [
                work[i : i + self.treereduction]
                for i in range(0, len(work), self.treereduction)
            ]
            mkeys = [merge_key(run_id, level, j) for j in range(len(batches))]
            merge_inputs.update(zip(mkeys, map(len, batches), strict=True))
            work = client.map(
                reducer,
                batches,
                key=mkeys,
                priority=self.priority,
                retries=self.retries,
            )
            key_to_item.update(dict.fromkeys(mkeys, "(output reducer)"))
        if merge_inputs:
            add_merges(client, run_id, merge_inputs)
        final = work[0]
        try:
            result = self._wait(final, key_to_item)
        except BaseException:
            # Stop the rest of a failed run: without the final reduction nothing
            # wants the queued chunks, which would otherwise go on computing while
            # the user's traceback holds these futures.
            client.cancel(work)
            raise
        out = accumulate(
            [result if self.compression is None else _decompress(result)], accumulator
        )
        self._attach(client, run_id, keys, items, out)
        return out, 0

    def _wait(self, final: Future, key_to_item: dict[str, Any]) -> Any:
        from distributed.scheduler import KilledWorker

        try:
            if self.status:
                try:
                    from coffea.processor._dask import progress
                except ImportError:  # pragma: no cover - older coffea
                    from distributed import progress
                progress(final, description=f"[green]{self.desc}", unit=self.unit)
            result = final.result()
        except KilledWorker as ex:
            baditem = key_to_item.get(str(ex.task), ex.task)
            raise RuntimeError(
                f"Work item {describe_chunk(baditem)} caused a KilledWorker exception "
                "(likely a segfault or out-of-memory issue)"
            ) from ex
        return result

    def _submit_chunks(
        self, client: Client, task: _SizingTask, task_items: list[Any], keys: list[str]
    ) -> list[Future]:
        if not self.worker_affinity:
            return list(
                client.map(
                    task,
                    task_items,
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
                task,
                [task_items[i] for i in idx],
                key=[keys[i] for i in idx],
                priority=self.priority,
                retries=self.retries,
                workers={workers[wi]},
                allow_other_workers=False,
            )
            futures.update(zip(idx, submitted, strict=True))
        return [futures[i] for i in range(len(task_items))]

    def _attach(
        self,
        client: Client,
        run_id: str,
        keys: list[str],
        items: list[Any],
        out: Any,
    ) -> None:
        t0 = time.perf_counter()
        deadline = time.monotonic() + self.collect_timeout
        pause = 0.02
        while True:
            got = collect_run(client, run_id, keys)
            if not got["missing"] or time.monotonic() >= deadline:
                break
            time.sleep(pause)
            pause = min(pause * 2, 1.0)
        chunks: list[dict[str, Any]] = []
        unreadable: list[str] = []
        for joined, item in zip(got["chunks"], items, strict=True):
            record = _assemble(joined, item, unreadable)
            chunks.append(record)
        if got["missing"]:
            warnings.warn(
                f"{len(got['missing'])} of {len(keys)} chunk records did not reach the "
                f"scheduler within {self.collect_timeout} s; their rows hold only the "
                "chunk's identity and what the scheduler saw (task_nbytes, worker).",
                SizingWarning,
                stacklevel=4,
            )
        if unreadable:
            warnings.warn(
                f"{len(unreadable)} of {len(keys)} chunk records could not be sent or "
                f"read, e.g. {unreadable[0]}; their rows hold only the chunk's identity "
                "and what the scheduler saw (the run itself is not affected).",
                SizingWarning,
                stacklevel=4,
            )
        got["chunks"] = chunks
        if isinstance(out, dict) and isinstance(out.get("metrics"), dict):
            out["metrics"][REPORT_KEY] = got["chunks"]
            out["metrics"][REPORT_MERGES_KEY] = got["merges"]
            out["metrics"][REPORT_RUN_KEY] = {
                "run_id": run_id,
                "chunks": len(got["chunks"]),
                "merges": len(got["merges"]),
                "missing": len(got["missing"]),
                "collect_seconds": time.perf_counter() - t0,
            }
        else:
            warnings.warn(
                "the output has no metrics dictionary to hold the chunk records "
                "(was the executor called outside Runner?)",
                SizingWarning,
                stacklevel=4,
            )

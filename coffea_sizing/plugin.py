"""Scheduler plugin: joins each chunk's worker-side record with ``TaskState.nbytes``.

How records reach the scheduler
-------------------------------
Every instrumented task sends its chunk record with ``Worker.log_event`` on the
topic :data:`TOPIC` just before it returns. The plugin's ``log_event`` hook keeps the
record, keyed by the task key; its ``transition`` hook sees every
``processing -> memory`` transition with the ``nbytes``, ``worker`` and
``startstops`` the worker reported, and counts every start of a task
(``-> processing``) as an attempt. Nothing polls ``scheduler.tasks``, so no task is
missed however short it is, and it works the same when the scheduler is another
process.

Runs are kept apart by their keys: an executor asks for a run id, names its chunk
tasks ``coffea-sizing-chunk-<run id>-<index>`` and its reductions
``coffea-sizing-merge-<run id>-<level>-<index>``, and the plugin files each event
under the run its key names. The broker's own log of the topic is dropped as soon as
an event is filed, and :func:`end_run` drops the run's state, so nothing is left on
the scheduler afterwards, not even from a chunk that finishes after its run failed.

Everything stored and returned is a plain record (see :mod:`coffea_sizing.records`).
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from distributed.diagnostics.plugin import SchedulerPlugin

if TYPE_CHECKING:
    from distributed import Client
    from distributed.scheduler import Scheduler

__all__ = [
    "CHUNK_PREFIX",
    "MERGE_PREFIX",
    "TOPIC",
    "SizingSchedulerPlugin",
    "begin_run",
    "chunk_key",
    "collect_run",
    "end_run",
    "ensure_plugin",
    "merge_key",
]

logger = logging.getLogger(__name__)

#: Topic of the Dask events that carry chunk records from workers to the scheduler.
TOPIC = "coffea-sizing"
#: Key prefix of chunk tasks: ``coffea-sizing-chunk-<run id>-<index>``.
CHUNK_PREFIX = "coffea-sizing-chunk"
#: Key prefix of reduction tasks: ``coffea-sizing-merge-<run id>-<level>-<index>``.
MERGE_PREFIX = "coffea-sizing-merge"


def chunk_key(run_id: str, index: int) -> str:
    """Task key of chunk ``index`` of run ``run_id``.

    Examples
    --------
    >>> from coffea_sizing.plugin import chunk_key
    >>> chunk_key("0a1b2c3d4e5f", 7)
    'coffea-sizing-chunk-0a1b2c3d4e5f-7'
    """
    return f"{CHUNK_PREFIX}-{run_id}-{index}"


def merge_key(run_id: str, level: int, index: int) -> str:
    """Task key of reduction ``index`` at tree level ``level`` of run ``run_id``.

    Examples
    --------
    >>> from coffea_sizing.plugin import merge_key
    >>> merge_key("0a1b2c3d4e5f", 1, 0)
    'coffea-sizing-merge-0a1b2c3d4e5f-1-0'
    """
    return f"{MERGE_PREFIX}-{run_id}-{level}-{index}"


def _parse_key(key: object) -> tuple[str, str] | None:
    """``(kind, run_id)`` of one of our keys, else ``None``."""
    if not isinstance(key, str):
        return None
    if key.startswith(CHUNK_PREFIX + "-"):
        rest = key[len(CHUNK_PREFIX) + 1 :]
        kind = "chunk"
    elif key.startswith(MERGE_PREFIX + "-"):
        rest = key[len(MERGE_PREFIX) + 1 :]
        kind = "merge"
    else:
        return None
    return kind, rest.split("-", 1)[0]


def _compute_window(startstops: Any) -> tuple[float | None, float | None]:
    start = stop = None
    for ss in startstops or ():
        try:
            if ss.get("action") == "compute":
                start, stop = float(ss["start"]), float(ss["stop"])
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return start, stop


@dataclass
class _Run:
    """What the scheduler holds for one run, until :func:`end_run`."""

    run_id: str
    merge_inputs: dict[str, int] = field(default_factory=dict)
    #: the packed record of each chunk, as it arrived (see records.pack_record)
    worker_records: dict[str, Any] = field(default_factory=dict)
    #: (nbytes, worker, compute start, compute stop, worker memory limit) of each
    #: finished task
    scheduler_fields: dict[
        str, tuple[int | None, str | None, float | None, float | None, int | None]
    ] = field(default_factory=dict)
    attempts: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, str] = field(default_factory=dict)


class SizingSchedulerPlugin(SchedulerPlugin):
    """Collects per-task sizes on the scheduler for :class:`~coffea_sizing.SizingDaskExecutor` runs.

    Registered once per scheduler by :func:`ensure_plugin` (``idempotent``), shared
    by every run and every client; each run's state lives from :func:`begin_run` to
    :func:`end_run`.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> from coffea_sizing.plugin import SizingSchedulerPlugin, ensure_plugin
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
    ...     with Client(cluster) as client:
    ...         ensure_plugin(client)
    ...         SizingSchedulerPlugin.name in cluster.scheduler.plugins
    True
    """

    name: ClassVar[str] = "coffea-sizing"  # type: ignore[misc]
    idempotent: ClassVar[bool] = True  # type: ignore[misc]

    def __init__(self) -> None:
        self.runs: dict[str, _Run] = {}
        self.scheduler: Scheduler | None = None

    async def start(self, scheduler: Scheduler) -> None:
        self.scheduler = scheduler

    # ------------------------------------------------------------ hooks
    def transition(
        self,
        key: Any,
        start: str,
        finish: str,
        *args: Any,  # noqa: ARG002 - hooks take whatever the scheduler passes
        **kwargs: Any,
    ) -> None:
        parsed = _parse_key(key)
        if parsed is None:
            return
        run = self.runs.get(parsed[1])
        if run is None:
            return
        if finish == "processing":
            run.attempts[key] += 1
        elif start == "processing" and finish == "memory":
            cstart, cstop = _compute_window(kwargs.get("startstops"))
            nbytes = kwargs.get("nbytes")
            worker = kwargs.get("worker")
            ws = self.scheduler.workers.get(worker) if self.scheduler else None
            run.scheduler_fields[key] = (
                None if nbytes is None else int(nbytes),
                worker,
                cstart,
                cstop,
                getattr(ws, "memory_limit", None) or None,
            )
        elif finish == "erred":
            exc = kwargs.get("exception_text") or kwargs.get("exception")
            run.errors[key] = str(exc) if exc is not None else "erred"

    def log_event(self, topic: str, msg: Any, **kwargs: Any) -> None:  # noqa: ARG002
        if topic != TOPIC or not isinstance(msg, dict):
            return
        key = msg.get("key")
        parsed = _parse_key(key)
        if parsed is None:
            return
        run = self.runs.get(parsed[1])
        if run is not None and isinstance(key, str):
            # kept packed: the client unpacks (and reports a record it cannot read)
            run.worker_records[key] = msg.get("record", msg)
        # The broker also logs every event; ours are filed above (or belong to a run
        # already ended, e.g. a chunk still running when its run failed): drop it.
        self._forget_topic()

    def _forget_topic(self) -> None:
        broker = getattr(self.scheduler, "_broker", None)
        topics = getattr(broker, "_topics", None)
        if not isinstance(topics, dict) or TOPIC not in topics:
            return
        topic = topics[TOPIC]
        if getattr(topic, "subscribers", None):
            topic.truncate()  # someone subscribed to our topic: keep the topic
        else:
            topics.pop(TOPIC, None)

    # ------------------------------------------------------------ runs
    def begin(self, run_id: str) -> None:
        """Open the state of run ``run_id`` (called through :func:`begin_run`)."""
        self.runs[run_id] = _Run(run_id)

    def add_merges(self, run_id: str, merge_inputs: dict[str, int]) -> None:
        """Record how many inputs each reduction task of ``run_id`` has."""
        run = self.runs.get(run_id)
        if run is not None:
            run.merge_inputs.update(merge_inputs)

    def collect(self, run_id: str, chunk_keys: list[str]) -> dict[str, Any]:
        """Join worker records and scheduler fields for ``run_id``.

        Returns ``{"chunks": [...], "merges": [...], "missing": [...]}``: for each
        key in ``chunk_keys`` (in that order) a dict of ``key``, ``record`` (the
        worker's packed record as it arrived, or ``None``), ``task_nbytes``,
        ``worker``, ``compute_start``, ``compute_stop`` and ``attempts``; one merge
        record per reduction task; and the chunk keys whose worker record has not
        arrived. The client unpacks the records
        (:func:`coffea_sizing.records.unpack_record`).
        """
        run = self.runs.get(run_id) or _Run(run_id)
        chunks: list[dict[str, Any]] = []
        missing: list[str] = []
        none: tuple[None, None, None, None, None] = (None, None, None, None, None)
        for key in chunk_keys:
            packed = run.worker_records.get(key)
            if packed is None:
                missing.append(key)
            nbytes, worker, cstart, cstop, limit = run.scheduler_fields.get(key, none)
            chunks.append(
                {
                    "key": key,
                    "record": packed,
                    "task_nbytes": nbytes,
                    "worker": worker,
                    "worker_memory_limit": limit,
                    "compute_start": cstart,
                    "compute_stop": cstop,
                    "attempts": run.attempts.get(key, 0),
                }
            )
        merges: list[dict[str, Any]] = []
        for key, n_inputs in run.merge_inputs.items():
            nbytes, worker, cstart, cstop, _ = run.scheduler_fields.get(key, none)
            level_index = key[len(MERGE_PREFIX) + 1 :].split("-")[1:]
            merges.append(
                {
                    "key": key,
                    "level": int(level_index[0]) if level_index else None,
                    "inputs": n_inputs,
                    "nbytes": nbytes,
                    "worker": worker,
                    "walltime": (
                        None if cstart is None or cstop is None else cstop - cstart
                    ),
                    "attempts": run.attempts.get(key, 0),
                    "compute_start": cstart,
                    "compute_stop": cstop,
                }
            )
        return {"chunks": chunks, "merges": merges, "missing": missing}

    def end(self, run_id: str) -> None:
        """Drop run ``run_id``; with no run left, drop the topic's event log too."""
        self.runs.pop(run_id, None)
        self._forget_topic()


# ------------------------------------------------------------------ client side
def _plugin(dask_scheduler: Scheduler) -> SizingSchedulerPlugin:
    plugin = dask_scheduler.plugins.get(SizingSchedulerPlugin.name)
    if not isinstance(plugin, SizingSchedulerPlugin):
        raise RuntimeError(  # noqa: TRY004
            "the coffea-sizing scheduler plugin is not registered on this scheduler"
        )
    return plugin


def _sched_begin(dask_scheduler: Scheduler, run_id: str) -> None:
    _plugin(dask_scheduler).begin(run_id)


def _sched_add_merges(
    dask_scheduler: Scheduler, run_id: str, merge_inputs: dict[str, int]
) -> None:
    _plugin(dask_scheduler).add_merges(run_id, merge_inputs)


def _sched_collect(
    dask_scheduler: Scheduler, run_id: str, chunk_keys: list[str]
) -> dict[str, Any]:
    return _plugin(dask_scheduler).collect(run_id, chunk_keys)


def _sched_end(dask_scheduler: Scheduler, run_id: str) -> int:
    plugin = _plugin(dask_scheduler)
    plugin.end(run_id)
    return len(plugin.runs)


def _sched_state(dask_scheduler: Scheduler) -> dict[str, Any]:
    plugin = dask_scheduler.plugins.get(SizingSchedulerPlugin.name)
    broker = getattr(dask_scheduler, "_broker", None)
    topics = getattr(broker, "_topics", {})
    return {
        "registered": isinstance(plugin, SizingSchedulerPlugin),
        "runs": sorted(plugin.runs)
        if isinstance(plugin, SizingSchedulerPlugin)
        else [],
        "topic_events": len(topics[TOPIC].events) if TOPIC in topics else 0,
    }


def ensure_plugin(client: Client) -> None:
    """Register :class:`SizingSchedulerPlugin` on the client's scheduler, once.

    The scheduler must be able to import ``coffea_sizing`` (install it where the
    scheduler runs, as coffea itself is installed where the workers run).

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> from coffea_sizing.plugin import ensure_plugin, scheduler_state
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
    ...     with Client(cluster) as client:
    ...         ensure_plugin(client)
    ...         scheduler_state(client)["registered"]
    True
    """
    client.register_plugin(SizingSchedulerPlugin(), name=SizingSchedulerPlugin.name)


def begin_run(client: Client) -> str:
    """Open a run on the scheduler and return its id (12 hex digits).

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> from coffea_sizing.plugin import begin_run, end_run, ensure_plugin
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
    ...     with Client(cluster) as client:
    ...         ensure_plugin(client)
    ...         run_id = begin_run(client)
    ...         still_open = end_run(client, run_id)
    >>> len(run_id), still_open
    (12, 0)
    """
    run_id = uuid.uuid4().hex[:12]
    client.run_on_scheduler(_sched_begin, run_id=run_id)
    return run_id


def add_merges(client: Client, run_id: str, merge_inputs: dict[str, int]) -> None:
    """Tell the scheduler how many inputs each reduction task of ``run_id`` has."""
    client.run_on_scheduler(_sched_add_merges, run_id=run_id, merge_inputs=merge_inputs)


def collect_run(client: Client, run_id: str, chunk_keys: list[str]) -> dict[str, Any]:
    """Fetch the joined records of ``run_id`` (see :meth:`SizingSchedulerPlugin.collect`)."""
    return client.run_on_scheduler(_sched_collect, run_id=run_id, chunk_keys=chunk_keys)


def end_run(client: Client, run_id: str) -> int:
    """Drop everything the scheduler holds for ``run_id``; return the runs still open."""
    return int(client.run_on_scheduler(_sched_end, run_id=run_id))


def scheduler_state(client: Client) -> dict[str, Any]:
    """What the plugin holds now: ``registered``, open ``runs``, ``topic_events``.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> from coffea_sizing.plugin import scheduler_state
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
    ...     with Client(cluster) as client:
    ...         scheduler_state(client)
    {'registered': False, 'runs': [], 'topic_events': 0}
    """
    return dict(client.run_on_scheduler(_sched_state))

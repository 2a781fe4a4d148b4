"""Scheduler side of a sized run: joins each task's record with what the scheduler saw.

Covers the scheduler plugin and the protocol between it and the executor. A chunk
task leaves its packed record in its own worker ``TaskState.metadata`` (under
``META_KEY``); the worker sends it to the scheduler in the same message as the
task's ``nbytes``, and the plugin's ``transition`` hook, on ``processing ->
memory``, joins the two with the worker's ``memory_limit`` and the attempts it
counted, queues the joined item for the run's client and forgets the task; the
waiting items go out together within ``FLUSH_SECONDS`` (at once at a run's end or
with an error). Each item goes on the client's own stream as a message of op ``TOPIC``, which only code
on the scheduler can send (not a Dask event: any client or task can publish
those), and carries the run's secret. A task that errs is sent the
same way with its exception text. What the plugin holds for a run is the tasks in
flight (attempts, the worker running each, the workers lost under it), never the
chunks done.

Attempts are starts a worker announced, not the scheduler's assignments: the
scheduler gives a worker a few more tasks than it has threads, and a worker that dies
takes its queue with it. Each chunk and merge task therefore tells the plugin, as its
first act on the worker, that it started (``_announce_start``: a ``STARTED``
message written on the worker's own stream to the scheduler and waited for, so a
worker that dies in the chunk a moment later has already said so). The plugin counts
a start only with the run's start token (derived from its secret,
``_start_token``) and from the worker the task is processing on now, once per
assignment, or from the worker whose death just gave the task back (a start read
after a nanny reported the death); a result or an error the worker reports counts
as a start when its start did not arrive.

The executor talks to the plugin through handlers the plugin registers on the
scheduler (``coffea_sizing_begin``, ``coffea_sizing_end``, ``coffea_sizing_state``),
called with ``client.sync(client.scheduler.<handler>, ...)``. A shared scheduler
has other users' clients on it, and run ids are public (they are in the task
keys), so a run is opened with a secret its client makes (32 hex digits): ending
a run or seeing it in ``state`` takes the secret, and nobody else's ``begin`` can
take it over. What the plugin holds stays bounded: run ids and secrets of one
form and size, at most ``MAX_RUNS_PER_CLIENT`` open runs per connected client,
none for clients the scheduler does not know. Runs end when their executor says
so or when their client leaves (``remove_client``). Unpacking and
assembling the records is the client's (:mod:`coffea_sizing.executor`); the record
format is :mod:`coffea_sizing.records`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from distributed.diagnostics.plugin import SchedulerPlugin

from ._version import __version__
from .records import WIRE_LAYOUT

if TYPE_CHECKING:
    from distributed import Client
    from distributed.scheduler import Scheduler

__all__ = ["SizingSchedulerPlugin", "scheduler_state"]

logger = logging.getLogger(__name__)

#: Op of the stream messages that carry joined records to a run's client.
TOPIC = "coffea-sizing-records"
#: Open runs a client may have at once (each executor call is one run).
MAX_RUNS_PER_CLIENT = 64
_RUN_ID = re.compile(r"[0-9a-f]{12}")
_SECRET = re.compile(r"[0-9a-f]{32}")
#: Key in a worker's ``TaskState.metadata`` under which a chunk task leaves its record.
META_KEY = "coffea-sizing"
#: Key prefix of chunk tasks: ``coffea-sizing-chunk-<run id>-<index>``.
CHUNK_PREFIX = "coffea-sizing-chunk"
#: Key prefix of reduction tasks: ``coffea-sizing-merge-<run id>-<level>-<index>``.
MERGE_PREFIX = "coffea-sizing-merge"
_PREFIX = "coffea-sizing-"
#: Op of the stream message in which a worker says it started a chunk or merge task.
STARTED = "coffea-sizing-started"
#: Longest a task waits for its start message to be written before it goes on.
START_TIMEOUT = 10.0
#: Longest a run's finished items wait on the scheduler to go out together (one
#: write to the client for many chunks instead of one each) ...
FLUSH_SECONDS = 0.1
#: ... or until this many wait; they go at once when none of the run's tasks is
#: left running (a run's end) and with an error.
FLUSH_ITEMS = 256
_HANDLERS = ("coffea_sizing_begin", "coffea_sizing_end", "coffea_sizing_state")


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


def _run_of(key: object) -> str | None:
    """The run id one of our keys names, else ``None`` (cheap: every transition).

    Both prefixes are 20 characters and run ids 12: ``key[20:32]``.
    """
    if type(key) is not str or not key.startswith(_PREFIX):
        return None
    if key[14:20] not in ("chunk-", "merge-") or len(key) < 34 or key[32] != "-":
        return None
    return key[20:32]


def _compute_window(startstops: Any) -> tuple[float | None, float | None]:
    start = stop = None
    for ss in startstops or ():
        try:
            if ss.get("action") == "compute":
                start, stop = float(ss["start"]), float(ss["stop"])
        except (AttributeError, KeyError, TypeError, ValueError):
            continue
    return start, stop


def _worker_memory(ws: Any) -> tuple[str | None, int | None, int | None]:
    """(address, last reported process memory, memory_limit) of a WorkerState."""
    if ws is None:
        return None, None, None
    metrics = getattr(ws, "metrics", None) or {}
    memory = metrics.get("memory") if isinstance(metrics, dict) else None
    limit = getattr(ws, "memory_limit", None) or None
    return (
        getattr(ws, "address", None),
        int(memory) if isinstance(memory, int | float) else None,
        int(limit) if limit else None,
    )


def _start_token(secret: str) -> str:
    """The token a run's tasks show with their start messages, made from its secret.

    The tasks carry it to the workers, where other code can read it; it proves only
    that a start belongs to the run, and cannot be turned back into the secret that
    ends the run or reads its state.

    Examples
    --------
    >>> from coffea_sizing.plugin import _start_token
    >>> token = _start_token("5ec2e7" * 5 + "00")
    >>> len(token), token == _start_token("0" * 32)
    (32, False)
    """
    mac = hmac.new(secret.encode(), b"coffea-sizing started", hashlib.sha256)
    return mac.hexdigest()[:32]


def _announce_start(token: str) -> None:
    """Say, from inside a chunk or merge task, that this worker started the task.

    The ``STARTED`` message is written straight onto the worker's stream to the
    scheduler (after the messages already written there, not batched) and the task
    waits until it has been handed to the connection (at most ``START_TIMEOUT`` s;
    the task goes on either way), so a worker that dies a moment later has told the
    scheduler first. Without a token (a scheduler plugin that takes no starts) or
    outside a Dask worker it does nothing; it never raises.

    Examples
    --------
    >>> from coffea_sizing.plugin import _announce_start
    >>> _announce_start("0" * 32)  # not in a worker: nothing
    """
    if not token:
        return
    try:
        from distributed import get_worker

        worker = get_worker()
        message = {"op": STARTED, "key": worker.get_current_task(), "token": token}
        if threading.get_ident() == worker.thread_id:  # on the event loop itself
            worker.batched_send(message)
            return
        future = asyncio.run_coroutine_threadsafe(
            _write_start(worker, message),
            worker.loop.asyncio_loop,  # type: ignore[attr-defined]
        )
    except Exception:  # the measuring never fails the analysis
        logger.debug("coffea-sizing could not announce a start", exc_info=True)
        return
    try:
        future.result(timeout=START_TIMEOUT)
    except Exception:  # a worker losing its scheduler: no start told
        future.cancel()
        logger.debug("coffea-sizing could not announce a start", exc_info=True)


async def _write_start(worker: Any, message: dict[str, Any]) -> None:
    stream = getattr(worker, "batched_stream", None)
    comm = getattr(stream, "comm", None)
    if comm is None or comm.closed():
        return
    await comm.write([message], on_error="raise")


@dataclass
class _Run:
    """What the scheduler holds for one run: its client and its tasks in flight."""

    run_id: str
    client: str
    #: the capability its client made: required to end it, sent with each item
    secret: str = ""
    #: what its tasks show with their start messages (``_start_token(secret)``)
    start_token: str = field(init=False, default="")
    #: starts its workers announced, of each task not yet finished
    attempts: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: the WorkerState running each task now
    running: dict[str, Any] = field(default_factory=dict)
    #: the WorkerState that announced the start of each running task (this time)
    started: dict[str, Any] = field(default_factory=dict)
    #: the WorkerState, lost, a task was given back from with no start from it
    cut: dict[str, Any] = field(default_factory=dict)
    #: (worker, its last memory, its memory_limit) for each worker lost under a task
    lost: dict[str, list[tuple[str | None, int | None, int | None]]] = field(
        default_factory=dict
    )
    #: finished tasks' items waiting to go out together (at most ``FLUSH_ITEMS``)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    #: the loop's timer that sends ``outbox`` (``FLUSH_SECONDS`` after its first item)
    timer: Any = None
    sent: int = 0
    peak: int = 0

    def __post_init__(self) -> None:
        self.start_token = _start_token(self.secret)

    def held(self) -> int:
        """Entries held now: tasks in flight, their lost workers, items waiting."""
        return len(self.attempts) + len(self.lost) + len(self.outbox)


class SizingSchedulerPlugin(SchedulerPlugin):
    """Joins per-task sizes on the scheduler for :class:`~coffea_sizing.SizingDaskExecutor` runs.

    Registered once per scheduler (``idempotent``), shared by every run and client.
    Each joined record goes to its run's client within ``FLUSH_SECONDS`` of its
    task's end, together with the others finished meanwhile; the plugin keeps only
    the tasks in flight and those waiting records (at most ``FLUSH_ITEMS`` a run).

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> from coffea_sizing.plugin import SizingSchedulerPlugin, _ensure_plugin
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
    ...     with Client(cluster) as client:
    ...         _ensure_plugin(client)
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
        # Handlers find the plugin registered now: one unregistered mid-run answers
        # "not registered" instead of a stale object answering for it.
        scheduler.handlers.update(
            {
                "coffea_sizing_begin": partial_handler(scheduler, "begin"),
                "coffea_sizing_end": partial_handler(scheduler, "end"),
                "coffea_sizing_state": partial_handler(scheduler, "state"),
            }
        )
        scheduler.stream_handlers[STARTED] = _started_handler(scheduler)

    # ------------------------------------------------------------ hooks
    def transition(
        self,
        key: Any,
        start: str,
        finish: str,
        *args: Any,  # noqa: ARG002 - hooks take whatever the scheduler passes
        **kwargs: Any,
    ) -> None:
        if finish != "processing" and start != "processing":
            return  # the transitions that matter start or end processing
        run_id = _run_of(key)
        if run_id is None:
            return
        run = self.runs.get(run_id)
        if run is None:
            return
        if finish == "processing":
            # given to a worker: an attempt only once that worker says it started
            run.attempts.setdefault(key, 0)
            ts = self.scheduler.tasks.get(key) if self.scheduler else None
            run.running[key] = getattr(ts, "processing_on", None)
            run.started.pop(key, None)
            run.peak = max(run.peak, len(run.attempts) + len(run.lost))
            return
        if start != "processing":
            return
        ws = run.running.pop(key, None)
        starter = run.started.pop(key, None)
        if finish == "memory":
            if starter is None:  # its result is the worker's word that it ran
                run.attempts[key] += 1
            self._finished(run, key, kwargs)
        elif finish == "erred":
            worker = kwargs.get("worker")
            if (
                starter is None
                and self.scheduler is not None
                and type(worker) is str
                and worker in self.scheduler.workers
            ):  # an error its worker reported (not a KilledWorker): it ran
                run.attempts[key] += 1
            self._erred(run, key, starter or ws, kwargs)
        elif self.scheduler is not None and (starter or ws) is not None:
            # back to waiting/released: was the worker it was given to lost?
            if getattr(starter or ws, "address", None) in self.scheduler.workers:
                return
            if starter is not None:  # it died in the task
                run.lost.setdefault(key, []).append(_worker_memory(starter))
            else:  # the task waited in its queue, or its start is still on the way
                run.cut[key] = ws

    def started(
        self, key: Any = None, token: Any = None, worker: Any = None, **other: Any
    ) -> None:
        """Worker ``worker`` says it started task ``key`` (a ``STARTED`` message).

        Counted only when it comes on a worker's stream (not a client's), shows the
        run's start token, and names one of the task's assignments by the scheduler:
        the task is processing on that very worker now and has not announced a
        start there yet; or the task was given back when that worker was removed,
        and this start was still on the dead worker's stream behind the news of its
        death (a nanny can report it first). So a start adds at most one attempt to
        each time the scheduler gave the task to a worker, and nothing to tasks not
        in flight; it creates no state.
        """
        if other or type(worker) is not str or type(token) is not str:
            return  # from a client's stream (``client=``), or another form
        run_id = _run_of(key)
        run = self.runs.get(run_id) if run_id is not None else None
        if run is None or self.scheduler is None:
            return
        if key not in run.running and key not in run.cut:
            return
        if not (
            len(token) == 32
            and _SECRET.fullmatch(token)
            and hmac.compare_digest(run.start_token, token)
        ):
            return
        ts = self.scheduler.tasks.get(key)
        ws = getattr(ts, "processing_on", None)
        if ws is not None and getattr(ws, "address", None) == worker:
            if key not in run.started:
                run.started[key] = run.running[key] = ws
                run.attempts[key] += 1
            return
        cut = run.cut.get(key)
        if (
            cut is not None
            and getattr(cut, "address", None) == worker
            and worker not in self.scheduler.workers
        ):
            del run.cut[key]
            run.attempts[key] += 1
            run.lost.setdefault(key, []).append(_worker_memory(cut))

    def _finished(self, run: _Run, key: str, kwargs: dict[str, Any]) -> None:
        metadata = kwargs.get("metadata")
        packed = metadata.get(META_KEY) if isinstance(metadata, dict) else None
        if packed is not None and self.scheduler is not None:
            ts = self.scheduler.tasks.get(key)
            if ts is not None and ts.metadata:
                ts.metadata.pop(META_KEY, None)  # the scheduler keeps nothing of it
        nbytes = kwargs.get("nbytes")
        worker = kwargs.get("worker")
        ws = self.scheduler.workers.get(str(worker)) if self.scheduler else None
        limit = getattr(ws, "memory_limit", None) or None
        cstart, cstop = _compute_window(kwargs.get("startstops"))
        self._send(
            run,
            key,
            {
                "record": packed,
                "task_nbytes": nbytes if type(nbytes) is int else None,
                "worker": worker,
                "worker_memory_limit": limit,
                "compute_start": cstart,
                "compute_stop": cstop,
            },
        )

    def _erred(self, run: _Run, key: str, ws: Any, kwargs: dict[str, Any]) -> None:
        text = kwargs.get("exception_text")
        if not text:
            exc = kwargs.get("exception")
            text = "KilledWorker" if isinstance(exc, bytes) else str(exc or "erred")
        address, memory, limit = _worker_memory(ws)
        self._send(
            run,
            key,
            {
                "error": str(text)[:2000],
                "worker": kwargs.get("worker") or address,
                "worker_memory": memory,
                "worker_memory_limit": limit,
            },
        )

    def _send(self, run: _Run, key: str, fields: dict[str, Any]) -> None:
        """Queue a finished task's item for the run's client and forget the task.

        Items go out together: ``FLUSH_SECONDS`` after the first one waiting, at
        ``FLUSH_ITEMS`` waiting, at once with an error or when none of the run's
        tasks is left running. Each is still its own message, as one item was.
        """
        item = {"run": run.run_id, "secret": run.secret, "key": key, **fields}
        item["attempts"] = run.attempts.pop(key, 0)
        run.cut.pop(key, None)
        lost = run.lost.pop(key, None)
        if lost:
            item["lost_workers"] = lost
        run.outbox.append(item)
        if len(run.outbox) >= FLUSH_ITEMS or not run.running or "error" in fields:
            self._flush(run)
        elif run.timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on the scheduler's loop (a direct call)
                self._flush(run)
                return
            run.timer = loop.call_later(FLUSH_SECONDS, self._flush, run)

    def _flush(self, run: _Run) -> None:
        """Send the run's waiting items to its client in one batch."""
        if run.timer is not None:
            run.timer.cancel()
            run.timer = None
        items, run.outbox = run.outbox, []
        if not items or self.scheduler is None:
            return
        comm = self.scheduler.client_comms.get(run.client)
        if comm is None:  # the client is gone: nobody wants this run
            self.runs.pop(run.run_id, None)
            return
        try:
            comm.send(*({"op": TOPIC, "item": item} for item in items))
        except Exception:  # noqa: BLE001 - a closing comm: remove_client drops the run
            logger.debug("coffea-sizing could not send to %s", run.client)
            return
        run.sent += len(items)

    def remove_client(self, scheduler: Scheduler, client: str, **kwargs: Any) -> None:  # noqa: ARG002
        for run_id in [r for r, run in self.runs.items() if run.client == client]:
            run = self.runs.pop(run_id)
            if run.timer is not None:
                run.timer.cancel()

    # ------------------------------------------------------------ handlers
    def begin(self, run_id: Any, client: Any, secret: Any) -> dict[str, Any]:
        """Open run ``run_id`` for ``client`` with ``secret`` (idempotent for the
        same three); say who answers.

        Raises
        ------
        ValueError
            A run id or secret of another form, a client this scheduler does not
            know, a run id already open with another secret, or a client with
            ``MAX_RUNS_PER_CLIENT`` runs open.
        """
        _check_form(run_id, secret)
        run = self.runs.get(run_id)
        if run is not None:
            if not (hmac.compare_digest(run.secret, secret) and run.client == client):
                raise ValueError(
                    f"coffea-sizing run {run_id} is already open (by another client "
                    "or with another secret); each run needs a new id"
                )
            return self._hello()
        known = self.scheduler.clients if self.scheduler is not None else {}
        if not isinstance(client, str) or client not in known:
            raise ValueError(
                f"coffea-sizing: no client {str(client)[:80]!r} is connected to this "
                "scheduler; a run is opened by its own connected client"
            )
        n_open = sum(1 for r in self.runs.values() if r.client == client)
        if n_open >= MAX_RUNS_PER_CLIENT:
            raise ValueError(
                f"coffea-sizing: client {client} already has {n_open} runs open on "
                f"this scheduler (at most {MAX_RUNS_PER_CLIENT}); a run ends when its "
                "executor call returns, so wait for running ones or end them"
            )
        self.runs[run_id] = _Run(run_id, client, secret)
        return self._hello()

    @staticmethod
    def _hello() -> dict[str, Any]:
        # ``starts``: this plugin counts the starts its runs' tasks announce (a plugin
        # of an older coffea-sizing left on a shared scheduler has no handler for them)
        return {"version": __version__, "layout": WIRE_LAYOUT, "starts": STARTED}

    def end(self, run_id: Any, secret: Any) -> dict[str, Any]:
        """Drop run ``run_id``: how much it held at most and how many items went out.

        A run that is not open (ended, or dropped with its client) answers with
        ``None`` s; an open run with another secret is refused (``PermissionError``).
        """
        _check_form(run_id, secret)
        run = self.runs.get(run_id)
        if run is not None and not hmac.compare_digest(run.secret, secret):
            raise PermissionError(
                f"coffea-sizing run {run_id} is open with another secret: only the "
                "client that opened it can end it"
            )
        if run is not None:
            self._flush(run)  # what is still waiting goes before the run ends
        self.runs.pop(run_id, None)
        return {
            "open_runs": len(self.runs),
            "peak": run.peak if run else None,
            "sent": run.sent if run else None,
        }

    def state(self, secrets: Any = None) -> dict[str, Any]:
        """What the plugin holds now: counts, and the ids of the open runs whose
        secret is in ``secrets`` (the caller's own runs; nobody else's)."""
        mine: list[str] = []
        if isinstance(secrets, list | tuple) and secrets:
            wanted = {s for s in secrets[:MAX_RUNS_PER_CLIENT] if isinstance(s, str)}
            mine = sorted(r for r, run in self.runs.items() if run.secret in wanted)
        return {
            "registered": True,
            "runs": mine,
            "open_runs": len(self.runs),
            "held": sum(r.held() for r in self.runs.values()),
        }


def _check_form(run_id: Any, secret: Any) -> None:
    """Refuse run ids and secrets that are not 12 and 32 lowercase hex digits."""
    if not (
        isinstance(run_id, str) and len(run_id) == 12 and _RUN_ID.fullmatch(run_id)
    ):
        raise ValueError(
            "coffea-sizing: a run id is 12 lowercase hex digits, got "
            f"{type(run_id).__name__} of length {len(run_id) if isinstance(run_id, str) else '?'}"
        )
    if not (
        isinstance(secret, str) and len(secret) == 32 and _SECRET.fullmatch(secret)
    ):
        raise ValueError(
            "coffea-sizing: a run's secret is 32 lowercase hex digits "
            "(secrets.token_hex(16))"
        )


def _started_handler(scheduler: Scheduler) -> Any:
    """The scheduler's stream handler of ``STARTED`` messages: passes them to the
    plugin registered now. Never raises (an exception in a stream handler would
    close the worker's connection)."""

    def handler(**kwargs: Any) -> None:
        try:
            plugin = scheduler.plugins.get(SizingSchedulerPlugin.name)
            if isinstance(plugin, SizingSchedulerPlugin):
                plugin.started(**kwargs)
        except Exception:  # see above: never raise
            logger.debug("coffea-sizing dropped a start message", exc_info=True)

    handler.__name__ = "coffea_sizing_started"
    return handler


def partial_handler(scheduler: Scheduler, method: str) -> Any:
    """A scheduler handler that calls ``method`` of the plugin registered now."""

    def handler(**kwargs: Any) -> Any:
        plugin = scheduler.plugins.get(SizingSchedulerPlugin.name)
        if not isinstance(plugin, SizingSchedulerPlugin):
            if method == "state":
                return {"registered": False, "runs": [], "open_runs": 0, "held": 0}
            raise RuntimeError(
                "the coffea-sizing scheduler plugin is no longer registered on this "
                "scheduler"
            )
        return getattr(plugin, method)(**kwargs)

    handler.__name__ = f"coffea_sizing_{method}"
    return handler


# ------------------------------------------------------------------ client side
def _ensure_plugin(client: Client) -> None:
    """Register :class:`SizingSchedulerPlugin` on the client's scheduler, once.

    Raises
    ------
    ModuleNotFoundError
        Saying that the scheduler is the side without coffea_sizing.
    """
    try:
        client.register_plugin(SizingSchedulerPlugin(), name=SizingSchedulerPlugin.name)
    except ModuleNotFoundError as err:
        address = getattr(client.scheduler, "address", "?")
        raise ModuleNotFoundError(
            f"the Dask scheduler at {address} cannot import coffea_sizing ({err}). "
            "SizingDaskExecutor runs a plugin on the scheduler: install "
            f"coffea-sizing=={__version__} in the scheduler's environment (and the "
            "workers'), or use coffea's DaskExecutor.",
            name=err.name,
        ) from None


def _call(client: Client, handler: str, **kwargs: Any) -> Any:
    """Call one of the plugin's scheduler handlers."""
    return client.sync(getattr(client.scheduler, handler), **kwargs)


def scheduler_state(client: Client) -> dict[str, Any]:
    """What the plugin holds now: ``registered``, this client's open ``runs``,
    ``held`` tasks.

    ``runs`` lists the open runs of this client's executors (the plugin shows other
    clients' runs to nobody); ``held`` counts the in-flight tasks the plugin tracks
    for all open runs; it is 0 between runs. Before the plugin was ever registered
    on this scheduler the answer is ``{"registered": False, "runs": [], "held": 0}``.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> from coffea_sizing.plugin import scheduler_state
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
    ...     with Client(cluster) as client:
    ...         scheduler_state(client)
    {'registered': False, 'runs': [], 'held': 0}
    """
    # the executor's handler of this client's items knows its open runs' secrets
    handler: Any = getattr(client, "_stream_handlers", {}).get(TOPIC)
    secrets = list(handler.secrets()) if hasattr(handler, "secrets") else []
    state = _call(client, "coffea_sizing_state", secrets=secrets)  # None: no handler
    if not state:
        return {"registered": False, "runs": [], "held": 0}
    return {
        "registered": state["registered"],
        "runs": list(state["runs"]),
        "held": state["held"],
    }

"""The per-chunk record: the one shape that crosses the wire.

A *chunk record* is a plain :class:`dict` of ``str``, ``int``, ``float``, ``bool``,
``None``, lists of ``str`` and one ``{branch: bytes}`` dict. Plain values are what
msgpack (Dask's event channel) and JSON carry, so a record means the same in the
``Runner`` report, in a table and in a CSV file.

On its way from the worker to the client a record travels *packed*
(:func:`pack_record`): msgpack bytes holding the values by position
(:data:`WIRE_FIELDS`), without the field names, without the chunk's identity (the
client knows which file and entries each task had), with ``columns_read`` left out
when it equals ``columns`` and with ``column_bytes`` as a list aligned with
``columns_read``. The scheduler keeps those bytes as they arrived, and the client
unpacks them (:func:`unpack_record`) into the full record. That is what keeps a
record under 1 KB on the wire and on the scheduler, whatever the length of the field
names.

This module defines the field names, packs and unpacks records and turns lists of
records into :class:`pandas.DataFrame` tables; it imports nothing else from the
package.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import msgpack

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CHUNK_FIELDS",
    "CLIENT_FIELDS",
    "FIELD_DOCS",
    "IDENTITY_FIELDS",
    "MERGE_FIELDS",
    "OUTPUT_KEY",
    "PHASE_FIELDS",
    "REPORT_KEY",
    "REPORT_MERGES_KEY",
    "REPORT_RUN_KEY",
    "TRACKED_FIELDS",
    "WIRE_FIELDS",
    "WIRE_LAYOUT",
    "WIRE_VERSION",
    "SizingWarning",
    "WireFormatError",
    "chunk_table",
    "drop_mistyped",
    "fields_markdown",
    "merge_table",
    "pack_record",
    "phase_gap",
    "phase_gap_limit",
    "plain_value",
    "unpack_record",
]


class SizingWarning(UserWarning):
    """Sizes could not be recorded (the run itself is not affected)."""


#: Key of the per-chunk records in a ``Runner`` report (``savemetrics=True``).
REPORT_KEY = "sizing"
#: Key of the per-reduction-task records in a ``Runner`` report.
REPORT_MERGES_KEY = "sizing_merges"
#: Key of the run's own bookkeeping in a ``Runner`` report: run id, record counts,
#: records that never arrived, seconds spent fetching them after the last task.
REPORT_RUN_KEY = "sizing_run"
#: Reserved key of the per-chunk records that ``@track_sizes`` puts in a processor's
#: (mapping) output under executors other than ``SizingDaskExecutor``.
OUTPUT_KEY = "@coffea_sizing"

#: The fields of a chunk record, in table order. The names are a contract.
CHUNK_FIELDS: tuple[str, ...] = (
    # identity
    "dataset",
    "filename",
    "treename",
    "entrystart",
    "entrystop",
    "entries",
    "key",
    "worker",
    "worker_memory_limit",
    "attempts",
    "skipped",
    "error",
    # input
    "bytesread",
    "read_requests",
    "readtime",
    "protocol",
    "columns",
    # time: the task's phases add up to walltime (see phase_gap)
    "processtime",
    "walltime",
    "cputime",
    "loadtime",
    "opentime",
    "buildtime",
    "outputtime",
    # output
    "output_pickled_bytes",
    "output_compressed_bytes",
    "task_nbytes",
    # memory
    "mem_peak_bytes",
    "mem_usage_bytes",
    "mem_shared",
    # what the scheduler saw and what the measuring cost
    "compute_start",
    "compute_stop",
    "sizing_overhead",
)

#: The fields ``@track_sizes`` adds to a chunk record, in table order
#: (see :mod:`coffea_sizing.decorator`).
TRACKED_FIELDS: tuple[str, ...] = (
    "bytesread_open",
    "bytesread_payload",
    "columns_read",
    "column_bytes",
    "process_walltime",
    "process_cputime",
    "process_mem_peak_bytes",
    "process_mem_usage_bytes",
    "process_mem_shared",
)

#: The fields of a merge (tree-reduction task) record, in table order.
MERGE_FIELDS: tuple[str, ...] = (
    "key",
    "level",
    "inputs",
    "nbytes",
    "worker",
    "walltime",
    "attempts",
    "compute_start",
    "compute_stop",
)

#: What each field means, in one place: the README's and the docs' tables and the
#: report's glossary are made from it (``fields_markdown``).
FIELD_DOCS: dict[str, str] = {
    "dataset": "the chunk's dataset, as named in the fileset",
    "filename": "the file the chunk was read from",
    "treename": "the tree (TTree or RNTuple) read",
    "entrystart": "first entry of the chunk",
    "entrystop": "one past the last entry of the chunk",
    "entries": "entries coffea processed in the chunk",
    "key": "the chunk's Dask task key (it names the run)",
    "worker": "the worker that produced the result",
    "worker_memory_limit": (
        "that worker's `memory_limit` as the scheduler knows it (bytes; None when "
        "the worker has none)"
    ),
    "attempts": (
        "how many times a worker started the task, by the workers' own word (retries "
        "and workers that died in it count; waiting in the queue of a worker that died "
        "does not)"
    ),
    "skipped": "True when coffea's `skipbadfiles` swallowed an error for the chunk",
    "error": (
        "the exception's text for a chunk that erred (rows of erred chunks are on a "
        "failed run's exception), else None"
    ),
    "bytesread": (
        "coffea's byte count for the chunk: `num_requested_bytes` of the file it "
        "opened, so it includes opening the file and reading the tree's metadata "
        "(every chunk re-opens its file)"
    ),
    "read_requests": (
        "requests the chunk's file source made (uproot's `num_requests`; the "
        "opening's two included): `bytesread / read_requests` bytes per request"
    ),
    "readtime": (
        "seconds the chunk's thread was blocked in the source's reads after the file "
        "was opened (the tree's metadata, preloaded columns, baskets); the opening's "
        "own reads are in `opentime` only. A part of opentime + buildtime + "
        "processtime, not a phase of its own"
    ),
    "protocol": "how the file was read, from its name: `file`, `root`, `https`, ...",
    "columns": "branches (fields) the chunk materialised",
    "processtime": "coffea's time of `process()` (seconds; a phase of `walltime`)",
    "walltime": (
        "the whole task, the measuring included (seconds): `loadtime + opentime + "
        "buildtime + processtime + outputtime + sizing_overhead` plus what no phase "
        "names (coffea's bookkeeping), which "
        "is at most 25 ms + 5% of `walltime`, stretched by `walltime / cputime` "
        "when the thread waited for a CPU (`phase_gap`, `phase_gap_limit`)"
    ),
    "cputime": "CPU time of the task's thread in coffea's work function (seconds)",
    "loadtime": (
        "decompressing and unpickling the processor, which coffea ships with every "
        "chunk (seconds; a worker's first chunk imports the processor's modules "
        "here)"
    ),
    "opentime": (
        "opening the file, reading the tree's metadata and closing the file, timed "
        "around `uproot.open`, the tree's lookup and the close in coffea's work "
        "function (seconds; over XRootD each is a round trip or more)"
    ),
    "buildtime": (
        "building NanoEvents: `NanoEventsFactory.from_root` (the schema, the form) "
        "and `events()`, timed there (seconds)"
    ),
    "outputtime": (
        "pickling and lz4-compressing the output in the task (seconds; 0 with "
        "`compression=None`: Dask pickles it after the task)"
    ),
    "output_pickled_bytes": "`len(pickle.dumps(output))` of the processor's output alone",
    "output_compressed_bytes": (
        'the lz4-compressed `{"out", "metrics", "processed"}` payload the task '
        "returned (None with `compression=None`)"
    ),
    "task_nbytes": (
        "the scheduler's `TaskState.nbytes` of the task: with compression it equals "
        "`output_compressed_bytes`; with `compression=None` it is `dask.sizeof` of a "
        "dict, which can be far from the pickled size"
    ),
    "mem_peak_bytes": (
        "the worker process's peak resident memory during the chunk (the kernel's "
        "`VmHWM`, reset at the chunk's start): the process's real peak with one "
        "thread per worker, mixed with the chunks beside it with several "
        "(`mem_shared`)"
    ),
    "mem_usage_bytes": (
        "how far that peak rose above the resident memory at the chunk's start: a "
        "lower bound of what the chunk allocated (memory the allocator re-used does "
        "not show)"
    ),
    "mem_shared": (
        "True when another chunk ran in the same worker process at the same time: "
        "the memory fields then mix both chunks"
    ),
    "compute_start": "start of the task's compute window on the worker (scheduler clock)",
    "compute_stop": "end of the task's compute window on the worker (scheduler clock)",
    "sizing_overhead": (
        "seconds the executor's measuring took in the task: timing coffea's work "
        "function, its probe around it, building the record, counting the pickled "
        "output (a part of `walltime`, so never more)"
    ),
    "bytesread_open": (
        "bytes already requested when `process()` starts: opening the file and "
        "reading the tree's metadata (`@track_sizes`)"
    ),
    "bytesread_payload": (
        "bytes requested during `process()`: the baskets (pages) of the columns "
        "touched (`@track_sizes`)"
    ),
    "columns_read": "columns `process()` read (`@track_sizes`)",
    "column_bytes": "payload bytes per column, from the file's metadata (`@track_sizes`)",
    "process_walltime": "wall time of `process()` alone (`@track_sizes`)",
    "process_cputime": "CPU time of `process()` alone (`@track_sizes`)",
    "process_mem_peak_bytes": (
        "peak resident memory during `process()` (`@track_sizes`; a bound as "
        "`mem_peak_bytes` is)"
    ),
    "process_mem_usage_bytes": (
        "rise of that peak over the start of `process()`: a lower bound (`@track_sizes`)"
    ),
    "process_mem_shared": "True when `process()` overlapped another chunk's (`@track_sizes`)",
    "level": "the reduction's level in coffea's tree (1: it merges chunk outputs)",
    "inputs": "how many outputs the reduction merged",
    "nbytes": "the scheduler's `TaskState.nbytes` of the merged output",
}


#: The phases of a chunk task of ``SizingDaskExecutor``, each timed where it
#: happens; with what no phase names they make up ``walltime`` (:func:`phase_gap`).
PHASE_FIELDS: tuple[str, ...] = (
    "loadtime",
    "opentime",
    "buildtime",
    "processtime",
    "outputtime",
    "sizing_overhead",
)
#: What no phase names may take at most: this many seconds ...
PHASE_GAP_SECONDS = 0.025
#: ... plus this fraction of ``walltime``.
PHASE_GAP_FRACTION = 0.05


def phase_gap(record: Mapping[str, Any]) -> float | None:
    """``walltime`` minus the sum of the phases: the time no phase names.

    It is coffea's bookkeeping around ``process()`` and the few statements between
    the clocks. The rule: ``0 <= gap <= PHASE_GAP_SECONDS +
    PHASE_GAP_FRACTION * walltime`` (``processtime`` is coffea's ``time.time()``
    difference, the others ``perf_counter``'s: the gap may dip a microsecond below
    0). ``None`` when a phase or ``walltime`` is missing (a skipped chunk, records
    of ``@track_sizes`` under another executor).

    Examples
    --------
    >>> from coffea_sizing.records import phase_gap
    >>> round(phase_gap({"walltime": 1.0, "loadtime": 0.0, "opentime": 0.1,
    ...                  "buildtime": 0.2,
    ...                  "processtime": 0.6, "outputtime": 0.05,
    ...                  "sizing_overhead": 0.001}), 3)
    0.049
    >>> phase_gap({"walltime": 1.0}) is None
    True
    """
    values: list[float] = []
    for name in ("walltime", *PHASE_FIELDS):
        value = record.get(name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        values.append(float(value))
    return values[0] - sum(values[1:])


def phase_gap_limit(record: Mapping[str, Any]) -> float:
    """The most :func:`phase_gap` may be for ``record``: ``PHASE_GAP_SECONDS +
    PHASE_GAP_FRACTION * walltime``, stretched by ``walltime / cputime`` when the
    task's thread waited for a CPU.

    On an oversubscribed machine (more busy threads than cores) every stretch of the
    task takes longer than its CPU time, the few statements between the clocks
    too; the stretch is the record's own measure of that wait (1 for a task that
    never waited: ``cputime`` equal to ``walltime``, or unknown).

    Examples
    --------
    >>> from coffea_sizing.records import phase_gap_limit
    >>> round(phase_gap_limit({"walltime": 1.0, "cputime": 1.0}), 3)
    0.075
    >>> round(phase_gap_limit({"walltime": 1.0, "cputime": 0.25}), 3)  # waited 3/4
    0.3
    """
    wall = float(record.get("walltime") or 0.0)
    cpu = record.get("cputime")
    stretch = 1.0
    if isinstance(cpu, int | float) and not isinstance(cpu, bool) and 0 < cpu < wall:
        stretch = wall / float(cpu)
    return (PHASE_GAP_SECONDS + PHASE_GAP_FRACTION * wall) * stretch


def fields_markdown(fields: Iterable[str]) -> str:
    """A Markdown table ``| field | meaning |`` of ``fields``, from :data:`FIELD_DOCS`.

    Examples
    --------
    >>> from coffea_sizing.records import fields_markdown
    >>> print(fields_markdown(["bytesread", "columns"]).splitlines()[3])
    | `columns` | branches (fields) the chunk materialised |
    """
    rows = ["| field | meaning |", "| --- | --- |"]
    rows += [f"| `{name}` | {FIELD_DOCS.get(name, '')} |" for name in fields]
    return "\n".join(rows)


_ANY_FIELDS = frozenset(CHUNK_FIELDS) | frozenset(MERGE_FIELDS)

#: The chunk's identity: the client fills it in from the task's work item.
IDENTITY_FIELDS: tuple[str, ...] = (
    "dataset",
    "filename",
    "treename",
    "entrystart",
    "entrystop",
)
#: What the client fills in: the chunk's identity (from the task's work item) and
#: what the scheduler saw. A worker does not send these.
CLIENT_FIELDS: tuple[str, ...] = (
    *IDENTITY_FIELDS,
    "key",
    "worker_memory_limit",
    "attempts",
    "error",
    "task_nbytes",
    "compute_start",
    "compute_stop",
)
#: Version of the packed form (its structure; the fields are checked by a hash).
WIRE_VERSION = 2
#: The fields a packed record carries by position, in this order: the chunk fields a
#: worker measures, then those of ``@track_sizes``. Any other field of a record
#: travels by name.
WIRE_FIELDS: tuple[str, ...] = (
    *(name for name in CHUNK_FIELDS if name not in CLIENT_FIELDS),
    *TRACKED_FIELDS,
)
#: A 64-bit hash of :data:`WIRE_FIELDS`, sent with every record: a worker and a client
#: whose field lists differ (two versions of coffea-sizing) notice it.
WIRE_LAYOUT = int.from_bytes(
    hashlib.blake2b(",".join(WIRE_FIELDS).encode(), digest_size=8).digest(), "big"
)
_LAYOUT = WIRE_LAYOUT
_WIRE_INDEX = {name: i for i, name in enumerate(WIRE_FIELDS)}
#: ``columns_read`` packed as this value: the same list as ``columns``.
_SAME_AS_COLUMNS = True
#: Marks a field whose value goes by name (see ``_pack_value``).
_BY_NAME = object()


class WireFormatError(ValueError):
    """Bytes that :func:`unpack_record` cannot read as a packed chunk record."""


def pack_record(record: Mapping[str, Any]) -> bytes:
    """The record as it travels from the worker to the client: compact msgpack bytes.

    Fields in :data:`WIRE_FIELDS` go by position, with a bit mask of those present
    (a record without the ``@track_sizes`` fields does not gain them as ``None``);
    any other field goes by name. ``columns_read`` equal to ``columns`` is sent as a
    flag and ``column_bytes`` as a list aligned with ``columns_read``.
    :func:`unpack_record` gives the record back, equal to the one packed.

    Parameters
    ----------
    record : mapping
        A chunk record of plain values (see :func:`plain_value`).

    Returns
    -------
    bytes

    Raises
    ------
    TypeError
        If a value is not plain (msgpack cannot carry it).

    Examples
    --------
    >>> from coffea_sizing.records import pack_record, unpack_record
    >>> rec = {"bytesread": 336624, "columns": ["Jet_pt", "nJet"],
    ...        "columns_read": ["Jet_pt", "nJet"],
    ...        "column_bytes": {"Jet_pt": 4634, "nJet": 2101}, "walltime": 0.5}
    >>> packed = pack_record(rec)
    >>> unpack_record(packed) == rec
    True
    >>> import msgpack
    >>> len(packed), len(msgpack.packb(rec))
    (53, 113)
    """
    mask = 0
    values: list[Any] = []
    extras: dict[str, Any] = {}
    present = sorted(
        (_WIRE_INDEX[name], name) for name in record if name in _WIRE_INDEX
    )
    for index, name in present:
        packed = _pack_value(name, record[name], record)
        if packed is _BY_NAME:
            extras[name] = record[name]
        else:
            mask |= 1 << index
            values.append(packed)
    for name, value in record.items():
        if name not in _WIRE_INDEX:
            extras[str(name)] = value
    try:
        return msgpack.packb(
            [WIRE_VERSION, _LAYOUT, mask, values, extras], use_bin_type=True
        )
    except (TypeError, ValueError, OverflowError) as err:
        bad = sorted(name for name, value in record.items() if not _msgpackable(value))
        raise TypeError(
            f"chunk record fields {bad or '?'} are not plain values: {err}"
        ) from err


def _pack_value(name: str, value: Any, record: Mapping[str, Any]) -> Any:
    """The value in its positional slot, or ``_BY_NAME``: send it by name, as is.

    ``columns_read`` has a slot only when it equals ``columns`` (the slot then holds
    ``True``), ``column_bytes`` only when its keys are ``columns_read`` in order
    (the slot holds the values): each slot holds only its encoded form, so unpacking
    is never ambiguous.
    """
    if name == "columns_read":
        columns = record.get("columns")
        same = (
            isinstance(value, list) and isinstance(columns, list) and value == columns
        )
        return _SAME_AS_COLUMNS if same else _BY_NAME
    if name == "column_bytes":
        names = record.get("columns_read")
        aligned = (
            isinstance(value, Mapping)
            and isinstance(names, list)
            and list(value) == names
        )
        return list(value.values()) if aligned else _BY_NAME
    return value


def _msgpackable(value: Any) -> bool:
    try:
        msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def unpack_record(packed: bytes) -> dict[str, Any]:
    """The record :func:`pack_record` packed.

    Parameters
    ----------
    packed : bytes
        What :func:`pack_record` returned (on any machine with the same
        :data:`WIRE_VERSION`).

    Returns
    -------
    dict
        The record, fields in :data:`WIRE_FIELDS` order, then the others.

    Raises
    ------
    WireFormatError
        If ``packed`` is not a packed record, or was packed by a coffea-sizing with
        another :data:`WIRE_VERSION` (install the same version on the client and
        the workers).

    Examples
    --------
    >>> from coffea_sizing.records import pack_record, unpack_record
    >>> unpack_record(pack_record({"entrystart": 0, "bytesread": 527, "skipped": False}))
    {'skipped': False, 'bytesread': 527, 'entrystart': 0}
    """
    if not isinstance(packed, bytes | bytearray | memoryview):
        raise WireFormatError(
            f"expected the bytes of a packed chunk record, got {type(packed).__name__}"
            " (was the worker running another version of coffea-sizing?)"
        )
    try:
        data = msgpack.unpackb(packed, raw=False, use_list=True, strict_map_key=False)
    except Exception as err:
        raise WireFormatError(f"not a packed chunk record: {err}") from err
    if not isinstance(data, list) or len(data) != 5 or data[0] != WIRE_VERSION:
        version = data[0] if isinstance(data, list) and data else None
        raise WireFormatError(
            f"a chunk record packed in wire format {version!r}; this coffea-sizing "
            f"reads format {WIRE_VERSION}. Install the same coffea-sizing version on "
            "the client and the workers."
        )
    _, layout, mask, values, extras = data
    if layout != _LAYOUT:
        raise WireFormatError(
            f"a chunk record packed with other fields (layout {layout!r}, here "
            f"{_LAYOUT}): the worker runs another version of coffea-sizing. Install "
            "the same coffea-sizing version on the client and the workers."
        )
    if (
        not isinstance(mask, int)
        or mask < 0
        or mask >> len(WIRE_FIELDS)
        or not isinstance(values, list)
        or not isinstance(extras, dict)
    ):
        raise WireFormatError("a malformed packed chunk record")
    names = _names_of(mask)
    if len(names) != len(values):
        raise WireFormatError("a malformed packed chunk record")
    record = dict(zip(names, values, strict=True))
    if "columns_read" in record:
        columns = record.get("columns")
        if record["columns_read"] is not _SAME_AS_COLUMNS or not isinstance(
            columns, list
        ):
            raise WireFormatError("columns_read packed without its columns")
        record["columns_read"] = list(columns)
    if "column_bytes" in record:
        column_bytes = record["column_bytes"]
        read = record.get("columns_read", extras.get("columns_read"))
        if (
            not isinstance(column_bytes, list)
            or not isinstance(read, list)
            or len(read) != len(column_bytes)
        ):
            raise WireFormatError("column_bytes packed without its columns_read")
        record["column_bytes"] = dict(zip(read, column_bytes, strict=True))
    if not extras:
        return record  # already in WIRE_FIELDS order
    record.update(extras)
    # wire fields in WIRE_FIELDS order, wherever they travelled; then the others
    ordered = {name: record.pop(name) for name in WIRE_FIELDS if name in record}
    ordered.update(record)
    return ordered


_INT_FIELDS = frozenset(
    {
        "entries",
        "bytesread",
        "read_requests",
        "output_pickled_bytes",
        "output_compressed_bytes",
        "mem_peak_bytes",
        "mem_usage_bytes",
        "bytesread_open",
        "bytesread_payload",
        "process_mem_peak_bytes",
        "process_mem_usage_bytes",
        "process_output_pickled_bytes",
    }
)
_FLOAT_FIELDS = frozenset(
    {
        "loadtime",
        "opentime",
        "buildtime",
        "outputtime",
        "readtime",
        "processtime",
        "walltime",
        "cputime",
        "sizing_overhead",
        "process_walltime",
        "process_cputime",
    }
)
_BOOL_FIELDS = frozenset({"skipped", "mem_shared", "process_mem_shared"})
_STR_LIST_FIELDS = frozenset({"columns", "columns_read"})
_STR_FIELDS = frozenset({"protocol"})


def _well_typed(name: str, value: Any) -> bool:
    if value is None:
        return True
    if name in _INT_FIELDS:
        return isinstance(value, int) and not isinstance(value, bool)
    if name in _FLOAT_FIELDS:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name in _BOOL_FIELDS:
        return isinstance(value, bool)
    if name in _STR_FIELDS:
        return isinstance(value, str)
    if name in _STR_LIST_FIELDS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if name == "column_bytes":
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
            for k, v in value.items()
        )
    return True


def drop_mistyped(record: dict[str, Any]) -> list[str]:
    """Set every field whose value has the wrong type to ``None``; name them.

    A worker running other code (or a record forged on its way) cannot then make a
    sum over a table fail later: the field is unknown, and the caller warns.

    Examples
    --------
    >>> from coffea_sizing.records import drop_mistyped
    >>> rec = {"bytesread": "336624", "walltime": 0.5, "columns": ["Jet_pt", 3]}
    >>> drop_mistyped(rec), rec
    (['bytesread', 'columns'], {'bytesread': None, 'walltime': 0.5, 'columns': None})
    """
    bad = [name for name, value in record.items() if not _well_typed(name, value)]
    for name in bad:
        record[name] = None
    return bad


@functools.lru_cache(maxsize=256)
def _names_of(mask: int) -> tuple[str, ...]:
    """The fields a mask says are present (few masks occur: they are cached)."""
    return tuple(name for i, name in enumerate(WIRE_FIELDS) if mask >> i & 1)


def _records_from(obj: Any, key: str) -> list[Mapping[str, Any]]:
    """Find the list of records in a report, a list of records or a DataFrame.

    Chunk records (``key == REPORT_KEY``) are also found in a processor's output
    under :data:`OUTPUT_KEY`, and in a ``Runner``'s ``(output, report)`` pair.
    """
    if obj is None:
        return []
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # a table already
        return [
            {name: _cell(value) for name, value in row.items()}
            for row in obj.to_dict("records")
        ]
    chunks = key == REPORT_KEY
    if (
        isinstance(obj, tuple)
        and len(obj) == 2
        and all(isinstance(part, Mapping) for part in obj)
        and (key in obj[1] or (chunks and OUTPUT_KEY in obj[0]))
    ):
        output, report = obj  # what Runner(..., savemetrics=True) returns
        return _records_from(report if key in report else output, key)
    if isinstance(obj, Mapping):
        if key in obj:
            found = obj[key]
            return [] if found is None else list(found)
        if chunks and OUTPUT_KEY in obj:
            found = obj[OUTPUT_KEY]
            return [] if found is None else list(found)
        if _ANY_FIELDS.intersection(obj):
            return [obj]  # a single record
        raise KeyError(
            f"no {key!r} records in this mapping (keys: {sorted(map(str, obj))[:12]}). "
            "Pass the report of a Runner with savemetrics=True and "
            "executor=SizingDaskExecutor(...), the output of a processor decorated "
            "with @track_sizes, or a list of records."
        )
    if isinstance(obj, str | bytes):
        raise TypeError(
            f"expected a report or a list of records, got {type(obj).__name__}"
        )
    if isinstance(obj, Iterable):
        out = list(obj)
        for i, rec in enumerate(out):
            if not isinstance(rec, Mapping):
                raise TypeError(
                    f"record {i} is a {type(rec).__name__}, expected a mapping"
                )
        return out
    raise TypeError(f"expected a report or a list of records, got {type(obj).__name__}")


def _columnar(obj: Any) -> Any:
    """The chunk records held column-wise in ``obj`` (a report, the pair, or the
    records themselves: :class:`coffea_sizing.columnar.ChunkRecords`), or ``None``.

    Recognised by their ``to_frame`` and ``has`` methods: this module imports
    nothing from the package.
    """
    if isinstance(obj, tuple) and len(obj) == 2 and isinstance(obj[1], Mapping):
        obj = obj[1]
    if isinstance(obj, Mapping):
        obj = obj.get(REPORT_KEY)
    if hasattr(obj, "to_frame") and hasattr(obj, "has") and hasattr(obj, "to_arrow"):
        return obj
    return None


def _table(records: list[Mapping[str, Any]], fields: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

    extra: list[str] = []
    seen = set(fields)
    for rec in records:
        for name in rec:
            if name not in seen:
                seen.add(name)
                extra.append(name)
    columns = list(fields) + extra
    rows = [[_cell(rec.get(name)) for name in columns] for rec in records]
    return pd.DataFrame(rows, columns=columns)


def plain_value(value: Any) -> Any:
    """``value`` as a plain record value: None, bool, int, float or str.

    numpy integers become ``int``; anything else that is not plain becomes ``str``.

    Examples
    --------
    >>> import numpy as np
    >>> from coffea_sizing.records import plain_value
    >>> plain_value(np.int64(7)), plain_value(b"x"), plain_value(None)
    (7, "b'x'", None)
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value)


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def chunk_table(report: Any) -> pd.DataFrame:
    """One row per processed chunk.

    Parameters
    ----------
    report : mapping, tuple, list of mappings, or None
        The report returned by ``Runner`` (``savemetrics=True``) with a
        :class:`~coffea_sizing.SizingDaskExecutor`, or its ``report["sizing"]`` list;
        the output of a processor decorated with :func:`~coffea_sizing.track_sizes`
        run by any other executor (its records under the ``"@coffea_sizing"`` key);
        the ``(output, report)`` pair (the report's records first); or any list of
        chunk records.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`CHUNK_FIELDS` first, in that order, then any extra fields the
        records carry. An empty report gives an empty table with those columns.
        Records of ``@track_sizes`` under an executor other than
        ``SizingDaskExecutor`` leave out the fields only that executor fills
        (``key``, ``worker``, ``task_nbytes``, ``walltime``, ...; see the docs'
        table of columns per executor).

    Raises
    ------
    KeyError
        When a mapping holds no ``"sizing"`` (or ``"@coffea_sizing"``) records (e.g.
        ``savemetrics=False`` or a plain ``DaskExecutor`` and no ``@track_sizes``).

    Examples
    --------
    >>> from coffea_sizing import chunk_table
    >>> df = chunk_table([{"filename": "a.root", "entrystart": 0, "entrystop": 10,
    ...                    "bytesread": 1234}])
    >>> int(df.loc[0, "bytesread"])
    1234
    >>> list(df.columns[:3])
    ['dataset', 'filename', 'treename']
    >>> output = {"nevents": 10, "@coffea_sizing": [{"entrystart": 0, "bytesread": 527}]}
    >>> int(chunk_table(output).loc[0, "bytesread"])
    527
    """
    held = _columnar(report)
    if held is not None:
        table = held.to_frame(CHUNK_FIELDS)
        if held.has("process_walltime", every=True) and not any(
            held.has(name) for name in _EXECUTOR_ONLY
        ):
            table = table.drop(
                columns=[c for c in _EXECUTOR_ONLY if c in table.columns]
            )
        return table
    records = _records_from(report, REPORT_KEY)
    table = _table(records, CHUNK_FIELDS)
    if (
        records
        and all("process_walltime" in rec for rec in records)
        and not any(name in rec for rec in records for name in _EXECUTOR_ONLY)
    ):
        # records of @track_sizes under another executor (Iterative, Futures, ...):
        # the fields only SizingDaskExecutor fills are left out, not shown as None
        table = table.drop(columns=[c for c in _EXECUTOR_ONLY if c in table.columns])
    return table


#: Chunk fields only :class:`~coffea_sizing.SizingDaskExecutor` fills (its task, its
#: scheduler plugin); records of ``@track_sizes`` under any other executor have none
#: of them, and :func:`chunk_table` leaves them out.
_EXECUTOR_ONLY: tuple[str, ...] = tuple(
    name
    for name in CHUNK_FIELDS
    if name not in IDENTITY_FIELDS
    and name not in ("entries", "bytesread", "output_pickled_bytes")
)


def merge_table(report: Any) -> pd.DataFrame:
    """One row per tree-reduction (merge) task.

    Parameters
    ----------
    report : mapping, list of mappings, or None
        A ``Runner`` report with ``"sizing_merges"``, or that list itself.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`MERGE_FIELDS` first, then any extra fields.

    Examples
    --------
    >>> from coffea_sizing import merge_table
    >>> merge_table({"sizing_merges": [{"key": "m-0", "inputs": 20, "nbytes": 900}]})[
    ...     ["key", "inputs", "nbytes"]]
       key  inputs  nbytes
    0  m-0      20     900
    """
    return _table(_records_from(report, REPORT_MERGES_KEY), MERGE_FIELDS)

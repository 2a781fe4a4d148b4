"""The per-chunk record: the one shape that crosses the wire.

A *chunk record* is a plain :class:`dict` of ``str``, ``int``, ``float``, ``bool``,
``None`` and lists of ``str``. Plain values are what msgpack (Dask's event channel)
and JSON carry, so a record looks the same on the worker that measured it, on the
scheduler that joined it with ``TaskState.nbytes``, in the ``Runner`` report and in a
CSV file. This module only defines the field names and turns lists of records into
:class:`pandas.DataFrame` tables; it imports nothing else from the package.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CHUNK_FIELDS",
    "MERGE_FIELDS",
    "OUTPUT_KEY",
    "REPORT_KEY",
    "REPORT_MERGES_KEY",
    "REPORT_RUN_KEY",
    "SizingWarning",
    "chunk_table",
    "merge_table",
    "plain_value",
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
    "attempts",
    "skipped",
    # input
    "bytesread",
    "columns",
    # time
    "processtime",
    "walltime",
    "cputime",
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

_ANY_FIELDS = frozenset(CHUNK_FIELDS) | frozenset(MERGE_FIELDS)


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
    return _table(_records_from(report, REPORT_KEY), CHUNK_FIELDS)


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

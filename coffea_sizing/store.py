"""Saved records: a run's chunk and merge records in one Parquet file, and back.

Covers :func:`save_records` (Parquet, with the run's context, the merge records and
the run's bookkeeping as JSON in the file's schema metadata, and a CSV next to it for
people) and :func:`load_records` (the report-shaped mapping back, equal to the one
saved). Does not analyse anything (:mod:`coffea_sizing.advise`) or format tables
(:mod:`coffea_sizing.plot`). Imports only :mod:`coffea_sizing.records` and
:mod:`coffea_sizing.columnar` from the package.

Every record field is one Parquet column, written from the records' columns
(:class:`~coffea_sizing.columnar.ChunkRecords`) and read back into them without a
dict per chunk; a field whose values pyarrow cannot type (the ``column_bytes`` dict)
is a JSON string column, named in the metadata; a record that lacks a field another
record has gets it listed in a hidden ``_absent`` column, so loading gives back the
same keys.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping
from importlib import metadata as _metadata
from pathlib import Path
from typing import Any

from .columnar import ChunkRecords
from .records import (
    REPORT_KEY,
    REPORT_MERGES_KEY,
    REPORT_RUN_KEY,
    _columnar,
    _records_from,
)

__all__ = ["CONTEXT_KEY", "RecordsFileError", "load_records", "save_records"]

#: Key of the run's context (versions, cluster shape, ...) in a loaded report.
CONTEXT_KEY = "sizing_context"
_META_KEY = b"coffea_sizing"
_FORMAT = 1
_ABSENT = "_absent"


class RecordsFileError(ValueError):
    """A file that is not records saved by :func:`save_records`."""


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("coffea-sizing", "coffea", "dask", "distributed", "uproot", "awkward"):
        try:
            out[name] = _metadata.version(name)
        except _metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _default_context(chunks: ChunkRecords) -> dict[str, Any]:
    limits = {
        str(worker): limit
        for worker, limit in chunks.last_by("worker", "worker_memory_limit")
        if worker
    }
    workers = sorted(limits)
    entries = [e for e in chunks.distinct("entries") if type(e) is int]
    return {
        "versions": _versions(),
        "datasets": sorted({str(d) for d in chunks.distinct("dataset")}),
        "workers": len(workers),
        "worker_memory_limits": limits,
        "max_entries_per_chunk": max(entries) if entries else None,
    }


def save_records(
    report: Any,
    path: str | os.PathLike[str],
    *,
    context: Mapping[str, Any] | None = None,
    csv: bool = True,
) -> Path:
    """Write a run's records to a Parquet file (and a CSV next to it).

    Parameters
    ----------
    report : mapping, tuple, list or DataFrame
        Anything :func:`~coffea_sizing.chunk_table` takes: a ``Runner`` report, a
        decorated processor's output, a list of records or a chunk table. Merge
        records and ``"sizing_run"`` are kept when ``report`` has them.
    path : str or os.PathLike
        The Parquet file to write (parent directories are created). A path ending
        in ``.csv`` is refused (``ValueError``) before anything is written: the
        CSV goes next to the Parquet file.
    context : mapping, optional
        More of the run's context to keep (chunk size, threads per worker, ...);
        JSON-serialisable. Versions, datasets, workers and their memory limits are
        always added.
    csv : bool, optional
        Also write the chunk records as ``path`` with the suffix ``.csv``.
        Default True.

    Returns
    -------
    pathlib.Path
        The Parquet file.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from coffea_sizing.store import load_records, save_records
    >>> rec = {"dataset": "tt", "entrystart": 0, "entrystop": 10, "bytesread": 527,
    ...        "columns": ["nJet"], "column_bytes": {"nJet": 12}}
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.parquet"
    >>> _ = save_records({"sizing": [rec]}, path, context={"chunksize": 10})
    >>> loaded = load_records(path)
    >>> loaded["sizing"] == [rec], loaded["sizing_context"]["chunksize"]
    (True, 10)
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if Path(path).suffix.lower() == ".csv":
        raise ValueError(
            f"{path}: save_records writes a Parquet file (and a CSV next to it); "
            "give the path of the Parquet file, e.g. "
            f"{Path(path).with_suffix('.parquet')}"
        )
    chunks = _columnar(report)
    if chunks is None:
        chunks = ChunkRecords.from_records(_records_from(report, REPORT_KEY))
    merges: list[dict[str, Any]] = []
    run: Any = None
    if isinstance(report, tuple) and len(report) == 2:
        report = report[1]
    if isinstance(report, Mapping):
        if REPORT_MERGES_KEY in report:
            merges = [dict(m) for m in report[REPORT_MERGES_KEY] or ()]
        run = report.get(REPORT_RUN_KEY)
        if CONTEXT_KEY in report and context is None:
            context = report[CONTEXT_KEY]
    fields, arrays, json_fields, absent = chunks.to_arrow()
    names = list(fields)
    if absent is not None:
        arrays.append(absent)
        names.append(_ABSENT)
    full_context = _default_context(chunks)
    full_context.update(dict(context or {}))
    meta = {
        "format": _FORMAT,
        "fields": fields,
        "json_fields": json_fields,
        "merges": merges,
        "run": run,
        "context": full_context,
    }
    try:
        text = json.dumps(meta)
    except TypeError as err:
        raise TypeError(f"the run's context is not JSON-serialisable: {err}") from err
    table = pa.Table.from_arrays(arrays, names=names) if names else pa.table({})
    table = table.replace_schema_metadata({_META_KEY: text.encode()})
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    if csv:
        from .records import chunk_table

        chunk_table(chunks).to_csv(out.with_suffix(".csv"), index=False)
    return out


def load_records(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The records :func:`save_records` wrote, as a report-shaped mapping.

    Parameters
    ----------
    path : str or os.PathLike
        A Parquet file written by :func:`save_records`.

    Returns
    -------
    dict
        ``{"sizing": chunk records, "sizing_merges": [merge records],
        "sizing_run": ..., "sizing_context": {...}}``: what
        :func:`~coffea_sizing.chunk_table`, :func:`~coffea_sizing.merge_table` and
        :func:`~coffea_sizing.advise` take. The records equal those saved.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    RecordsFileError
        If the file is not Parquet, not written by :func:`save_records`, or its
        metadata is damaged (one line naming the file).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no such records file: {file}")
    try:
        schema = pq.read_schema(file)
        # text of a few distinct values (files, datasets, workers) read as pyarrow
        # dictionaries: no string per row; keys and JSON text as they are
        coded = [
            field.name
            for field in schema
            if pa.types.is_string(field.type)
            and field.name not in (_ABSENT, "key", "column_bytes")
        ]
        table = pq.read_table(file, read_dictionary=coded).unify_dictionaries()
    except (pa.ArrowInvalid, OSError) as err:
        raise RecordsFileError(
            f"{file}: not a Parquet file of records ({err}); save records with "
            "coffea_sizing.save_records or `coffea-sizing run`"
        ) from err
    raw = (table.schema.metadata or {}).get(_META_KEY)
    if raw is None:
        raise RecordsFileError(
            f"{file}: a Parquet file without coffea-sizing metadata; save records "
            "with coffea_sizing.save_records or `coffea-sizing run`"
        )
    try:
        meta = json.loads(raw)
    except ValueError as err:
        raise RecordsFileError(
            f"{file}: its coffea-sizing metadata is not JSON ({err}); the file was "
            "damaged or not written by save_records"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise RecordsFileError(
            f"{file}: records format {found!r}, this coffea-sizing reads format "
            f"{_FORMAT}"
        )
    try:
        return _read_table(table, meta)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise RecordsFileError(
            f"{file}: its coffea-sizing metadata does not match its columns "
            f"({type(err).__name__}: {str(err)[:200]}); the file was damaged or "
            "edited after save_records wrote it"
        ) from None


def _read_table(table: Any, meta: dict[str, Any]) -> dict[str, Any]:
    fields = [str(name) for name in meta["fields"]]
    json_fields = {str(name) for name in meta["json_fields"]}
    chunks = ChunkRecords.from_arrow(table, fields, json_fields, _ABSENT)
    merges, run, context = meta["merges"], meta["run"], meta["context"]
    if not isinstance(merges, list) or not isinstance(context, dict):
        raise TypeError("merges must be a list and context a mapping")
    return {
        REPORT_KEY: chunks,
        REPORT_MERGES_KEY: merges,
        REPORT_RUN_KEY: run,
        CONTEXT_KEY: context,
    }

#!/usr/bin/env python
"""What the client holds and how fast it turns records into tables, at 10^4-10^6 chunks.

Usage::

    python benchmarks/bench_records.py                        # 10^4, 10^5, 10^6; 3 repeats
    python benchmarks/bench_records.py --quick                # 10^3, 10^4; 1 repeat
    python benchmarks/bench_records.py --sizes 10000,100000 --repeats 5 --out r.json

Real records first: a small run (``Runner``, ``SizingDaskExecutor``, a
``@track_sizes`` ``BranchSweepProcessor(3)`` on the ttbar file, 8 chunks, a
``LocalCluster`` in this process) whose items, as the client received them from the
scheduler (the packed record and what the scheduler saw), are kept. They are then
repeated to N chunks with varied keys and values (bytes, times, memory, entry
ranges, workers, files) and fed, one decoded stream message at a time, to the client
side, in two designs measured in the same process, rotated per round:

new
    ``executor._Collector`` of this tree: every item joined into
    :class:`coffea_sizing.columnar.ChunkRecords` on arrival; ``chunk_table`` and
    ``save_records``/``load_records`` read the columns.
old
    TODAY'S DESIGN (main at 0285a70), copied below under ``# ---- old design``: the
    items kept as they arrived, joined into one dict per chunk at the end, a list of
    dicts as ``report["sizing"]``; ``chunk_table`` from the list of dicts; the old
    ``save_records``/``load_records`` (a Python list per column, a dict per row).

Per design and N: bytes per chunk held by the report once built (tracemalloc, in a
pass of its own: it slows the timed passes), the time to receive the items and build
the report, ``chunk_table``, ``save_records`` (``csv=False``; the CSV for people is
timed apart, once) and ``load_records``. Medians and ranges (min-max) of the repeats;
the load average is printed with the results. Targets (issue 23): <= 250 B per chunk
held at 10^6, ``chunk_table`` of 10^6 <= 1 s, save + load of 10^6 <= 3 s.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import pathlib
import statistics
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import msgpack

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from coffea_sizing import executor as ex
from coffea_sizing.plugin import chunk_key
from coffea_sizing.records import (
    _EXECUTOR_ONLY,
    CHUNK_FIELDS,
    REPORT_KEY,
    REPORT_MERGES_KEY,
    REPORT_RUN_KEY,
    _records_from,
    _table,
    chunk_table,
    pack_record,
    unpack_record,
)
from coffea_sizing.store import load_records, save_records

TARGET_BYTES = 250
TARGET_TABLE_S = 1.0
TARGET_SAVE_LOAD_S = 3.0


# --------------------------------------------------------------- real records
def real_items() -> tuple[list[dict[str, Any]], list[Any]]:
    """The items a real run's client received, and the run's work items."""
    from coffea import processor
    from distributed import Client, LocalCluster

    from coffea_sizing import SizingDaskExecutor, track_sizes
    from coffea_sizing.datasets import ttbar_path
    from coffea_sizing.sweep import BranchSweepProcessor, SweepSchema

    seen: list[dict[str, Any]] = []
    workitems: list[Any] = []
    add, init = ex._Collector.add, ex._Collector.__init__

    def spy_add(self: Any, item: dict[str, Any]) -> None:
        if item.get("key") in self.items:
            seen.append(dict(item))
        add(self, item)

    def spy_init(
        self: Any, run_id: str, keys: Any, items: Any, *a: Any, **k: Any
    ) -> None:
        workitems[:] = list(items)
        init(self, run_id, keys, items, *a, **k)

    ex._Collector.add, ex._Collector.__init__ = spy_add, spy_init  # type: ignore[method-assign]
    try:
        with (
            LocalCluster(
                n_workers=2, threads_per_worker=1, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            runner = processor.Runner(
                executor=SizingDaskExecutor(client=client, status=False),
                savemetrics=True,
                schema=SweepSchema,
                chunksize=25,
            )
            runner(
                {"ttbar": [ttbar_path()]},
                treename="Events",
                processor_instance=track_sizes(BranchSweepProcessor)(3),
            )
    finally:
        ex._Collector.add, ex._Collector.__init__ = add, init  # type: ignore[method-assign]
    return seen, workitems


def varied(
    items: list[dict[str, Any]], workitems: list[Any], n: int, run_id: str
) -> tuple[list[str], list[Any], list[bytes]]:
    """``n`` chunks: keys, work items and the stream messages (msgpack bytes) that
    carry their items, the real ones repeated with varied values."""
    from coffea.processor.executor import WorkItem

    keys = [chunk_key(run_id, i) for i in range(n)]
    base = [unpack_record(item["record"]) for item in items]
    messages: list[bytes] = []
    chunks: list[Any] = []
    files = [
        f"root://eos.example//store/file_{j:04d}.root" for j in range(n // 1000 + 1)
    ]
    for i in range(n):
        k = i % len(items)
        record = dict(base[k])
        scale = 1 + (i % 997) / 997
        for name in (
            "walltime",
            "cputime",
            "processtime",
            "loadtime",
            "opentime",
            "buildtime",
            "outputtime",
            "readtime",
            "sizing_overhead",
            "process_walltime",
            "process_cputime",
        ):
            if isinstance(record.get(name), float):
                record[name] = record[name] * scale
        for name in (
            "bytesread",
            "bytesread_open",
            "bytesread_payload",
            "output_pickled_bytes",
            "output_compressed_bytes",
            "mem_peak_bytes",
            "mem_usage_bytes",
            "process_mem_peak_bytes",
            "process_mem_usage_bytes",
        ):
            if isinstance(record.get(name), int):
                record[name] = record[name] + (i * 7919) % 100_003
        if isinstance(record.get("column_bytes"), dict):
            record["column_bytes"] = {
                c: b + (i % 89) for c, b in record["column_bytes"].items()
            }
        item = dict(items[k], key=keys[i], record=pack_record(record))
        item["task_nbytes"] = int(item.get("task_nbytes") or 0) + i % 101
        item["worker"] = f"tcp://10.0.{i % 7}.{i % 50}:{40000 + i % 3}"
        item["compute_start"] = 1.8e9 + i * 0.01
        item["compute_stop"] = 1.8e9 + i * 0.01 + record.get("walltime", 0.1)
        messages.append(msgpack.packb(item, use_bin_type=True))
        w = workitems[k]
        start = (i % 1000) * 100_000
        chunks.append(
            WorkItem(
                w.dataset,
                files[i // 1000],
                w.treename,
                start,
                start + 100_000,
                w.fileuuid,
            )
        )
    return keys, chunks, messages


# ------------------------------------------------------------------ new design
def new_report(
    run_id: str, keys: list[str], chunks: list[Any], messages: list[bytes]
) -> Any:
    collector = ex._Collector(run_id, keys, chunks)
    for message in messages:
        collector.add(msgpack.unpackb(message, raw=False))
    return ex._sizing(collector, {}, collector.records())


def new_table(report: Any) -> Any:
    return chunk_table(report)


def new_save(report: Any, path: pathlib.Path) -> None:
    save_records(report, path, csv=False)


def new_load(path: pathlib.Path) -> Any:
    return load_records(path)


# ------------------------------------------- old design (main at 0285a70), copied
class OldCollector:
    """TODAY'S DESIGN: ``_Collector`` of main at 0285a70, what the report needs."""

    def __init__(self, run_id: str, keys: list[str], items: list[Any]) -> None:
        self.run_id = run_id
        self.items = dict(zip(keys, items, strict=True))
        self.chunks: dict[str, dict[str, Any]] = {}
        self.joined: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []
        self.mistyped: list[str] = []
        self.bytesread = self.shipped = self.peak = 0

    def add(self, item: dict[str, Any]) -> None:
        key = item.get("key")
        if type(key) is not str or key not in self.items:
            return
        item, _ = ex._checked_item(item)
        self.chunks[key] = item
        self.joined.pop(key, None)

    def record(self, key: str) -> dict[str, Any]:
        record = self.joined.get(key)
        if record is None:
            record = self.joined[key] = self._joined(key, self.chunks[key])
        return record

    def _joined(self, key: str, item: dict[str, Any]) -> dict[str, Any]:
        workitem = ex._workitem(self.items[key])
        record: dict[str, Any] = dict.fromkeys(CHUNK_FIELDS)
        packed = item.get("record")
        if packed is not None:
            worker_part = unpack_record(packed)
            worker_part.pop(ex.SIZING_ERROR, None)
            for name in ex.CLIENT_FIELDS:
                worker_part.pop(name, None)
            ex.drop_mistyped(worker_part)
            record.update(worker_part)
        record.update(
            {n: ex.plain_value(getattr(workitem, n, None)) for n in ex.IDENTITY_FIELDS}
        )
        record["key"] = key
        for name in ex._SCHEDULER_FIELDS:
            record[name] = item.get(name)
        if isinstance(record.get("bytesread"), int):
            self.bytesread += record["bytesread"]
        return record

    def records(self) -> list[dict[str, Any]]:
        out = []
        for key in self.items:
            record = self.record(key) if key in self.chunks else None
            if record is None:
                record = dict.fromkeys(CHUNK_FIELDS)
                record["key"] = key
            out.append(record)
        return out


def old_report(
    run_id: str, keys: list[str], chunks: list[Any], messages: list[bytes]
) -> Any:
    collector = OldCollector(run_id, keys, chunks)
    for message in messages:
        collector.add(msgpack.unpackb(message, raw=False))
    records = collector.records()
    return {
        REPORT_KEY: records,
        REPORT_MERGES_KEY: [],
        REPORT_RUN_KEY: {"run_id": run_id, "chunks": len(records)},
    }


def old_table(report: Any) -> Any:
    """TODAY'S DESIGN: ``chunk_table`` of main at 0285a70."""
    records = _records_from(report, REPORT_KEY)
    table = _table(records, CHUNK_FIELDS)
    if (
        records
        and all("process_walltime" in rec for rec in records)
        and not any(name in rec for rec in records for name in _EXECUTOR_ONLY)
    ):
        table = table.drop(columns=[c for c in _EXECUTOR_ONLY if c in table.columns])
    return table


def _old_column(values: list[Any]) -> tuple[Any, bool]:
    import pyarrow as pa

    if not any(isinstance(v, Mapping) for v in values):
        try:
            array = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
        else:
            if array.to_pylist() == values:
                return array, False
    text = [None if v is None else json.dumps(v) for v in values]
    return pa.array(text, type=pa.string()), True


def old_save(report: Any, path: pathlib.Path) -> None:
    """TODAY'S DESIGN: ``save_records(csv=False)`` of main at 0285a70."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunks = [dict(r) for r in _records_from(report, REPORT_KEY)]
    fields: list[str] = []
    for rec in chunks:
        fields.extend(name for name in rec if name not in fields)
    arrays, json_fields = [], []
    for name in fields:
        array, as_json = _old_column([rec.get(name) for rec in chunks])
        arrays.append(array)
        if as_json:
            json_fields.append(name)
    absent = [[n for n in fields if n not in rec] for rec in chunks]
    names = list(fields)
    if any(absent):
        arrays.append(pa.array(absent, type=pa.list_(pa.string())))
        names.append("_absent")
    workers = sorted({str(r["worker"]) for r in chunks if r.get("worker")})
    meta = {
        "format": 1,
        "fields": fields,
        "json_fields": json_fields,
        "merges": report.get(REPORT_MERGES_KEY, []),
        "run": report.get(REPORT_RUN_KEY),
        "context": {"workers": len(workers)},
    }
    table = pa.Table.from_arrays(arrays, names=names)
    table = table.replace_schema_metadata({b"coffea_sizing": json.dumps(meta).encode()})
    pq.write_table(table, path)


def old_load(path: pathlib.Path) -> Any:
    """TODAY'S DESIGN: ``load_records`` of main at 0285a70 (its ``_read_table``)."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = json.loads(table.schema.metadata[b"coffea_sizing"])
    fields = [str(name) for name in meta["fields"]]
    columns = {name: table.column(name).to_pylist() for name in fields}
    for name in meta["json_fields"]:
        columns[name] = [None if v is None else json.loads(v) for v in columns[name]]
    absent = (
        table.column("_absent").to_pylist()
        if "_absent" in table.column_names
        else [[] for _ in range(table.num_rows)]
    )
    chunks = []
    for i in range(table.num_rows):
        missing = set(absent[i] or ())
        chunks.append(
            {name: columns[name][i] for name in fields if name not in missing}
        )
    return {
        REPORT_KEY: chunks,
        REPORT_MERGES_KEY: meta["merges"],
        REPORT_RUN_KEY: meta["run"],
    }


DESIGNS: dict[str, dict[str, Callable[..., Any]]] = {
    "new": {
        "report": new_report,
        "table": new_table,
        "save": new_save,
        "load": new_load,
    },
    "old": {
        "report": old_report,
        "table": old_table,
        "save": old_save,
        "load": old_load,
    },
}


# ------------------------------------------------------------------ measuring
def _timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    gc.collect()
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def held_bytes(design: str, inputs: tuple[Any, ...]) -> tuple[float, float]:
    """Bytes per chunk the built report holds, and the peak while building it."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    report = DESIGNS[design]["report"](*inputs)
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    n = len(inputs[1])
    del report
    return (current - before) / n, (peak - before) / n


def one_round(
    design: str, inputs: tuple[Any, ...], tmp: pathlib.Path
) -> dict[str, float]:
    fns = DESIGNS[design]
    out: dict[str, float] = {}
    out["report_s"], report = _timed(fns["report"], *inputs)
    out["table_s"], table = _timed(fns["table"], report)
    path = tmp / f"{design}.parquet"
    out["save_s"], _ = _timed(fns["save"], report, path)
    out["load_s"], loaded = _timed(fns["load"], path)
    out["save_load_s"] = out["save_s"] + out["load_s"]
    assert len(table) == len(loaded[REPORT_KEY]) == len(inputs[1])
    return out


def _save_with_csv(inputs: tuple[Any, ...], path: pathlib.Path) -> None:
    save_records(new_report(*inputs), path, csv=True)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(s: dict[str, float], unit: str = "s", digits: int = 3) -> str:
    return (
        f"{s['median']:.{digits}f} {unit} [{s['min']:.{digits}f}-{s['max']:.{digits}f}]"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--old-max",
        type=int,
        default=1_000_000,
        help="largest N at which the old design is measured too (it is slow)",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=pathlib.Path)
    args = parser.parse_args(argv)
    sizes = [1000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    repeats = 1 if args.quick else args.repeats
    print(f"load average at start: {os.getloadavg()}", flush=True)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        items, workitems = real_items()
    print(f"real items: {len(items)} chunks of a real run", flush=True)
    with tempfile.TemporaryDirectory() as warm:  # imports (pyarrow.compute) first
        for design in DESIGNS:
            one_round(
                design,
                ("0123456789ab", *varied(items, workitems, 100, "0123456789ab")),
                pathlib.Path(warm),
            )
    results: dict[str, Any] = {"load_start": os.getloadavg(), "sizes": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = pathlib.Path(tmpdir)
        for n in sizes:
            run_id = "0123456789ab"
            keys, chunks, messages = varied(items, workitems, n, run_id)
            inputs = (run_id, keys, chunks, messages)
            designs = ["new", "old"] if n <= args.old_max else ["new"]
            per: dict[str, Any] = {d: {"rounds": []} for d in designs}
            for d in designs:
                per[d]["held_B_per_chunk"], per[d]["peak_B_per_chunk"] = held_bytes(
                    d, inputs
                )
            for r in range(repeats):
                order = designs[r % len(designs) :] + designs[: r % len(designs)]
                for d in order:
                    per[d]["rounds"].append(one_round(d, inputs, tmp))
            # the CSV for people, once, apart
            t_csv, _ = _timed(_save_with_csv, inputs, tmp / "csv.parquet")
            per["new"]["save_with_csv_and_report_s"] = t_csv
            for d in designs:
                for name in ("report_s", "table_s", "save_s", "load_s", "save_load_s"):
                    per[d][name] = summary([x[name] for x in per[d]["rounds"]])
            results["sizes"][str(n)] = per
            print(
                f"\n== {n:,} chunks ({repeats} repeats; load {os.getloadavg()[0]:.1f})"
            )
            print(f"{'':24}{'new (columns)':>34}{'old (list of dicts)':>34}")
            for name, label in (
                ("report_s", "build the report"),
                ("table_s", "chunk_table"),
                ("save_s", "save_records"),
                ("load_s", "load_records"),
                ("save_load_s", "save + load"),
            ):
                cells = [fmt(per[d][name]) for d in designs]
                print(f"{label:24}" + "".join(f"{c:>34}" for c in cells))
            cells = [f"{per[d]['held_B_per_chunk']:.0f} B" for d in designs]
            print(f"{'held per chunk':24}" + "".join(f"{c:>34}" for c in cells))
            cells = [f"{per[d]['peak_B_per_chunk']:.0f} B" for d in designs]
            print(f"{'peak while building':24}" + "".join(f"{c:>34}" for c in cells))
            if "old" in per:
                for name in ("table_s", "save_load_s", "report_s"):
                    ratio = per["old"][name]["median"] / per["new"][name]["median"]
                    print(f"  old/new {name}: x{ratio:.1f}")
            print(
                f"  save_records with the CSV (and building the report): {t_csv:.2f} s"
            )
            if n == 1_000_000:
                new = per["new"]
                verdicts = {
                    "held <= 250 B": new["held_B_per_chunk"] <= TARGET_BYTES,
                    "chunk_table <= 1 s": new["table_s"]["median"] <= TARGET_TABLE_S,
                    "save+load <= 3 s": new["save_load_s"]["median"]
                    <= TARGET_SAVE_LOAD_S,
                }
                results["verdicts"] = verdicts
                for k, v in verdicts.items():
                    print(f"  {'PASS' if v else 'FAIL'} {k}")
            gc.collect()
    results["load_end"] = os.getloadavg()
    print(f"\nload average at the end: {results['load_end']}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

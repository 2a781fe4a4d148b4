"""Where a chunk's time goes over XRootD as the network's latency grows.

Runs the same processor on the same generated NanoAOD file, read from the local disk
and through a real ``xrootd`` on 127.0.0.1 behind a relay that delays every response
by D = 0, 5 and 20 ms (``tests/servers.py``: ``XRootDServer``, ``LatencyRelay``), with
:class:`~coffea_sizing.SizingDaskExecutor` on a ``LocalCluster`` of two
single-threaded workers, and prints the medians over every chunk of every repeat:
wall time, the phases, ``readtime``, ``read_requests`` and bytes per request.

Not a test: it prints figures. Needs Debian's ``xrootd-server`` and the project's
``test`` extra (``fsspec-xrootd``, ``xrootd``)::

    python benchmarks/bench_latency.py [--repeats 3] [--chunksize 5000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from servers import LatencyRelay, XRootDServer

BRANCHES = ("Jet_pt", "Jet_eta", "Jet_phi", "Muon_pt", "Electron_pt", "MET_pt")


class Reader:
    """Sums a few branches of NanoAOD: one column request each."""

    def __call__(self, events: Any) -> dict[str, float]:
        import awkward as ak

        out: dict[str, float] = {"nevents": float(len(events))}
        for name in BRANCHES:
            collection, field = name.split("_", 1)
            out[name] = float(ak.sum(events[collection][field]))
        return out


def run(client: Any, url: str, chunksize: int) -> list[dict[str, Any]]:
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    from coffea_sizing import SizingDaskExecutor

    runner = processor.Runner(
        executor=SizingDaskExecutor(client=client, status=False),
        savemetrics=True,
        schema=NanoAODSchema,
        chunksize=chunksize,
    )
    _, report = runner({"bench": [url]}, treename="Events", processor_instance=Reader())
    return list(report["sizing"])


def medians(records: list[dict[str, Any]]) -> dict[str, float]:
    def med(values: Any) -> float:
        return float(statistics.median(values))

    return {
        "wall_ms": med(r["walltime"] for r in records) * 1e3,
        "open_ms": med(r["opentime"] for r in records) * 1e3,
        "build_ms": med(r["buildtime"] for r in records) * 1e3,
        "process_ms": med(r["processtime"] for r in records) * 1e3,
        "read_ms": med(r["readtime"] for r in records) * 1e3,
        "requests": med(r["read_requests"] for r in records),
        "kB_per_request": med(r["bytesread"] / r["read_requests"] for r in records)
        / 1e3,
        "read_ms_per_request": med(
            r["readtime"] / max(1, r["read_requests"] - 2) for r in records
        )
        * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunksize", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--delays-ms", default="0,5,20")
    args = parser.parse_args(argv)
    delays = [float(d) for d in args.delays_ms.split(",")]

    import warnings

    from distributed import Client, LocalCluster

    from coffea_sizing.datasets import make_nanoaod, ttbar_path

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench_latency.root"
        make_nanoaod(
            path, args.events, events_per_basket=1_000, seed=1, source=ttbar_path()
        )
        with (
            XRootDServer() as server,
            LocalCluster(
                n_workers=2, threads_per_worker=1, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            url = server.add(path)
            run(client, str(path), args.chunksize)  # warm-up: imports, caches
            run(client, url, args.chunksize)
            rows: list[tuple[str, dict[str, float]]] = []
            local: list[dict[str, Any]] = []
            for _ in range(args.repeats):
                local += run(client, str(path), args.chunksize)
            rows.append(("local disk", medians(local)))
            for delay in delays:
                records: list[dict[str, Any]] = []
                with LatencyRelay(server.port, delay / 1e3) as relay:
                    relayed = f"root://127.0.0.1:{relay.port}//{path.name}"
                    for _ in range(args.repeats):
                        records += run(client, relayed, args.chunksize)
                rows.append((f"root:// D={delay:g} ms", medians(records)))
    n_chunks = -(-args.events // args.chunksize)
    print(
        f"{args.events:,} events in chunks of {args.chunksize:,} ({n_chunks} chunks), "
        f"{len(BRANCHES)} branches read, {args.repeats} repeats; medians over chunks "
        f"({time.strftime('%Y-%m-%d %H:%M')})"
    )
    names = list(rows[0][1])
    print(f"{'':>20} " + " ".join(f"{n:>19}" for n in names))
    for label, values in rows:
        print(f"{label:>20} " + " ".join(f"{values[n]:>19.2f}" for n in names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Shared fixtures: the real ttbar file, generated NanoAOD-like files, real clusters."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import awkward as ak
import cloudpickle
import hist
import matplotlib as mpl
import pytest
from coffea import processor

mpl.use("Agg")

TTBAR = "nanoAOD_2015_CMS_Open_Data_ttbar.root"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / TTBAR


def _ensure_ttbar() -> str:
    """Make ``skhep_testdata.data_path`` work offline (copy the shared file)."""
    cache = Path("~/.local/skhepdata").expanduser()
    target = cache / TTBAR
    if not target.exists() and SHARED.exists():
        cache.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED, target)
    import skhep_testdata

    return str(skhep_testdata.data_path(TTBAR))


@pytest.fixture(scope="session")
def ttbar_file() -> str:
    return _ensure_ttbar()


@pytest.fixture(scope="session")
def generated_file(tmp_path_factory: pytest.TempPathFactory, ttbar_file: str) -> str:
    """20,000 resampled events, baskets of 1,000: real baskets, 10 chunks of 2,000."""
    from coffea_sizing.datasets import make_nanoaod

    path = tmp_path_factory.mktemp("gen") / "generated_20k.root"
    make_nanoaod(path, 20_000, events_per_basket=1_000, seed=1, source=ttbar_file)
    return str(path)


@pytest.fixture(scope="session")
def cluster() -> Iterator[object]:
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        host="127.0.0.1",
    ) as cl:
        yield cl


@pytest.fixture(scope="session")
def client(cluster: object) -> Iterator[object]:
    from distributed import Client

    with Client(cluster) as cl:
        yield cl


@pytest.fixture(scope="session")
def sweep(
    client: object,
    ttbar_file: str,
    generated_file: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> object:
    """The branch sweep of the study (1, 2, 3, 5, 10 branches; ttbar in chunks of 50,
    the generated file in chunks of 2,500), run once for the whole session: under
    pytest-xdist the first process to need it runs it, the others read its pickle."""
    from coffea_sizing.compare import branch_sweep

    def run() -> object:
        return branch_sweep(
            {"ttbar": [ttbar_file], "generated": [generated_file]},
            (1, 2, 3, 5, 10),
            chunksize={"ttbar": 50, "generated": 2_500},
            client=client,
        )

    if "PYTEST_XDIST_WORKER" not in os.environ:
        return run()
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent / "sweep.pkl"
    with FileLock(f"{shared}.lock"):
        if shared.is_file():
            return pickle.loads(shared.read_bytes())
        result = run()
        shared.write_bytes(pickle.dumps(result))
        return result


# Workers started as separate processes cannot import the tests: ship the test
# processors by value, as a notebook's processors are.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class JetProcessor(processor.ProcessorABC):
    """Reads Jet pt (and eta when ``eta=True``); fills a histogram and counters."""

    def __init__(self, eta: bool = False) -> None:
        self.eta = eta

    def process(self, events: ak.Array) -> dict[str, object]:
        jets = events.Jet
        h = hist.Hist.new.Reg(20, 0, 200, name="pt").Double()
        h.fill(pt=ak.flatten(jets.pt))
        out: dict[str, object] = {
            "nevents": len(events),
            "njets": int(ak.sum(ak.num(jets.pt))),
            "sumpt": float(ak.sum(jets.pt)),
            "jet_pt": h,
        }
        if self.eta:
            out["sumeta"] = float(ak.sum(abs(jets.eta)))
        return out

    def postprocess(self, accumulator: dict[str, object]) -> dict[str, object]:
        return accumulator


@pytest.fixture
def jet_processor() -> JetProcessor:
    return JetProcessor()

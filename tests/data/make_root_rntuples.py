"""Write the ROOT-written RNTuple test files in this folder (needs PyROOT).

The files are committed, so the tests need no ROOT; run this script only to make
them again. Two steps, since ROOT and coffea-sizing live in different
environments here (``pip install ROOT`` gives ROOT 6.40, whose
``RNTupleImporter`` converts a TTree into an RNTuple the way experiments convert
NanoAOD):

.. code-block:: bash

    # 1. the TTree input, with coffea-sizing's environment
    python -c "from coffea_sizing.datasets import make_nanoaod; make_nanoaod(
        'gen4000.root', 4000, events_per_basket=1000, branches=['run',
        'luminosityBlock', 'event', 'Jet_pt', 'Jet_eta', 'Jet_phi', 'Jet_mass',
        'Muon_pt', 'Muon_eta', 'Electron_pt', 'MET_pt', 'MET_phi', 'PV_npvs'])"
    # 2. the conversions, with ROOT's
    python tests/data/make_root_rntuples.py TTBAR.root gen4000.root

``root_ttbar_rntuple.root``
    The real CMS NanoAOD test file (200 events, 947 branches) converted with
    ROOT's defaults: one cluster, one page per column, ROOT's collection fields
    (``_collection0``, ...) and projected fields (``Jet_pt``, ``nJet``).
``root_nanoaod_rntuple.root``
    4,000 resampled events in clusters of about 30 kB (zipped) and pages of at
    most 4 kB (unzipped): five clusters of 565 to 948 entries, up to two pages
    per column and cluster.
"""

from __future__ import annotations

import sys
from pathlib import Path

import ROOT  # type: ignore[import-not-found]

HERE = Path(__file__).resolve().parent


def convert(source: str, target: Path, zipped_cluster: int, max_page: int) -> None:
    """``Events`` TTree of ``source`` -> ``Events`` RNTuple in ``target``."""
    importer = ROOT.ROOT.Experimental.RNTupleImporter.Create(
        source, "Events", str(target)
    )
    options = ROOT.ROOT.RNTupleWriteOptions()
    options.SetCompression(101)  # ZLIB:1, as NanoAOD
    options.SetApproxZippedClusterSize(zipped_cluster)
    if max_page:
        options.SetMaxUnzippedPageSize(max_page)
    importer.SetWriteOptions(options)
    importer.SetIsQuiet(True)
    importer.Import()


if __name__ == "__main__":
    ttbar, generated = sys.argv[1:3]
    convert(ttbar, HERE / "root_ttbar_rntuple.root", 100_000_000, 0)
    convert(generated, HERE / "root_nanoaod_rntuple.root", 30_000, 4096)

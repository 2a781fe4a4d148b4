"""The branch sweep: processors reading 1, 2, 3, 5, 10 branches, and their analysis.

:class:`BranchSweepProcessor` is the processor of the original study: level *n*
reads the first *n* of :data:`SWEEP_BRANCHES`, cumulatively, fills one histogram
and one sum/count pair per branch, and derives the means in ``postprocess`` (means
of chunks summed over chunks would be wrong).
"""

from __future__ import annotations

from typing import Any

import awkward as ak
import hist
import numpy as np
from coffea import processor
from coffea.nanoevents import NanoAODSchema

__all__ = ["SWEEP_BRANCHES", "BranchSweepProcessor", "SweepSchema"]


class SweepSchema(NanoAODSchema):
    """``NanoAODSchema`` without the warning for each missing cross-reference.

    The CMS test file (and files resampled from it) lack some cross-referenced
    collections; the stock schema warns about each on every chunk. Sizes are not
    affected.

    Examples
    --------
    >>> from coffea_sizing.compare import SweepSchema
    >>> SweepSchema.warn_missing_crossrefs
    False
    """

    warn_missing_crossrefs = False


#: (collection, field, selection) read in this order; selections: jets pt > 30 GeV,
#: electrons and muons pt > 20 GeV, MET none.
SWEEP_BRANCHES: tuple[tuple[str, str], ...] = (
    ("Jet", "pt"),
    ("Jet", "eta"),
    ("Jet", "phi"),
    ("Jet", "mass"),
    ("Electron", "pt"),
    ("Electron", "eta"),
    ("Muon", "pt"),
    ("Muon", "eta"),
    ("MET", "pt"),
    ("MET", "phi"),
)
_PT_CUT = {"Jet": 30.0, "Electron": 20.0, "Muon": 20.0}
_AXES = {
    "pt": (50, 0.0, 500.0),
    "eta": (50, -5.0, 5.0),
    "phi": (50, -np.pi, np.pi),
    "mass": (50, 0.0, 100.0),
}


class BranchSweepProcessor(processor.ProcessorABC):
    """Read the first ``num_branches`` of :data:`SWEEP_BRANCHES`, cumulatively.

    For each branch the output holds a histogram ``"<Coll>_<field>"`` (50 bins),
    and the sum and count of the selected values; ``postprocess`` adds
    ``"means"``. Jets need pt > 30 GeV, electrons and muons pt > 20 GeV.

    Parameters
    ----------
    num_branches : int
        1 to 10.

    Examples
    --------
    >>> from coffea.nanoevents import NanoEventsFactory, NanoAODSchema
    >>> from coffea_sizing.compare import BranchSweepProcessor
    >>> from coffea_sizing.datasets import ttbar_path
    >>> events = NanoEventsFactory.from_root({ttbar_path(): "Events"},
    ...     schemaclass=NanoAODSchema, mode="eager").events()
    >>> proc = BranchSweepProcessor(2)
    >>> out = proc.postprocess(proc.process(events))
    >>> sorted(out["means"])
    ['Jet_eta', 'Jet_pt']
    >>> out["nevents"]
    200
    """

    def __init__(self, num_branches: int) -> None:
        value: Any = num_branches
        if not isinstance(value, int | np.integer) or not (
            1 <= num_branches <= len(SWEEP_BRANCHES)
        ):
            raise ValueError(
                f"num_branches must be an integer from 1 to {len(SWEEP_BRANCHES)}, "
                f"got {num_branches!r}"
            )
        self.num_branches = int(num_branches)

    @property
    def branches(self) -> list[str]:
        """The NanoAOD branch names this level reads (``Jet_pt``, ...)."""
        return [f"{c}_{f}" for c, f in SWEEP_BRANCHES[: self.num_branches]]

    def process(self, events: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"nevents": len(events)}
        selected: dict[str, Any] = {}
        for coll, fld in SWEEP_BRANCHES[: self.num_branches]:
            name = f"{coll}_{fld}"
            if coll not in selected:
                objs = events[coll]
                if coll in _PT_CUT:
                    objs = objs[objs.pt > _PT_CUT[coll]]
                selected[coll] = objs
            values = selected[coll][fld]
            flat = ak.to_numpy(ak.flatten(values, axis=None))
            bins, lo, hi = _AXES.get(fld, (50, 0.0, 500.0))
            h = hist.Hist.new.Reg(bins, lo, hi, name=fld).Double()
            h.fill(flat)
            out[name] = h
            out[f"{name}_sum"] = float(np.sum(flat, dtype=np.float64))
            out[f"{name}_count"] = int(flat.size)
        return out

    def postprocess(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        means = {}
        for coll, fld in SWEEP_BRANCHES[: self.num_branches]:
            name = f"{coll}_{fld}"
            count = accumulator.get(f"{name}_count", 0)
            means[name] = accumulator[f"{name}_sum"] / count if count else float("nan")
        accumulator["means"] = means
        return accumulator

"""The NanoAOD schema the command line reads files with unless told otherwise.

Covers :class:`QuietNanoAODSchema`: coffea's ``NanoAODSchema`` with its
"Missing cross-reference index" warnings turned off by coffea's own switch
(``warn_missing_crossrefs``). Files without some cross-referenced collections (the CMS
Open Data test file, many skims) raise one per missing index on every chunk; what is
read and built is the same. The schema's other warnings (a branch it replaces, say)
stay on. Pick any other schema with ``coffea-sizing run --schema NAME``. Imports only
coffea.
"""

from __future__ import annotations

from coffea.nanoevents import NanoAODSchema

__all__ = ["QuietNanoAODSchema"]


class QuietNanoAODSchema(NanoAODSchema):
    """``NanoAODSchema`` without the "Missing cross-reference index" warnings.

    Examples
    --------
    >>> from coffea.nanoevents import NanoAODSchema
    >>> from coffea_sizing.schemas import QuietNanoAODSchema
    >>> issubclass(QuietNanoAODSchema, NanoAODSchema)
    True
    >>> QuietNanoAODSchema.warn_missing_crossrefs, NanoAODSchema.warn_missing_crossrefs
    (False, True)
    """

    warn_missing_crossrefs = False

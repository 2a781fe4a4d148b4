"""coffea-sizing: what every chunk of a coffea run really cost.

Swap coffea's ``DaskExecutor`` for :class:`SizingDaskExecutor` and run with
``savemetrics=True``; ``report["sizing"]`` then holds one record per chunk (bytes
read, columns, pickled and compressed output size, the scheduler's
``TaskState.nbytes``, peak memory and time) and :func:`chunk_table` turns it into a
:class:`pandas.DataFrame`.
"""

from __future__ import annotations

from ._version import __version__
from .advise import Advice, advise
from .decorator import split_records, track_sizes
from .executor import SizingDaskExecutor
from .plugin import SizingSchedulerPlugin
from .records import (
    CHUNK_FIELDS,
    MERGE_FIELDS,
    SizingWarning,
    chunk_table,
    merge_table,
)
from .store import load_records, save_records

__all__ = [
    "CHUNK_FIELDS",
    "MERGE_FIELDS",
    "Advice",
    "SizingDaskExecutor",
    "SizingSchedulerPlugin",
    "SizingWarning",
    "__version__",
    "advise",
    "chunk_table",
    "load_records",
    "merge_table",
    "save_records",
    "split_records",
    "track_sizes",
]

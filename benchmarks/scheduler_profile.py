"""A ``dask scheduler --preload`` that profiles the scheduler's event loop with cProfile.

Used by ``bench_streaming.py --runner-profile``: registers the handler
``bench_profile`` on the scheduler; ``action="start"`` starts a ``cProfile.Profile``
in the scheduler's event-loop thread (where every handler and plugin hook runs),
``action="stop"`` stops it and writes its stats to ``path``. Not part of the package.
"""

from __future__ import annotations

import cProfile
from typing import Any

_PROFILE: dict[str, cProfile.Profile] = {}


def dask_setup(scheduler: Any) -> None:
    def bench_profile(action: str, path: str = "") -> str:
        if action == "start":
            profile = _PROFILE["p"] = cProfile.Profile()
            profile.enable()
            return "started"
        profile = _PROFILE.pop("p")
        profile.disable()
        profile.dump_stats(path)
        return path

    scheduler.handlers["bench_profile"] = bench_profile

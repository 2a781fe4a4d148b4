"""The worker-side probe on the real kernel: peaks, resets, nesting, forks."""

from __future__ import annotations

import multiprocessing
import os
import sys
import warnings
from typing import Any

import pytest

from coffea_sizing import probe
from coffea_sizing.probe import ChunkProbe

from conftest import scaled

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the kernel's peak is Linux's"
)

MB = 1024 * 1024


def _touch(n_bytes: int) -> bytearray:
    """Allocate ``n_bytes`` and make every page resident."""
    block = bytearray(n_bytes)
    block[::4096] = b"x" * len(block[::4096])
    return block


def _status_fresh() -> tuple[int, int]:
    """VmRSS and VmHWM in bytes, from a fresh open of /proc/self/status."""
    fields = {}
    with open("/proc/self/status", "rb") as f:
        for line in f:
            name, _, rest = line.partition(b":")
            if name in (b"VmRSS", b"VmHWM"):
                fields[name] = int(rest.split()[0]) * 1024
    return fields[b"VmRSS"], fields[b"VmHWM"]


def test_peak_of_a_chunk_is_its_own() -> None:
    with ChunkProbe() as first:
        block = _touch(200 * MB)
        del block
    assert first.mem_usage_bytes is not None
    assert first.mem_usage_bytes >= 190 * MB
    # the next chunk starts from a reset peak: the first one's 200 MB are not in it
    with ChunkProbe() as second:
        pass
    assert second.mem_usage_bytes is not None
    assert second.mem_usage_bytes < 20 * MB
    assert second.mem_peak_bytes is not None
    assert second.mem_peak_bytes < first.mem_peak_bytes - 150 * MB  # type: ignore[operator]


def test_nested_probes_hand_the_peak_outwards() -> None:
    """The inner probe's reset must not hide the inner peak from the outer one."""
    with ChunkProbe() as outer:
        with ChunkProbe() as inner:
            block = _touch(150 * MB)
            del block
        with ChunkProbe():  # resets the peak again, after inner's allocation
            pass
    assert inner.mem_usage_bytes is not None
    assert inner.mem_usage_bytes >= 140 * MB
    assert outer.mem_peak_bytes is not None
    assert inner.mem_peak_bytes is not None
    assert outer.mem_peak_bytes >= inner.mem_peak_bytes
    assert outer.mem_shared is False  # same thread: nested, not concurrent


def test_reads_agree_with_a_fresh_open() -> None:
    block = _touch(50 * MB)
    rss, hwm = probe._PROC.read()
    fresh_rss, fresh_hwm = _status_fresh()
    del block
    assert rss is not None
    assert hwm is not None
    assert abs(rss - fresh_rss) < 5 * MB
    assert abs(hwm - fresh_hwm) < 5 * MB


def test_without_the_libc_calls_the_figures_are_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_libc = probe._PROC.read()
    monkeypatch.setattr(probe, "_LIBC", None)
    with_os = probe._PROC.read()
    assert with_libc[0] is not None
    assert with_os[0] is not None
    assert abs(with_libc[0] - with_os[0]) < 5 * MB
    with ChunkProbe() as p:
        block = _touch(100 * MB)
        del block
    assert p.mem_usage_bytes is not None
    assert p.mem_usage_bytes >= 90 * MB


def _child_reading(queue: Any) -> None:
    # what the descriptor inherited from the parent says: the parent's entry (read
    # before the probe's first reading here, which closes the inherited descriptors)
    inherited_fd = probe._PROC.status
    inherited = probe._kib(os.pread(inherited_fd, 4096, 0), b"VmRSS:")  # type: ignore[arg-type]
    before = probe._PROC.read()
    block = _touch(300 * MB)
    queue.put((inherited, before, probe._PROC.read(), _status_fresh()))
    del block


def test_a_forked_process_reads_its_own_figures() -> None:
    """Descriptors opened before a fork name the parent's /proc entries; the probe
    must open its own in the child."""
    probe._PROC.read()  # the parent's descriptors are open now
    assert probe._PROC.status is not None
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        child = ctx.Process(target=_child_reading, args=(queue,))
        child.start()
    inherited, (rss0, _), (rss, hwm), (fresh_rss, fresh_hwm) = queue.get(
        timeout=scaled(60)
    )
    child.join(60)
    assert child.exitcode == 0
    assert rss0 is not None
    assert rss is not None
    assert hwm is not None
    assert inherited is not None
    parent_rss, _ = _status_fresh()
    # the inherited descriptor reads the parent's entry (idle meanwhile) ...
    assert abs(inherited - parent_rss) < 20 * MB
    # ... the probe the child's own: it sees the child's 300 MB (a fresh mapping;
    # the child's RSS against the parent's says little, as a fork copies no page
    # tables of file-backed mappings) and agrees with a fresh open
    assert rss - rss0 >= 250 * MB
    assert fresh_rss >= 300 * MB
    assert abs(rss - fresh_rss) < 5 * MB
    assert abs(hwm - fresh_hwm) < 5 * MB

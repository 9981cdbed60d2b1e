"""Shared fixtures.  Every test is checked for leftover child processes."""

from __future__ import annotations

import contextlib
import importlib
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]

# multiprocessing's own helpers of the test process live for the whole session; they are
# not ours to reap.  Those of an optimizer process (its forkserver) must go with it.
_MP_HELPERS = ("forkserver", "resource_tracker", "semaphore_tracker")


def _our_children() -> dict[int, psutil.Process]:
    out = {}
    me = psutil.Process()
    for p in me.children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
            parent = p.ppid()
        except psutil.Error:
            continue
        if parent != me.pid or not any(h in cmd for h in _MP_HELPERS):
            out[p.pid] = p
    return out


@pytest.fixture(autouse=True)
def no_leftover_processes():
    before = set(_our_children())
    yield
    deadline = time.monotonic() + 3.0
    while True:
        left = {pid: p for pid, p in _our_children().items() if pid not in before}
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    for p in left.values():
        try:
            p.kill()
        except psutil.Error:
            pass
    assert not left, f"test left child processes behind: {[(p.pid, p.name()) for p in left.values()]}"


@contextlib.contextmanager
def _benchmark_module(name: str):
    """``benchmarks.<name>``: the scripts live at the repository root, which plain pytest
    does not put on ``sys.path``; it stays there while the module is in use, so spawned
    children can import it too."""
    added = str(ROOT) not in sys.path
    if added:
        sys.path.insert(0, str(ROOT))
    try:
        yield importlib.import_module(f"benchmarks.{name}")
    finally:
        if added:
            sys.path.remove(str(ROOT))


@pytest.fixture(scope="module")
def quality():
    with _benchmark_module("quality") as module:
        yield module


@pytest.fixture
def overhead():
    with _benchmark_module("overhead") as module:
        yield module


@pytest.fixture
def backends():
    with _benchmark_module("backends") as module:
        yield module


@pytest.fixture
def scale():
    with _benchmark_module("scale") as module:
        yield module


@pytest.fixture
def cma_box():
    with _benchmark_module("cma_box") as module:
        yield module


@pytest.fixture
def faults():
    with _benchmark_module("faults") as module:
        yield module

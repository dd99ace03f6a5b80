"""Garbage-collector settings for harness's long-running processes: every worker and the embedded VTN.

Edge (changes the calling process's collector). Called once at a process's entry, never from a library call:
a test that serves the VTN in-process keeps its own settings.
"""

from __future__ import annotations

import ctypes
import gc

THRESHOLDS = (200_000, 20, 10)


def tune() -> None:
    """Collect cyclic garbage every 200,000 container allocations instead of 700. A request allocates a few dozen
    containers and almost none form cycles (reference counting frees them), but each young collection walks
    every container still alive, and an in-flight request's containers live as long as its round trip: with
    thousands of VENs in flight, a 20,000 threshold walked (and promoted) the same request state many times
    over — 190 young collections finding 0 garbage in 10 s, ~25 % of a saturated per-VEN worker's CPU. At
    200,000 most of it has died before a collection comes; the garbage left waiting is bounded by the count.
    In the embedded VTN the default thresholds ran a full collection at every 25 % growth of its heap while
    10,000 VENs provisioned: pauses of 37, 99, 144, 221, 315 and 363 ms, each a stall of every request."""
    gc.set_threshold(*THRESHOLDS)


def freeze() -> None:
    """Move everything built so far (a worker's shard, VEN state, meter and streams; modules) out of the
    collector's reach: it lives for the run, and full collections stop walking it."""
    gc.collect()
    gc.freeze()
    trim()


def trim() -> None:
    """Hand the heap's free pages back to the system (glibc's malloc_trim; nothing where there is none). Building
    a shard's state frees large numpy temporaries that glibc keeps: at 200,000 VENs 779 B per VEN of RSS before
    the trim, 551 after (benchmarks/anatomy.py state)."""
    try:
        fn = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return
    fn(0)

"""Operating-system limits a fleet must fit: open files per process and ephemeral ports per target address.

Edge (reads resource limits and /proc). `check_fleet` is decided before any process starts, so a fleet
that cannot fit is a one-line error with the way out, never a storm of EMFILE / EADDRNOTAVAIL mid-run.
"""

from __future__ import annotations

import resource
from pathlib import Path

FD_HEADROOM = 256  # sockets for tokens, the webhook server, pipes, files, libraries


def fd_limit() -> tuple[int, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft, hard


def raise_fd_limit() -> int:
    """Raise this process's soft open-files limit to its hard limit (as load tools do); the new soft limit."""
    soft, hard = fd_limit()
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def ephemeral_ports() -> int:
    try:
        lo, hi = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
        return hi - lo + 1
    except (OSError, ValueError):
        return 28_232  # Linux default range 32768..60999


def check_fleet(vens: int, workers: int, connection: str, embedded_vtn: bool, pool_size: int = 0) -> str | None:
    """Why this fleet cannot run on this machine as configured (with the way out), or None if it fits."""
    _, hard = fd_limit()
    limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if connection == "per-ven":
        ports = ephemeral_ports()
        if vens > ports - FD_HEADROOM:
            return (
                f"{vens:,} VENs with one connection each need {vens:,} ephemeral ports to one target address, but this "
                f"machine has {ports:,} (net.ipv4.ip_local_port_range): use --connection pooled or spread over machines (--cluster)"
            )
        if embedded_vtn and vens + FD_HEADROOM > limit:
            return (
                f"the embedded VTN would hold {vens:,} connections but its open-files limit is {limit:,} (ulimit -n): "
                "use --connection pooled, raise the hard limit, or run the VTN elsewhere (--target)"
            )
        per_worker = -(-vens // workers)
        if per_worker + FD_HEADROOM > limit:
            need = -(-vens // max(1, limit - FD_HEADROOM))
            return (
                f"{vens:,} VENs with one connection each need {per_worker + FD_HEADROOM:,} open files per worker with "
                f"{workers} workers, but the limit is {limit:,} (ulimit -n): use --workers {need} or more, or --connection pooled"
            )
    return None

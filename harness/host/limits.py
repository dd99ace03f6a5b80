"""Operating-system limits a fleet must fit: open files per process and ephemeral ports per target address.

Edge (reads resource limits and /proc). `check_fleet` is decided before any process starts, so a fleet
that cannot fit is a one-line error with the way out, never a storm of EMFILE / EADDRNOTAVAIL mid-run.
"""

from __future__ import annotations

import ipaddress
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


def is_loopback(host: str | None) -> bool:
    if host is None or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_sources(vens: int, connection: str, target_host: str | None, given: tuple[str, ...]) -> tuple[str, ...]:
    """Source addresses for a fleet of own-connection VENs too big for one address's ephemeral ports: on a
    loopback target, 127.0.0.1, 127.0.0.2, ... as many as needed (all of 127/8 is local on Linux, no setup);
    otherwise what was given (the operator knows which addresses the machine has)."""
    per_address = ephemeral_ports() - FD_HEADROOM
    if given or connection != "per-ven" or vens <= per_address or not is_loopback(target_host):
        return given
    if target_host is not None and ":" in target_host:
        return given  # ::1 is IPv6's only loopback address
    # At most all of 127/8: a fleet beyond even that is then refused by check_fleet, in one line.
    return loopback_addresses(min(-(-vens // per_address), LOOPBACK_ADDRESSES))


LOOPBACK_ADDRESSES = 254 * 256 * 256  # 127.0.0.1 .. 127.255.255.254 without the .0 and .255 of each /24


def loopback_addresses(n: int) -> tuple[str, ...]:
    """The first n of 127.0.0.1, 127.0.0.2, ... 127.0.0.254, 127.0.1.1, ...: on through 127/8 (all of it local on
    Linux), skipping every .0 and .255 so no address reads like a network or broadcast one."""
    if not 0 <= n <= LOOPBACK_ADDRESSES:
        raise ValueError(f"{n:,} loopback addresses asked for: 127/8 has {LOOPBACK_ADDRESSES:,} usable ones")
    return tuple(f"127.{i // (254 * 256)}.{i // 254 % 256}.{i % 254 + 1}" for i in range(n))


def describe_addresses(addrs: tuple[str, ...]) -> str:
    """A short list for a note: all of them up to four, else the first, the last and how many."""
    return ", ".join(addrs) if len(addrs) <= 4 else f"{addrs[0]} .. {addrs[-1]} ({len(addrs):,} addresses)"


def check_fleet(vens: int, workers: int, connection: str, embedded_vtn: bool, pool_size: int = 0,
                sources: int = 0) -> str | None:
    """Why this fleet cannot run on this machine as configured (with the way out), or None if it fits."""
    _, hard = fd_limit()
    limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if connection == "per-ven":
        ports = ephemeral_ports()
        per_source = -(-vens // max(1, sources))
        if per_source > ports - FD_HEADROOM:
            need = -(-vens // (ports - FD_HEADROOM))
            via = f"{sources} source addresses" if sources > 1 else "one source address"
            return (
                f"{vens:,} VENs with one connection each need {per_source:,} ephemeral ports per source address with "
                f"{via}, but this machine has {ports:,} (net.ipv4.ip_local_port_range): list {need} or more local "
                "addresses in target.source_addresses (--source-address), use --connection pooled, or spread over "
                "machines (--cluster)"
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

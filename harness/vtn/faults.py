"""Fault-injection settings for the embedded VTN: frozen dataclasses, their parsing and the per-request draw.

Pure: no clock, no I/O; randomness comes from the `random.Random` the caller passes in. Parse errors are
`ValueError`s with one line naming the option and the value (the CLI prints them and exits 2).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal, Mapping

from harness.core.units import parse_duration

DelayKind = Literal["fixed", "uniform", "lognormal", "exp"]

_DELAY_SYNTAX = "50ms, uniform:10ms:50ms, lognormal:MEDIAN:SIGMA or exp:MEAN"


@dataclass(frozen=True)
class Delay:
    """A delay distribution in seconds: fixed `a_s`; uniform `a_s..b_s`; lognormal median `a_s`, sigma `b_s`;
    exponential mean `a_s`."""

    kind: DelayKind
    a_s: float
    b_s: float = 0.0

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            return self.a_s
        if self.kind == "uniform":
            return rng.uniform(self.a_s, self.b_s)
        if self.kind == "lognormal":
            return self.a_s * math.exp(rng.gauss(0.0, self.b_s)) if self.a_s > 0 else 0.0
        return rng.expovariate(1.0 / self.a_s) if self.a_s > 0 else 0.0

    def describe(self) -> str:
        if self.kind == "fixed":
            return _fmt(self.a_s)
        if self.kind == "uniform":
            return f"uniform:{_fmt(self.a_s)}:{_fmt(self.b_s)}"
        if self.kind == "lognormal":
            return f"lognormal:{_fmt(self.a_s)}:{self.b_s:g}"
        return f"exp:{_fmt(self.a_s)}"


@dataclass(frozen=True)
class Stall:
    """All API responses are held from `at_s` (seconds after server start) for `duration_s`."""

    at_s: float
    duration_s: float


@dataclass(frozen=True)
class Faults:
    """What the VTN does wrong on purpose. Rates are probabilities per API request and are exclusive:
    one uniform draw decides reset, else 429, else one of the error statuses, else normal handling."""

    latency: Delay | None = None
    error_rates: tuple[tuple[int, float], ...] = ()
    reset_rate: float = 0.0
    stalls: tuple[Stall, ...] = ()
    max_concurrency: int = 0  # 0: no cap
    service_time: Delay | None = None  # held inside the concurrency cap
    throttle_rate: float = 0.0  # 429 with Retry-After
    retry_after_s: float = 1.0
    seed: int | None = None
    # A report POST answered 201 with its object, then not stored: the VTN lost what it acknowledged (what the
    # delivery audit must catch). Drawn apart from the exclusive rates above, from its own seeded stream.
    drop_after_ack: float = 0.0
    _total_rate: float = field(default=0.0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for status, rate in self.error_rates:
            if not 400 <= status <= 599:
                raise ValueError(f"errors: status must be 400..599, got {status}")
            _check_rate("errors", rate)
        _check_rate("reset_rate", self.reset_rate)
        _check_rate("throttle_rate", self.throttle_rate)
        _check_rate("drop_after_ack", self.drop_after_ack)
        total = self.reset_rate + self.throttle_rate + sum(r for _, r in self.error_rates)
        if total > 1.0 + 1e-9:
            raise ValueError(f"faults: reset_rate + throttle_rate + errors must be <= 1, got {total:g}")
        if self.max_concurrency < 0:
            raise ValueError(f"max_concurrency must be >= 0, got {self.max_concurrency}")
        if self.retry_after_s < 0:
            raise ValueError(f"retry_after must be >= 0, got {self.retry_after_s}")
        object.__setattr__(self, "_total_rate", total)

    @property
    def is_active(self) -> bool:
        return bool(
            self.latency or self._total_rate > 0 or self.stalls or self.max_concurrency or self.service_time
            or self.drop_after_ack
        )

    def describe(self) -> dict[str, object]:
        """The settings in the same vocabulary `parse_faults` reads (for /_harness/faults and logs)."""
        return {
            "latency": self.latency.describe() if self.latency else None,
            "errors": ",".join(f"{s}:{r:g}" for s, r in self.error_rates) or None,
            "reset_rate": self.reset_rate,
            "stalls": ",".join(f"{_fmt(s.at_s)}:{_fmt(s.duration_s)}" for s in self.stalls) or None,
            "max_concurrency": self.max_concurrency,
            "service_time": self.service_time.describe() if self.service_time else None,
            "throttle_rate": self.throttle_rate,
            "retry_after": _fmt(self.retry_after_s),
            "seed": self.seed,
            "drop_after_ack": self.drop_after_ack,
        }

    def drop_rng(self) -> random.Random:
        """The stream that decides drops: seeded apart, so adding drops changes no other fault's sequence."""
        return random.Random(None if self.seed is None else f"drop_after_ack:{self.seed}")


@dataclass(frozen=True)
class FaultDraw:
    """The fate of one request: wait `delay_s`, then reset, or answer `status` (0: handle normally)."""

    delay_s: float = 0.0
    reset: bool = False
    status: int = 0


NO_FAULT = FaultDraw()


def draw(faults: Faults, rng: random.Random) -> FaultDraw:
    """Decide one request's fate. Consumes the rng in a fixed order (delay, then outcome) so a seed
    replays the same sequence of fates for the same sequence of requests."""
    delay_s = faults.latency.sample(rng) if faults.latency else 0.0
    if faults._total_rate <= 0.0:
        return FaultDraw(delay_s) if delay_s else NO_FAULT
    u = rng.random()
    if u < faults.reset_rate:
        return FaultDraw(delay_s, reset=True)
    u -= faults.reset_rate
    if u < faults.throttle_rate:
        return FaultDraw(delay_s, status=429)
    u -= faults.throttle_rate
    for status, rate in faults.error_rates:
        if u < rate:
            return FaultDraw(delay_s, status=status)
        u -= rate
    return FaultDraw(delay_s)


def stall_end_s(stalls: tuple[Stall, ...], since_start_s: float) -> float | None:
    """The end (seconds after start) of the scheduled stall covering `since_start_s`, if any."""
    end: float | None = None
    for s in stalls:
        if s.at_s <= since_start_s < s.at_s + s.duration_s:
            end = max(end or 0.0, s.at_s + s.duration_s)
    return end


# ---- parsing ------------------------------------------------------------------------------------------

OPTIONS = (
    "latency",
    "errors",
    "reset_rate",
    "stalls",
    "max_concurrency",
    "service_time",
    "throttle_rate",
    "retry_after",
    "seed",
    "drop_after_ack",
)
# Other names people type for the same options.
ALIASES = {
    "reset": "reset_rate", "resets": "reset_rate", "stall": "stalls", "throttle": "throttle_rate",
    "rate_limit": "throttle_rate", "error": "errors", "error_rates": "errors", "concurrency": "max_concurrency",
    "retry_after_s": "retry_after", "drop": "drop_after_ack", "drops": "drop_after_ack",
}


def parse_delay(text: object, option: str) -> Delay | None:
    """`50ms` | `uniform:10ms:50ms` | `lognormal:20ms:0.5` | `exp:20ms`; empty, `0` or None → no delay."""
    if text is None or text == "" or text == "none":
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = _duration(text, option, text)
        return Delay("fixed", value) if value > 0 else None
    if not isinstance(text, str):
        raise ValueError(f"{option} must be one of {_DELAY_SYNTAX}, got {text!r}")
    parts = text.strip().split(":")
    kind = parts[0].lower()
    if len(parts) == 1:
        value = _duration(parts[0], option, text)
        return Delay("fixed", value) if value > 0 else None
    if kind == "uniform" and len(parts) == 3:
        lo, hi = _duration(parts[1], option, text), _duration(parts[2], option, text)
        if hi < lo:
            raise ValueError(f"{option}: uniform bounds must be low:high, got {text!r}")
        return Delay("uniform", lo, hi)
    if kind == "lognormal" and len(parts) == 3:
        median = _duration(parts[1], option, text)
        try:
            sigma = float(parts[2])
        except ValueError:
            sigma = -1.0
        if not sigma >= 0 or math.isinf(sigma):
            raise ValueError(f"{option}: lognormal sigma must be a number >= 0, got {text!r}")
        return Delay("lognormal", median, sigma)
    if kind == "exp" and len(parts) == 2:
        return Delay("exp", _duration(parts[1], option, text))
    raise ValueError(f"{option} must be one of {_DELAY_SYNTAX}, got {text!r}")


def parse_error_rates(text: object, option: str = "errors") -> tuple[tuple[int, float], ...]:
    """`503:0.05,500:1%` → ((503, 0.05), (500, 0.01)); a status may appear once."""
    if text is None or text == "":
        return ()
    if isinstance(text, Mapping):
        items = [f"{k}:{v}" for k, v in text.items()]
    elif isinstance(text, str):
        items = [p for p in text.split(",") if p.strip()]
    else:
        raise ValueError(f"{option} must look like 503:0.05,500:0.01, got {text!r}")
    out: dict[int, float] = {}
    for item in items:
        status_s, sep, rate_s = item.strip().partition(":")
        if not sep or not status_s.strip().isdigit():
            raise ValueError(f"{option} must look like 503:0.05,500:0.01, got {text!r}")
        status = int(status_s)
        if status in out:
            raise ValueError(f"{option}: status {status} given twice in {text!r}")
        if not 400 <= status <= 599:
            raise ValueError(f"{option}: status must be 400..599, got {status} in {text!r}")
        out[status] = _rate(rate_s, option, text)
    return tuple(out.items())


def parse_stalls(text: object, option: str = "stalls") -> tuple[Stall, ...]:
    """`10s:2s,1m:500ms` → stalls at 10 s for 2 s and at 60 s for 0.5 s after server start."""
    if text is None or text == "":
        return ()
    if isinstance(text, str):
        items: list[object] = [p for p in text.split(",") if p.strip()]
    elif isinstance(text, (list, tuple)):
        items = list(text)
    else:
        raise ValueError(f"{option} must look like 10s:2s,60s:500ms, got {text!r}")
    out = []
    for item in items:
        at_s, sep, dur_s = str(item).strip().partition(":")
        if not sep:
            raise ValueError(f"{option} must look like AT:DURATION (10s:2s), got {text!r}")
        at, dur = _duration(at_s, option, text), _duration(dur_s, option, text)
        if dur <= 0:
            raise ValueError(f"{option}: stall duration must be > 0, got {text!r}")
        out.append(Stall(at, dur))
    return tuple(sorted(out, key=lambda s: s.at_s))


def parse_faults(options: Mapping[str, object]) -> Faults:
    """Faults from option names (OPTIONS, or one of their ALIASES) to text or numbers, as given on the CLI or
    as JSON to POST /_harness/faults. Unknown names, bad values and impossible combinations raise ValueError."""
    canonical: dict[str, object] = {}
    for key, value in options.items():
        name = ALIASES.get(key, key)
        if name not in OPTIONS:
            raise ValueError(f"faults: unknown option {key!r} (known: {', '.join(OPTIONS)})")
        if name in canonical:
            raise ValueError(f"faults: option {name!r} given twice (as {key!r})")
        canonical[name] = value
    get = canonical.get
    max_conc = _int(get("max_concurrency"), "max_concurrency", 0)
    if max_conc < 0:
        raise ValueError(f"max_concurrency must be >= 0, got {get('max_concurrency')!r}")
    seed_raw = get("seed")
    seed = None if seed_raw is None or seed_raw == "" else _int(seed_raw, "seed", 0)
    retry_raw = get("retry_after")
    return Faults(
        latency=parse_delay(get("latency"), "latency"),
        error_rates=parse_error_rates(get("errors"), "errors"),
        reset_rate=_rate(get("reset_rate"), "reset_rate", get("reset_rate")),
        stalls=parse_stalls(get("stalls"), "stalls"),
        max_concurrency=max_conc,
        service_time=parse_delay(get("service_time"), "service_time"),
        throttle_rate=_rate(get("throttle_rate"), "throttle_rate", get("throttle_rate")),
        retry_after_s=1.0 if retry_raw is None else _duration(retry_raw, "retry_after", retry_raw),
        seed=seed,
        drop_after_ack=_rate(get("drop_after_ack"), "drop_after_ack", get("drop_after_ack")),
    )


def _duration(text: object, option: str, whole: object) -> float:
    try:
        value = parse_duration(text if isinstance(text, (int, float)) else str(text).strip(), option)
    except ValueError:
        raise ValueError(f"{option} must be a duration like 50ms, 2s or 1m, got {whole!r}") from None
    if math.isinf(value):
        raise ValueError(f"{option} must be finite, got {whole!r}")
    return value


def _rate(text: object, option: str, whole: object) -> float:
    if text is None or text == "":
        return 0.0
    if isinstance(text, bool):
        raise ValueError(f"{option} must be a probability like 0.05 or 5%, got {whole!r}")
    try:
        s = str(text).strip()
        value = float(s[:-1]) / 100.0 if s.endswith("%") else float(s)
    except ValueError:
        raise ValueError(f"{option} must be a probability like 0.05 or 5%, got {whole!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{option} must be between 0 and 1, got {whole!r}")
    return value


def _check_rate(option: str, rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{option} must be between 0 and 1, got {rate!r}")


def _int(text: object, option: str, default: int) -> int:
    if text is None or text == "":
        return default
    if isinstance(text, bool):
        raise ValueError(f"{option} must be an integer, got {text!r}")
    if isinstance(text, int):
        return text
    try:
        return int(str(text).strip())
    except ValueError:
        raise ValueError(f"{option} must be an integer, got {text!r}") from None


def _fmt(seconds: float) -> str:
    if seconds and seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"

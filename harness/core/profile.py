"""Run profiles: TOML → a frozen, validated `Profile`, the single source of truth for a run.

Pure: parses text or a mapping (the CLI reads files); errors are ValueError with one line naming the key
and the value, e.g. `profile: fleet.vens must be > 0, got 0`. Secrets are never in a profile: it names the
environment variables that hold them.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

from harness.core import badday, embedded
from harness.core.credentials import check_credential_keys
from harness.core.drevent import DrEvent as DrEvent, check as check_dr_events  # DrEvent importable from here
from harness.core.exits import ProfileError as ProfileError  # raised here, importable from here
from harness.core.fleet import SITE_KINDS
from harness.core.keys import unknown_key
from harness.core.replay import ReplaySpec, replay_spec
from harness.core.stages import Stage, total_s
from harness.core.target import KEYS as TARGET_KEYS, TargetSettings, from_table as target_from_table
from harness.core.thresholds import Threshold, from_spec
from harness.core.units import parse_duration

T = TypeVar("T")
CONNECTION_MODES = ("per-ven", "pooled")
EVENT_MODES = ("none", "poll", "webhook", "mqtt")
# The measured operations (summary.json "operations" keys) a per-operation timeout can name.
OPERATIONS = ("token", "auth_server", "create_ven", "find_ven", "create_resource", "subscribe", "report", "poll_events",
              "read_event")


@dataclass(frozen=True)
class Profile:
    name: str = "default"
    description: str = ""
    target: str | None = None  # base URL; None: start the embedded VTN
    vens: int = 1000
    sites_per_ven: int = 1
    mix: tuple[tuple[str, float], ...] = (("household", 1.0),)
    interval_s: float = 15.0
    duration_s: float = 60.0
    reports_per_ven: int | None = None  # count-bounded mode
    workers: int = 0  # 0: one per core
    seed: int = 1
    connection: str = "per-ven"
    mqtt_connection: str | None = None  # MQTT VENs: their own connections or pooled; None: as `connection`
    pool_size: int = 256
    timeout_s: float = 10.0
    drain_s: float = 5.0
    warmup_s: float = 0.0
    dialect: str = embedded.DIALECT
    target_settings: TargetSettings = TargetSettings()  # [target] base_path, operations, granularity, tls
    program_name: str = "harness-program"
    name_prefix: str = "harness"
    time_scale: float = 1.0
    meter_tick_s: float = 5.0
    bl_client_id: str = embedded.BL_CLIENT_ID
    bl_secret_env: str = embedded.BL_SECRET_ENV
    ven_client_prefix: str = embedded.VEN_CLIENT_PREFIX
    ven_secret_env: str = embedded.VEN_SECRET_ENV
    provisioning_client_id: str | None = None  # a privileged credential that creates VENs and resources
    provisioning_secret_env: str = embedded.PROVISIONING_SECRET_ENV
    ven_client_id: str | None = None  # how VENs log in (docs/targets.md "Credentials"): one shared VEN client id
    shared_token: bool = False  # with ven_client_id: one token per worker instead of one per VEN
    ven_credentials: str | None = None  # a CSV file: venName, clientID, secret (or token) per VEN
    ven_token_env: str | None = None  # a variable holding one pre-issued bearer token for every VEN
    token_url: str | None = None  # where VENs ask for tokens: "discover" (GET /auth/server) or a URL; None: the dialect's
    events: str = "none"  # how VENs learn of events: none | poll | webhook | mqtt (3.1.0)
    mqtt_qos: int = 1  # mqtt mode: the QoS of the VENs' subscriptions and the VTN's publishes (1: persistent sessions)
    poll_interval_s: float = 30.0
    unsubscribe: bool = False  # webhook mode: each VEN deletes its subscription at the end of the run
    reread_s: float | None = None  # webhook mode: a VEN re-reads the program's events this long after a notification
    startup_s: float | None = None  # VENs come online spread over this window (None: the first interval)
    dr_events: tuple[DrEvent, ...] = ()
    faults: tuple[badday.TimedFault, ...] = ()  # [[faults]]: timed faults on the run's clock (harness.core.badday)
    reconnect: badday.Backoff = badday.Backoff()  # behaviour.reconnect: back-off and report buffer of a failed VEN
    stages: tuple[Stage, ...] = ()  # ramps of the active fleet; when given they set duration and fleet size
    max_loop_lag_ms: float = 100.0  # generator health: a window with more loop lag is saturated
    max_cpu_percent: float = 95.0
    op_timeouts: dict[str, float] = field(default_factory=dict)  # behaviour.timeouts: per-operation timeout_s
    heartbeat_s: float = 10.0  # a worker silent this long (10 delta intervals) is hung: terminated, then killed
    # Parsed at construction: strings or `{expr, abort_on_fail, grace}` tables become Threshold values.
    thresholds: tuple[Threshold, ...] = ()
    vtn_faults: dict[str, str] = field(default_factory=dict)
    vtn_notification_case: str = "camel"  # vtn.notification_case: the embedded VTN's 3.1.0 notification bodies
    replay: ReplaySpec | None = None  # fleet.replay: measured load curves from CSV instead of the model's
    capacity: dict[str, Any] = field(default_factory=dict)  # the [capacity] table, validated by harness.core.capacity

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", _thresholds(self.thresholds))
        if self.stages:
            # Stages decide how long the run is and how large the fleet must be.
            object.__setattr__(self, "duration_s", total_s(self.stages))
            object.__setattr__(self, "vens", max(s.vens for s in self.stages))
        validate(self)

    @property
    def target_rate_per_s(self) -> float:
        return self.vens / self.interval_s


def _fail(msg: str) -> ProfileError:
    return ProfileError(f"profile: {msg}")


def _thresholds(items: Any) -> tuple[Threshold, ...]:
    if isinstance(items, str) or not isinstance(items, (list, tuple)):
        raise _fail(f"thresholds must be a list of expressions or tables, got {items!r}")
    out = []
    for i, item in enumerate(items):
        try:
            out.append(from_spec(item))
        except ValueError as exc:
            raise _fail(f"thresholds[{i}]: {exc}") from None
    return tuple(out)


def validate(p: Profile) -> None:
    """Every setting in its range, then the settings that depend on each other."""
    _validate_ranges(p)
    _validate_combinations(p)


def _validate_combinations(p: Profile) -> None:
    if p.events == "mqtt" and p.dialect != embedded.DIALECT_31:
        raise _fail(f"behaviour.events = \"mqtt\" needs target.dialect = \"{embedded.DIALECT_31}\", got {p.dialect!r}")
    if p.mqtt_qos not in (0, 1) or isinstance(p.mqtt_qos, bool):
        raise _fail(f"behaviour.mqtt_qos must be 0 or 1, got {p.mqtt_qos}")
    if p.dr_events and p.events == "none":
        raise _fail("dr_events need behaviour.events = \"poll\", \"webhook\" or \"mqtt\" so VENs can learn of them")
    if (problem := check_dr_events(p.dr_events)) is not None:
        raise _fail(problem)
    _or_fail(check_credential_keys, p.ven_client_id, p.ven_credentials, p.ven_token_env, p.shared_token, p.token_url,
             p.bl_client_id)
    if (problem := badday.check(p.faults, p.target is None, p.reread_s, p.events)) is not None:
        raise _fail(problem)
    if p.vtn_notification_case not in ("camel", "snake"):
        raise _fail(f"vtn.notification_case must be \"camel\" or \"snake\", got {p.vtn_notification_case!r}")
    if p.target is not None:
        u = urlparse(p.target)
        if u.scheme not in ("http", "https") or not u.hostname:
            raise _fail(f"target must be an http(s) URL like http://127.0.0.1:8080/openadr3/3.0.1, got {p.target!r}")


def _validate_ranges(p: Profile) -> None:
    for i, st in enumerate(p.stages):
        if st.duration_s <= 0:
            raise _fail(f"stages[{i}].duration must be > 0, got {st.duration_s}")
        if st.vens < 0:
            raise _fail(f"stages[{i}].vens must be >= 0, got {st.vens}")
    if p.stages and max(st.vens for st in p.stages) == 0:
        raise _fail("stages must bring at least one VEN online")
    if p.stages and p.reports_per_ven is not None:
        raise _fail("stages and run.reports_per_ven cannot be combined: stages set the run's length")
    if p.vens <= 0:
        raise _fail(f"fleet.vens must be > 0, got {p.vens}")
    if p.sites_per_ven <= 0:
        raise _fail(f"fleet.sites_per_ven must be > 0, got {p.sites_per_ven}")
    if p.interval_s <= 0:
        raise _fail(f"behaviour.interval must be > 0, got {p.interval_s}")
    if p.duration_s <= 0:
        raise _fail(f"run.duration must be > 0, got {p.duration_s}")
    if p.reports_per_ven is not None and p.reports_per_ven <= 0:
        raise _fail(f"run.reports_per_ven must be > 0, got {p.reports_per_ven}")
    if p.workers < 0:
        raise _fail(f"run.workers must be >= 0, got {p.workers}")
    for key, mode in (("connection", p.connection), ("mqtt_connection", p.mqtt_connection or p.connection)):
        if mode not in CONNECTION_MODES:
            raise _fail(f"behaviour.{key} must be one of {', '.join(CONNECTION_MODES)}, got {mode!r}")
    if p.pool_size <= 0:
        raise _fail(f"behaviour.pool_size must be > 0, got {p.pool_size}")
    if p.timeout_s <= 0:
        raise _fail(f"behaviour.timeout must be > 0, got {p.timeout_s}")
    for op, t in p.op_timeouts.items():
        if op not in OPERATIONS:
            raise _fail(f"unknown operation behaviour.timeouts.{op} (known: {', '.join(OPERATIONS)})")
        if not 0 < t < math.inf:
            raise _fail(f"behaviour.timeouts.{op} must be > 0, got {t}")
    if p.time_scale <= 0:
        raise _fail(f"behaviour.time_scale must be > 0, got {p.time_scale}")
    if not p.heartbeat_s > 0:
        raise _fail(f"run.heartbeat must be > 0, got {p.heartbeat_s}")
    if p.meter_tick_s <= 0:
        raise _fail(f"behaviour.meter_tick must be > 0, got {p.meter_tick_s}")
    for kind, weight in p.mix:
        if kind not in SITE_KINDS:
            raise _fail(f"fleet.mix key must be one of {', '.join(SITE_KINDS)}, got {kind!r}")
        if weight < 0:
            raise _fail(f"fleet.mix.{kind} must be >= 0, got {weight}")
    if p.mix and sum(w for _, w in p.mix) <= 0:
        raise _fail("fleet.mix weights must add up to > 0")
    if p.events not in EVENT_MODES:
        raise _fail(f"behaviour.events must be one of {', '.join(EVENT_MODES)}, got {p.events!r}")
    if p.poll_interval_s <= 0:
        raise _fail(f"behaviour.poll_interval must be > 0, got {p.poll_interval_s}")


# TOML layout: section.key -> Profile field, and how to read the value.
_KEYS: dict[str, tuple[str, str]] = {
    "name": ("name", "str"),
    "description": ("description", "str"),
    "target.url": ("target", "str"),
    "target.dialect": ("dialect", "str"),
    "target.bl_client_id": ("bl_client_id", "str"),
    "target.bl_secret_env": ("bl_secret_env", "str"),
    "target.ven_client_prefix": ("ven_client_prefix", "str"),
    "target.ven_secret_env": ("ven_secret_env", "str"),
    "target.provisioning_client_id": ("provisioning_client_id", "str"),
    "target.provisioning_secret_env": ("provisioning_secret_env", "str"),
    "target.ven_client_id": ("ven_client_id", "str"),
    "target.shared_token": ("shared_token", "bool"),
    "target.ven_credentials": ("ven_credentials", "str"),
    "target.ven_token_env": ("ven_token_env", "str"),
    "target.token_url": ("token_url", "str"),
    "target.program_name": ("program_name", "str"),
    "fleet.vens": ("vens", "int"),
    "fleet.sites_per_ven": ("sites_per_ven", "int"),
    "fleet.mix": ("mix", "mix"),
    "fleet.name_prefix": ("name_prefix", "str"),
    "fleet.replay": ("replay", "replay"),
    "behaviour.interval": ("interval_s", "duration"),
    "behaviour.connection": ("connection", "str"),
    "behaviour.pool_size": ("pool_size", "int"),
    "behaviour.timeout": ("timeout_s", "duration"),
    "behaviour.timeouts": ("op_timeouts", "timeouts"),
    "behaviour.time_scale": ("time_scale", "float"),
    "behaviour.meter_tick": ("meter_tick_s", "duration"),
    "run.duration": ("duration_s", "duration"),
    "run.reports_per_ven": ("reports_per_ven", "int"),
    "run.workers": ("workers", "int"),
    "run.seed": ("seed", "int"),
    "run.drain": ("drain_s", "duration"),
    "run.warmup": ("warmup_s", "duration"),
    "generator.max_loop_lag": ("max_loop_lag_ms", "duration_ms"),
    "generator.max_cpu_percent": ("max_cpu_percent", "float"),
    "run.heartbeat": ("heartbeat_s", "duration"),
    "behaviour.events": ("events", "str"),
    "behaviour.mqtt_qos": ("mqtt_qos", "int"),
    "behaviour.mqtt_connection": ("mqtt_connection", "str"),
    "behaviour.poll_interval": ("poll_interval_s", "duration"),
    "behaviour.unsubscribe": ("unsubscribe", "bool"),
    "behaviour.reread_after_notification": ("reread_s", "duration"),
    "behaviour.startup": ("startup_s", "duration"),
    "dr_events": ("dr_events", "dr_events"),
    "faults": ("faults", "faults"),
    "behaviour.reconnect": ("reconnect", "reconnect"),
    "stages": ("stages", "stages"),
    "thresholds": ("thresholds", "thresholds"),
    "vtn.faults": ("vtn_faults", "strmap"),
    "vtn.notification_case": ("vtn_notification_case", "str"),
    "capacity": ("capacity", "table"),
}


def _convert(key: str, kind: str, value: Any) -> Any:
    if kind == "str":
        if not isinstance(value, str):
            raise _fail(f"{key} must be a string, got {value!r}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _fail(f"{key} must be true or false, got {value!r}")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise _fail(f"{key} must be an integer, got {value!r}")
        return value
    if kind == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise _fail(f"{key} must be a number, got {value!r}")
        return float(value)
    if kind in ("duration", "duration_ms"):
        return _or_fail(parse_duration, value, key) * (1000.0 if kind == "duration_ms" else 1.0)
    return _convert_structured(key, kind, value)


def _convert_structured(key: str, kind: str, value: Any) -> Any:
    """The settings that are lists or tables: faults, reconnect, thresholds, stages, DR events, timeouts, ..."""
    if kind in ("faults", "reconnect"):
        return _or_fail(badday.parse_faults if kind == "faults" else badday.parse_backoff, key, value)
    if kind == "thresholds":
        if not isinstance(value, list):
            raise _fail(f"{key} must be a list of expressions or tables, got {value!r}")
        return tuple(value)  # parsed, with errors naming the item, by Profile.__post_init__
    if kind == "stages":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise _fail(f"{key} must be an array of tables ([[stages]] with duration and vens), got {value!r}")
        out_st = []
        for i, t in enumerate(value):
            extra = set(t) - {"duration", "vens"}
            if extra or "duration" not in t or "vens" not in t:
                raise _fail(f"{key}[{i}] needs exactly duration and vens, got {sorted(t)}")
            out_st.append(Stage(_convert(f"{key}[{i}].duration", "duration", t["duration"]), _convert(f"{key}[{i}].vens", "int", t["vens"])))
        return tuple(out_st)
    if kind == "dr_events":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise _fail(f"{key} must be an array of tables ([[dr_events]]), got {value!r}")
        return tuple(_dr_event(f"{key}[{i}]", v) for i, v in enumerate(value))
    if kind in ("table", "strmap"):
        if not isinstance(value, dict):
            raise _fail(f"{key} must be a table, got {value!r}")
        return dict(value) if kind == "table" else {str(k): str(v) for k, v in value.items()}
    if kind == "timeouts":
        if not isinstance(value, dict):
            raise _fail(f"{key} must be a table of operation = duration, e.g. {{ token = \"5s\", report = \"2s\" }}, got {value!r}")
        out_t: dict[str, float] = {}
        for op, v in value.items():
            if op not in OPERATIONS:
                raise _fail(f"unknown operation {key}.{op} (known: {', '.join(OPERATIONS)})")
            out_t[op] = _convert(f"{key}.{op}", "duration", v)
        return out_t
    if kind == "replay":
        return _or_fail(replay_spec, key, value)
    if kind == "mix":
        if not isinstance(value, dict) or not value:
            raise _fail(f"{key} must be a table of site kind = weight, got {value!r}")
        out = []
        for k, v in value.items():
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise _fail(f"{key}.{k} must be a number, got {v!r}")
            out.append((str(k), float(v)))
        return tuple(out)
    raise AssertionError(kind)  # pragma: no cover


def _or_fail(parse: Callable[..., T], *args: Any) -> T:  # parse(*args); its ValueError as the profile's error
    try:
        return parse(*args)
    except ValueError as exc:
        raise _fail(str(exc)) from None


def _dr_event(key: str, t: dict[str, Any]) -> DrEvent:
    known = {"at": "duration", "level": "int", "duration": "duration", "notice": "duration", "share": "float"}
    for k in t:
        if k not in known:
            raise _fail(unknown_key(f"{key}.{k}", (f"{key}.{n}" for n in known)))
    if "at" not in t:
        raise _fail(f"{key}.at is required (when the operator creates the event, e.g. \"2m\")")
    v = {k: _convert(f"{key}.{k}", known[k], t[k]) for k in t}
    return DrEvent(at_s=v["at"], level=v.get("level", 2), duration_s=v.get("duration", 300.0),
                   notice_s=v.get("notice", 0.0), share=v.get("share", 1.0))


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key not in ("fleet.mix", "fleet.replay", "vtn.faults", "behaviour.reconnect", "capacity", "target.tls", "behaviour.timeouts"):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def from_mapping(doc: dict[str, Any], base: Profile | None = None) -> Profile:
    values: dict[str, Any] = {}
    settings: dict[str, Any] = {}  # the [target] keys harness.core.target reads, parsed there once
    for key, value in _flatten(doc).items():
        if key.startswith("target.") and key[len("target."):] in TARGET_KEYS:
            settings[key[len("target."):]] = value
            continue
        if key not in _KEYS:
            raise _fail(unknown_key(key, [*_KEYS, *(f"target.{k}" for k in TARGET_KEYS)]))
        name, kind = _KEYS[key]
        values[name] = _convert(key, kind, value)
    if settings:
        values["target_settings"] = _or_fail(target_from_table, settings)
    return replace(base or Profile(), **values)


def with_target_settings(p: Profile, **changes: Any) -> Profile:
    """Apply CLI flags to the target settings (None means: not given); a conflict is a ProfileError."""
    changes = {k: v for k, v in changes.items() if v is not None}
    if not changes:
        return p
    try:
        return replace(p, target_settings=replace(p.target_settings, **changes))
    except ValueError as exc:
        raise _fail(str(exc)) from None


def from_toml(text: str, source: str = "profile") -> Profile:
    try:
        return from_mapping(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: not valid TOML: {exc}") from None


def override(p: Profile, **changes: Any) -> Profile:
    """Apply CLI flags (None means: not given)."""
    return replace(p, **{k: v for k, v in changes.items() if v is not None})


FIELD_NAMES = tuple(f.name for f in fields(Profile))

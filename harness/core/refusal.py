"""First contact refused: when every one of a run's first tokens (or VEN creations) failed with the same 4xx, the
target refuses the run as configured — a wrong secret, an unknown client id, VENs that may not create themselves —
and waiting out the run's duration would only repeat it.

Pure: judges the merged results so far; the watch that stops the run is harness.sinks.loginwatch.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.results import RunResults

FIRST_CONTACT_OPS = ("token", "create_ven")  # what every VEN does first, in order
FIRST_N = 10  # this many failures in a row, and not one success, prove it (fewer when the fleet is smaller)
NOT_FINAL = frozenset({408, 425, 429})  # 4xx that may pass: timeout, too early, throttled
_LOGIN_HINT = ("check how VENs log in: target.ven_client_id / ven_credentials / ven_token_env and the secret in "
               "target.ven_secret_env (docs/targets.md: Credentials)")
HINTS = {  # (operation, status) -> what to check; status 0: any other
    ("token", 0): _LOGIN_HINT,
    ("create_ven", 401): "the VTN refused the VENs' tokens: " + _LOGIN_HINT,
    ("create_ven", 0): "the VTN may not let VENs create themselves: name a privileged target.provisioning_client_id, "
                       "or check the VEN's scopes and the request the VTN refused",
}


@dataclass(frozen=True)
class Refusal:
    """The first contact the target refused: which operation, how often, with which status and one example."""

    operation: str
    failures: int
    status: int
    example: str

    def message(self) -> str:
        return (f"run aborted: every one of the first {self.failures:,} {self.operation} requests failed with HTTP "
                f"{self.status} ({self.example}); {self.hint()}")

    def hint(self) -> str:
        op = self.operation
        return HINTS.get((op, self.status)) or HINTS.get((op, 0)) or "check the target settings"


def _status(error_class: str) -> int | None:
    if not error_class.startswith("http_"):
        return None
    try:
        return int(error_class[5:])
    except ValueError:
        return None


def first_contact_refusal(results: RunResults, vens: int) -> Refusal | None:
    """A Refusal when an operation of first contact has had no success and at least min(vens, FIRST_N) failures,
    every one of them the same final 4xx; else None. Warm-up windows count: first contact is early by nature."""
    first_n = max(1, min(vens, FIRST_N))
    for op in FIRST_CONTACT_OPS:
        ok = errors = 0
        for totals in (results.warmup, results.totals):
            t = totals.get(op)
            if t is not None:
                ok, errors = ok + t.ok, errors + t.errors
        if ok or errors < first_n:
            continue
        classes = results.errors_of(op)
        if len(classes) != 1:
            continue
        ((cls, n),) = classes.items()
        status = _status(cls)
        if status is None or not 400 <= status < 500 or status in NOT_FINAL or n != errors:
            continue
        return Refusal(op, errors, status, str(results.errors[cls]["by_operation"][op]["example"]))
    return None


def not_openadr(url: str, status: int, content_type: str, body: bytes) -> str | None:
    """The line for a target that answered its token endpoint with a web page (any status): a plain web server, a
    proxy's error page or a wrong base path — not an OpenADR VTN there; None for anything a VTN could send."""
    kind = content_type.split(";")[0].strip().lower()
    if kind != "text/html" and not body.lstrip()[:1] == b"<":
        return None
    return (f"not an OpenADR VTN at {url}: HTTP {status} {kind or 'with no content type'} from its token endpoint; "
            "--target must be the VTN's base URL, e.g. http://HOST:PORT/openadr3/3.0.1")


def tls_hint(url: str, reason: str) -> str:
    """The line for a TLS failure on first contact (a certificate the run does not trust, a handshake refused)."""
    return (f"target {url}: TLS failed ({reason}); trust the VTN's CA with --ca-bundle FILE (target.tls.ca_bundle), "
            "or for a test VTN only skip the check with --insecure")

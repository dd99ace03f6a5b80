"""TLS client context for a target from its TargetSettings (CA bundle, client certificate, verification).

Edge (ssl, files). Build it inside the process that uses it (an SSLContext does not pickle); a missing or
unreadable file is a one-line ValueError naming the option and the path, so the CLI can exit 2.
"""

from __future__ import annotations

import os
import ssl

from harness.core.target import TargetSettings


def client_context(settings: TargetSettings) -> ssl.SSLContext:
    """TLS >= 1.2 (the spec's floor), the system CAs or `ca_bundle`, an optional client certificate."""
    if settings.ca_bundle is not None:
        _readable("target.tls.ca_bundle", settings.ca_bundle)
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ca_bundle is not None:
        try:
            ctx.load_verify_locations(cafile=settings.ca_bundle)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(f"target.tls.ca_bundle {settings.ca_bundle} is not a PEM CA bundle: {_why(exc)}") from None
    if not settings.verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if settings.client_cert is not None:
        _readable("target.tls.client_cert", settings.client_cert)
        if settings.client_key is not None:
            _readable("target.tls.client_key", settings.client_key)
        try:
            ctx.load_cert_chain(settings.client_cert, settings.client_key)
        except ssl.SSLError as exc:
            what = "target.tls.client_key" if settings.client_key is not None else "target.tls.client_cert"
            path = settings.client_key if settings.client_key is not None else settings.client_cert
            raise ValueError(f"{what} {path}: certificate and key do not load as PEM: {_why(exc)}") from None
    return ctx


def context_for(url: str, settings: TargetSettings) -> ssl.SSLContext | None:
    """The context for an https target; None for plain http (TLS settings on an http target are an error)."""
    if url.lower().startswith("https://"):
        return client_context(settings)
    if settings.ca_bundle is not None or settings.client_cert is not None:
        raise ValueError(f"target.tls is set but the target {url} is plain http")
    return None


def _readable(option: str, path: str) -> None:
    if not os.path.isfile(path):
        raise ValueError(f"{option} file not found: {path}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{option} file not readable: {path}")


def _why(exc: BaseException) -> str:
    return (getattr(exc, "reason", None) or str(exc) or type(exc).__name__)[:120]

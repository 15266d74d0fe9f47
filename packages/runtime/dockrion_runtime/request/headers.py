"""Secure response defaults: the security headers every response carries, and CORS.

CORS: with the default origins (`*`, which browser front ends served from another origin
rely on) the answer is `Access-Control-Allow-Origin: *` without credentials; credentials
are allowed only for an explicit list of origins, and an origin is never reflected. Our
auth travels in headers, not cookies, so a wildcard never needs credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..settings import SettingsError

__all__ = ["DEFAULT_SECURITY_HEADERS", "cors_options", "security_headers"]

# The API serves JSON and event streams: nothing to sniff, frame or leak a referrer from.
DEFAULT_SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}


def _encoded(name: str, value: str) -> tuple[bytes, bytes]:
    field = f"expose.security_headers.{name}"
    if not name or any(c in name for c in " \t\r\n:") or not name.isascii():
        raise SettingsError(f"{field}: not a valid header name")
    if "\r" in value or "\n" in value:
        raise SettingsError(f"{field}: a header value cannot contain a line break")
    try:
        return name.lower().encode("ascii"), value.encode("latin-1")
    except UnicodeEncodeError:
        raise SettingsError(f"{field}: the value must be Latin-1 text") from None


def security_headers(overrides: Mapping[str, str | None]) -> list[tuple[bytes, bytes]]:
    """The defaults with the Dockfile's `expose.security_headers` laid over them (matched
    without regard to case; a null value drops the header)."""
    merged: dict[str, tuple[str, str | None]] = {
        name.lower(): (name, value) for name, value in DEFAULT_SECURITY_HEADERS.items()
    }
    for name, value in overrides.items():
        merged[name.lower()] = (name, value)
    return [_encoded(name, value) for name, value in merged.values() if value is not None]


def cors_options(cors: Mapping[str, Any]) -> dict[str, Any]:
    """CORSMiddleware options for the Dockfile's `expose.cors`."""
    origins = list(cors.get("origins") or ["*"])
    wildcard = "*" in origins
    return {
        "allow_origins": ["*"] if wildcard else origins,
        "allow_methods": list(cors.get("methods") or ["*"]),
        "allow_headers": ["*"],
        "allow_credentials": not wildcard,
        "expose_headers": ["X-Request-ID", "Content-Location", "Location"],
    }

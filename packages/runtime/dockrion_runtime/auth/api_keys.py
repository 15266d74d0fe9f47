"""`auth.mode: api_key`: keys from the environment, compared in constant time.

Keys are read once, when the app is built; a missing key is a start-up error, never a 500
per request."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

from starlette.requests import Request

from dockrion_schema import ApiKeysConfig, AuthConfig

from .base import AuthConfigError, Authenticator, AuthFailed, Principal, bearer_token

__all__ = ["ApiKeyAuth", "api_keys_from"]


class ApiKeyAuth(Authenticator):
    scheme = "api_key"

    def __init__(
        self,
        keys: Mapping[str, str],
        header: str,
        allow_bearer: bool,
        roles: Mapping[str, list[str]] | None = None,
    ) -> None:
        # key_id -> key bytes; compared with every key so timing reveals nothing.
        self._keys = [(key_id, key.encode()) for key_id, key in keys.items()]
        self.header = header
        self.allow_bearer = allow_bearer
        # A key not named in `api_keys.roles` has the role "default". One principal per
        # key, made once (`Access.resolve` remembers what it resolved them to).
        named = {key_id: tuple(names) for key_id, names in (roles or {}).items()}
        self._principals = {
            key_id: Principal(
                id=f"api_key:{key_id}",
                method="api_key",
                key_id=key_id,
                roles=named.get(key_id, ("default",)),
            )
            for key_id in keys
        }

    async def authenticate(self, request: Request) -> Principal:
        supplied = request.headers.get(self.header, "").strip()
        if not supplied and self.allow_bearer:
            supplied = bearer_token(request) or ""
        if not supplied:
            where = f"the '{self.header}' header"
            if self.allow_bearer:
                where += " or 'Authorization: Bearer <key>'"
            raise AuthFailed(f"API key required: send it in {where}", "MISSING_CREDENTIALS")
        candidate = supplied.encode()
        matched: str | None = None
        for key_id, key in self._keys:
            if hmac.compare_digest(candidate, key) and matched is None:
                matched = key_id
        if matched is None:
            raise AuthFailed("Invalid API key", "INVALID_CREDENTIALS")
        return self._principals[matched]


_KEY_ID = re.compile(r"[A-Z0-9][A-Z0-9_]*")


def api_keys_from(config: AuthConfig, environ: Mapping[str, str]) -> dict[str, str]:
    """key id -> key. With `prefix: team`, exactly `TEAM_API_KEY` (key id `default`) and
    `TEAM_API_KEY_<ID>` (key id `<id>` in lower case) are keys; no other variable is, so
    an unrelated `TEAM_OTHER` never becomes a way in."""
    settings = config.api_keys or ApiKeysConfig()
    env_var = settings.env_var
    prefix = settings.prefix
    if prefix:
        single = prefix.upper().rstrip("_") + "_API_KEY"
        keys = {
            name[len(single) + 1 :].lower() if name != single else "default": value
            for name, value in environ.items()
            if value and (name == single or _named_key(name, single))
        }
        if not keys:
            raise AuthConfigError(
                f"auth.api_keys.prefix is {prefix!r} but neither {single} nor any "
                f"{single}_<ID> variable holds a key (e.g. {single}_ALICE=...)"
            )
        return keys
    key = environ.get(env_var, "")
    if not key:
        raise AuthConfigError(
            f"auth mode api_key needs a key: set the environment variable {env_var} "
            "(or auth.api_keys.env_var / prefix in the Dockfile)"
        )
    return {"default": key}


def _named_key(name: str, single: str) -> bool:
    return name.startswith(single + "_") and _KEY_ID.fullmatch(name[len(single) + 1 :]) is not None

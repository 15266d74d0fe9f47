"""The authenticator the Dockfile's `auth.mode` names."""

from __future__ import annotations

from collections.abc import Mapping

from dockrion_schema import ApiKeysConfig, AuthConfig

from .api_keys import ApiKeyAuth, api_keys_from
from .base import AuthConfigError, Authenticator
from .jwt_auth import JwtAuth
from .oauth2 import OAuth2Introspection

__all__ = ["build_auth"]


def build_auth(config: AuthConfig | None, environ: Mapping[str, str]) -> Authenticator:
    """The authenticator the Dockfile asks for. Raises `AuthConfigError` when it cannot work."""
    if config is None or config.mode == "none":
        return Authenticator()
    if config.mode == "api_key":
        settings = config.api_keys or ApiKeysConfig()
        return ApiKeyAuth(
            api_keys_from(config, environ),
            header=settings.header,
            allow_bearer=settings.allow_bearer,
            roles=settings.roles,
        )
    if config.mode == "jwt":
        if config.jwt is None:
            raise AuthConfigError(
                "auth mode jwt needs an auth.jwt section (jwks_url or public_key_env)"
            )
        return JwtAuth(config.jwt, environ)
    if config.mode == "oauth2":
        if config.oauth2 is None:
            raise AuthConfigError(
                "auth mode oauth2 needs an auth.oauth2 section (introspection_url, "
                "client_id_env, client_secret_env)"
            )
        return OAuth2Introspection(
            config.oauth2, config.jwt.claims if config.jwt else None, environ
        )
    raise AuthConfigError(
        f"auth mode {config.mode!r} is not known; use api_key, jwt, oauth2 or none"
    )

"""The `auth` section of a Dockfile v1: API keys, JWT, OAuth2 introspection, roles and
rate limits."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    Field,
    field_validator,
    model_validator,
)

from ._fields import (
    RATE_LIMIT_RE,
    RATE_WINDOWS,
    Between,
    _Section,
)

# --- auth ------------------------------------------------------------------------------


def normalize_rate_limit(value: str) -> str:
    """`"100/h"`, `"100/hours"`, `"100 / hour"` -> `"100/hour"`; raises ValueError otherwise."""
    match = RATE_LIMIT_RE.match(value)
    window = match and RATE_WINDOWS.get(match.group(2).lower().removesuffix("s") or "s")
    if match and match.group(2).lower() == "s":
        window = "second"
    if not match or not window or int(match.group(1)) <= 0:
        raise ValueError(
            f"{value!r} is not a rate limit; use '<count>/<window>' with a positive count and "
            "a window of second, minute, hour or day (or s, m, h, d), e.g. '100/hour'"
        )
    return f"{int(match.group(1))}/{window}"


class ApiKeysConfig(_Section):
    env_var: str = "DOCKRION_API_KEY"
    prefix: str | None = None
    header: Annotated[str, Field(min_length=1, max_length=64)] = "X-API-Key"
    allow_bearer: bool = True
    enabled: bool = True
    # Not enforced, so refused when set: Dockrion neither rotates nor expires API keys (rotate
    # one by changing its environment variable and restarting).
    rotation_days: None = None
    # key id -> names of roles in auth.roles; a key not listed has the role "default".
    roles: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("rotation_days", mode="before")
    @classmethod
    def _rotation_is_not_enforced(cls, value: object) -> None:
        if value is not None:
            raise ValueError(
                f"is not enforced, got {value!r}: Dockrion neither rotates nor expires API "
                "keys; remove it, and rotate a key by changing its environment variable and "
                "restarting"
            )
        return None


class JWTClaimsConfig(_Section):
    user_id: str = "sub"
    email: str = "email"
    name: str = "name"
    roles: str = "roles"
    permissions: str = "permissions"
    scopes: str = "scope"
    tenant_id: str | None = None


JWTAlgorithm = Literal[
    "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"
]


class JWTConfig(_Section):
    jwks_url: str | None = None
    public_key_env: str | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: list[JWTAlgorithm] = Field(default_factory=lambda: list[JWTAlgorithm](["RS256"]))
    leeway_seconds: Annotated[int, Between(0, 300)] = 30
    claims: JWTClaimsConfig | None = None
    # A token without `exp` never expires; accepting one is an explicit choice.
    require_exp: bool = True


class OAuth2Config(_Section):
    introspection_url: str | None = None
    client_id_env: str | None = None
    client_secret_env: str | None = None
    required_scopes: list[str] = Field(default_factory=list)


Permission = Literal[
    "deploy", "rollback", "invoke", "view_metrics", "key_manage", "read_logs", "read_docs"
]
# Every permission a role may grant, in the Dockfile's order (what a server enforces).
PERMISSIONS: tuple[str, ...] = get_args(Permission)


class RoleConfig(_Section):
    name: str
    permissions: list[Permission]
    # A caller with this role may have this many runs going at once (instead of
    # auth.max_runs_per_caller); with several roles, the largest applies.
    max_runs: Annotated[int, Between(1, 1_000_000)] | None = None
    # The same for open subscriptions to runs (instead of auth.max_streams_per_caller).
    max_streams: Annotated[int, Between(1, 1_000_000)] | None = None


class AuthConfig(_Section):
    mode: Literal["none", "api_key", "jwt", "oauth2"] = "api_key"
    api_keys: ApiKeysConfig | None = None
    jwt: JWTConfig | None = None
    oauth2: OAuth2Config | None = None
    roles: list[RoleConfig] = Field(default_factory=list)
    rate_limits: dict[str, Annotated[str, AfterValidator(normalize_rate_limit)]] = Field(
        default_factory=dict
    )
    # Runs (/invoke, /invoke/stream, POST /runs, WebSocket and AG-UI runs) one caller may
    # have going at once, on every instance together; past it, 429 TOO_MANY_RUNS. The
    # default leaves room for others (a tenth of streaming.memory.max_runs) and for one
    # back end that calls the agent for many users with one key.
    max_runs_per_caller: Annotated[int, Between(1, 1_000_000)] = 1000
    # Open subscriptions to runs (GET /runs/{id}/events, WS /runs/{id}/ws, AG-UI streams)
    # one caller may hold at once; past it, 429 TOO_MANY_STREAMS.
    max_streams_per_caller: Annotated[int, Between(1, 1_000_000)] = 2000

    @model_validator(mode="after")
    def _key_roles_exist(self) -> AuthConfig:
        key_roles = self.api_keys.roles if self.api_keys else {}
        defined = {role.name for role in self.roles}
        unknown = sorted(
            {name for names in key_roles.values() for name in names if name not in defined}
        )
        if unknown:
            raise ValueError(
                f"auth.api_keys.roles names roles that auth.roles does not define: "
                f"{', '.join(unknown)}; define them under auth.roles (name, permissions)"
            )
        return self

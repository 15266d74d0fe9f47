"""`GET /.well-known/agent-card.json`: the A2A agent card, public like any discovery
document: the agent's name, description and version, its one skill, the JSON-RPC
interface at `POST /a2a` (A2A 1.0), and the security schemes of the Dockfile's `auth`."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..runtime import runtime_of
from ..settings import RuntimeSettings

__all__ = ["agent_card", "card_for"]

A2A_PATH = "/a2a"
PROTOCOL_VERSION = "1.0"
_MODES = ["text/plain", "application/json"]


def _security(settings: RuntimeSettings) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The security schemes and requirements (any one scheme suffices) of the auth mode."""
    mode = settings.auth_mode
    schemes: dict[str, Any] = {}
    if mode == "api_key":
        keys = settings.api_keys
        schemes["apiKey"] = {
            "apiKeySecurityScheme": {
                "description": "The agent's API key",
                "location": "header",
                "name": keys.header,
            }
        }
        if keys.allow_bearer:
            schemes["bearer"] = {
                "httpAuthSecurityScheme": {
                    "description": "The API key as a bearer token",
                    "scheme": "Bearer",
                }
            }
    elif mode == "jwt":
        schemes["bearer"] = {
            "httpAuthSecurityScheme": {
                "description": "A JSON Web Token from the agent's issuer",
                "scheme": "Bearer",
                "bearerFormat": "JWT",
            }
        }
    elif mode == "oauth2":
        schemes["bearer"] = {
            "httpAuthSecurityScheme": {
                "description": "An OAuth 2.0 access token (checked by introspection)",
                "scheme": "Bearer",
            }
        }
    requirements: list[dict[str, Any]] = [{"schemes": {name: {"list": []}}} for name in schemes]
    return schemes, requirements


def card_for(settings: RuntimeSettings, base_url: str) -> dict[str, Any]:
    """The agent card of this Dockfile, its interface at `base_url`."""
    config = settings.a2a
    schemes, requirements = _security(settings)
    skill = {
        "id": settings.name,
        "name": settings.name,
        "description": (
            f"{settings.description}. Send a text message, or a data part holding a JSON "
            "object that matches the agent's input schema (GET /schema)."
        ),
        "tags": list(config.tags) or [settings.framework],
        "inputModes": list(_MODES),
        "outputModes": list(_MODES),
    }
    card: dict[str, Any] = {
        "name": settings.name,
        "description": settings.description,
        "version": settings.version,
        "supportedInterfaces": [
            {
                "url": base_url.rstrip("/") + A2A_PATH,
                "protocolBinding": "JSONRPC",
                "protocolVersion": PROTOCOL_VERSION,
            }
        ],
        "capabilities": {"streaming": True, "pushNotifications": False},
        "defaultInputModes": list(_MODES),
        "defaultOutputModes": list(_MODES),
        "skills": [skill],
    }
    if schemes:
        card["securitySchemes"] = schemes
        card["securityRequirements"] = requirements
    return card


async def agent_card(request: Request) -> JSONResponse:
    settings = runtime_of(request).settings
    return JSONResponse(card_for(settings, str(request.base_url)))

"""Roles and permissions: the permission table (from the route table), 403 FORBIDDEN, API
key roles, JWT roles from the configured claim, reading other callers' runs, and the
caller's AuthContext as agent code sees it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from dockrion_runtime.routes import ROUTE_TABLE, Endpoint, served
from dockrion_runtime.settings import RuntimeSettings
from dockrion_schema import load_dockspec

from .conftest import write_project

Serve = Callable[..., str]

AGENT = """
def whoami(payload, context):
    auth = context.auth
    return {
        "method": auth.method, "principal_id": auth.principal_id, "key_id": auth.key_id,
        "user_id": auth.user_id, "email": auth.email, "name": auth.name,
        "roles": list(auth.roles), "permissions": list(auth.permissions),
        "scopes": list(auth.scopes), "tenant_id": auth.tenant_id,
        "claims": dict(auth.claims), "fields": sorted(auth.__slots__),
        "query": payload["query"],
    }
"""

ROLES = """
expose:
  host: 127.0.0.1
  streaming: [sse, websocket]
  ag_ui: {enabled: true}
  mcp: {enabled: true}
auth:
  api_keys:
    prefix: team
    roles: {alice: [invoker], rita: [reader], ops: [ops], admin: [admin, invoker]}
  roles:
    - {name: invoker, permissions: [invoke]}
    - {name: reader, permissions: [read_docs]}
    - {name: ops, permissions: [view_metrics]}
    - {name: admin, permissions: [read_logs]}
"""

KEYS = {
    "TEAM_API_KEY_ALICE": "key-alice",
    "TEAM_API_KEY_RITA": "key-rita",
    "TEAM_API_KEY_OPS": "key-ops",
    "TEAM_API_KEY_ADMIN": "key-admin",
    "TEAM_API_KEY": "key-default",  # the role "default" is not defined: no permission
}
HOLDER = {"invoke": "key-alice", "read_docs": "key-rita", "view_metrics": "key-ops"}


def key(value: str) -> dict[str, str]:
    return {"X-API-Key": value}


def request(url: str, endpoint: Endpoint, headers: dict[str, str]) -> httpx.Response:
    """The endpoint's answer; for a WebSocket row, the HTTP answer to the handshake (101
    when the upgrade completes)."""
    path = endpoint.path.replace("{run_id}", "no-such-run").replace("{thread_id}", "no-such-thread")
    if endpoint.kind == "websocket":
        try:
            with connect("ws" + url.removeprefix("http") + path, additional_headers=headers):
                return httpx.Response(101)
        except InvalidStatus as refused:
            answer = refused.response
            return httpx.Response(answer.status_code, content=bytes(answer.body or b""))
    body = {"query": "hi"} if endpoint.method == "POST" else None
    return httpx.request(endpoint.method, f"{url}{path}", json=body, headers=headers, timeout=30)


def test_every_endpoint_of_the_permission_table_refuses_callers_without_it(
    serve: Serve, tmp_path: Path
) -> None:
    needing = [endpoint for endpoint in ROUTE_TABLE if endpoint.permission is not None]
    # every permission the route table asks for has a key holding it here, and this
    # Dockfile serves every row that asks for one
    assert set(HOLDER) == {endpoint.permission for endpoint in needing}
    (tmp_path / "spec").mkdir()
    dockfile = write_project(tmp_path / "spec", "whoami", ROLES, AGENT)
    served_here = served(RuntimeSettings.from_spec(load_dockspec(dockfile), dockfile.parent))
    assert [endpoint for endpoint in needing if endpoint not in served_here] == []
    url = serve("whoami", ROLES, AGENT, environ=KEYS)
    for endpoint in needing:
        for name, holder in HOLDER.items():
            response = request(url, endpoint, key(holder))
            if name == endpoint.permission:
                assert response.status_code not in (401, 403), endpoint.path
                continue
            assert response.status_code == 403, (endpoint.path, name)
            body = response.json()
            assert body["code"] == "FORBIDDEN"
            assert body["details"]["required_permissions"] == [endpoint.permission]
            assert f"'{endpoint.permission}' permission" in body["error"]
            assert body["detail"]["code"] == "FORBIDDEN"
        anonymous = request(url, endpoint, {})
        assert anonymous.status_code == 401, endpoint.path
    # no role at all: the key is known, so 403 rather than 401
    refused = httpx.post(f"{url}/invoke", json={"query": "x"}, headers=key("key-default"))
    assert refused.status_code == 403
    assert refused.json()["details"]["roles"] == ["default"]
    # public rows stay public
    for path in ("/", "/health", "/ready", "/info"):
        assert httpx.get(f"{url}{path}").status_code == 200, path


def test_agent_sees_the_api_key_caller_never_the_key(serve: Serve) -> None:
    url = serve("whoami", ROLES, AGENT, environ=KEYS)
    response = httpx.post(f"{url}/invoke", json={"query": "x"}, headers=key("key-admin"))
    output = response.json()["output"]
    assert "key-admin" not in response.text
    assert output["method"] == "api_key"
    assert output["principal_id"] == "api_key:admin"
    assert output["key_id"] == "admin"
    assert output["roles"] == ["admin", "invoker"]
    assert output["permissions"] == ["invoke", "read_logs"]


def test_read_logs_reads_other_callers_runs_but_never_cancels_them(serve: Serve) -> None:
    url = serve("whoami", ROLES, AGENT, environ=KEYS)
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}, headers=key("key-alice")).json()[
        "run_id"
    ]
    with httpx.stream(
        "GET", f"{url}/runs/{run_id}/events", headers=key("key-admin"), timeout=30
    ) as events:
        assert b"event: complete" in b"".join(events.iter_bytes())
    assert httpx.get(f"{url}/runs/{run_id}", headers=key("key-admin")).status_code == 200
    cancel = httpx.delete(f"{url}/runs/{run_id}", headers=key("key-admin"))
    assert cancel.status_code == 404
    other = {**KEYS, "TEAM_API_KEY_BOB": "key-bob"}
    url = serve(
        "whoami",
        ROLES.replace("alice: [invoker]", "alice: [invoker], bob: [invoker]"),
        AGENT,
        environ=other,
    )
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}, headers=key("key-alice")).json()[
        "run_id"
    ]
    assert httpx.get(f"{url}/runs/{run_id}", headers=key("key-bob")).status_code == 404


SECRET = "a-long-test-secret-for-hs256-signing-0123456789"
JWT_ROLES = """
expose:
  host: 127.0.0.1
  streaming: [sse, websocket]
  ag_ui: {enabled: true}
auth:
  mode: jwt
  jwt:
    public_key_env: JWT_SECRET
    algorithms: [HS256]
    claims: {roles: realm_access.roles, tenant_id: org.id}
  roles:
    - {name: agent-user, permissions: [invoke]}
"""


def bearer(**claims: object) -> dict[str, str]:
    body = {"sub": "alice", "exp": int(time.time()) + 300, **claims}
    return {"Authorization": f"Bearer {jwt.encode(body, SECRET, algorithm='HS256')}"}


def test_jwt_roles_come_from_the_configured_claim(serve: Serve) -> None:
    url = serve("whoami", JWT_ROLES, AGENT, environ={"JWT_SECRET": SECRET})
    allowed = httpx.post(
        f"{url}/invoke",
        json={"query": "x"},
        headers=bearer(
            realm_access={"roles": ["agent-user"]},
            roles=["ignored"],
            email="alice@example.com",
            name="Alice",
            scope="read write",
            org={"id": "acme"},
        ),
    )
    assert allowed.status_code == 200
    output = allowed.json()["output"]
    assert output["method"] == "jwt" and output["user_id"] == "alice"
    assert output["roles"] == ["agent-user"]
    assert output["permissions"] == ["invoke"]
    assert output["scopes"] == ["read", "write"]
    assert (output["email"], output["name"], output["tenant_id"]) == (
        "alice@example.com",
        "Alice",
        "acme",
    )
    assert output["claims"]["org"] == {"id": "acme"}
    assert set(output["fields"]) >= {
        "method", "principal_id", "key_id", "user_id", "email", "name", "roles",
        "permissions", "scopes", "tenant_id", "claims",
    }  # fmt: skip
    refused = httpx.post(f"{url}/invoke", json={"query": "x"}, headers=bearer(roles=["agent-user"]))
    assert (refused.status_code, refused.json()["code"]) == (403, "FORBIDDEN")
    scalar = httpx.post(
        f"{url}/invoke", json={"query": "x"}, headers=bearer(realm_access={"roles": "agent-user"})
    )
    assert scalar.status_code == 200


@pytest.mark.parametrize("path", ["/metrics", "/openapi.json", "/docs", "/schema"])
def test_without_roles_everything_stays_as_before(serve: Serve, path: str) -> None:
    url = serve("whoami", "auth:\n  mode: api_key\n", AGENT, environ={"DOCKRION_API_KEY": "k"})
    assert httpx.get(f"{url}{path}").status_code == 200
    output = httpx.post(f"{url}/invoke", json={"query": "x"}, headers=key("k")).json()["output"]
    assert output["key_id"] == "default" and "invoke" in output["permissions"]

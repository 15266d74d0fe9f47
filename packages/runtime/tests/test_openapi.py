"""/openapi.json from the Dockfile and an offline /docs."""

from __future__ import annotations

from collections.abc import Callable

import httpx

Serve = Callable[..., str]


def test_openapi_is_built_from_io_schema(serve: Serve) -> None:
    url = serve("echo")
    document = httpx.get(f"{url}/openapi.json").json()
    assert document["openapi"] == "3.0.3"
    assert document["info"]["title"] == "test-agent"
    assert set(document["paths"]) == {
        "/health",
        "/ready",
        "/info",
        "/schema",
        "/metrics",
        "/usage",
        "/invoke",
        "/invoke/stream",
        "/runs",
        "/runs/{run_id}",
        "/runs/{run_id}/events",
        "/runs/{run_id}/resume",
        "/threads/{thread_id}",
        "/threads/{thread_id}/runs",
    }
    assert set(document["paths"]["/runs/{run_id}"]) == {"get", "delete"}
    invoke = document["paths"]["/invoke"]["post"]
    ref = invoke["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/Test_agentInput"
    schemas = document["components"]["schemas"]
    assert schemas["Test_agentInput"]["required"] == ["query"]
    assert schemas["Test_agentInput"]["properties"]["query"] == {"type": "string"}
    assert "securitySchemes" not in document["components"]
    assert "security" not in invoke


def test_openapi_security_follows_the_auth_mode(serve: Serve) -> None:
    url = serve(
        "echo",
        "auth:\n  api_keys: {env_var: K, header: X-Custom, allow_bearer: false}\n",
        environ={"K": "secret-value"},
    )
    document = httpx.get(f"{url}/openapi.json").json()
    assert document["components"]["securitySchemes"] == {
        "APIKeyHeader": {"type": "apiKey", "in": "header", "name": "X-Custom"}
    }
    assert document["paths"]["/invoke"]["post"]["security"] == [{"APIKeyHeader": []}]
    assert "security" not in document["paths"]["/health"]["get"]
    assert "secret-value" not in httpx.get(f"{url}/openapi.json").text


def test_docs_work_offline(serve: Serve) -> None:
    url = serve("echo")
    page = httpx.get(f"{url}/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text
    assert "https://" not in page.text and "http://" not in page.text  # no CDN
    script = httpx.get(f"{url}/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    assert httpx.get(f"{url}/docs/assets/swagger-ui.css").status_code == 200

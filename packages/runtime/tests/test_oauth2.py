"""auth.mode oauth2: token introspection (RFC 7662) against a real endpoint on loopback,
with client credentials from the environment, required scopes and a short cache."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockrion_runtime import AuthConfigError, create_app
from dockrion_runtime.auth.oauth2 import FAILURES_PER_ADDRESS, IN_FLIGHT_PER_ADDRESS

from .conftest import write_project

Serve = Callable[..., str]

AGENT = """
def whoami(payload, context):
    auth = context.auth
    return {"method": auth.method, "user_id": auth.user_id, "scopes": list(auth.scopes),
            "client_id": auth.client_id, "principal_id": auth.principal_id}
"""

ANSWERS: dict[str, dict[str, Any]] = {
    "good-token": {
        "active": True,
        "sub": "alice",
        "client_id": "web-app",
        "scope": "agents:invoke profile",
    },
    "narrow-token": {"active": True, "sub": "bob", "scope": "profile"},
    "machine-token": {"active": True, "client_id": "batch-job", "scope": "agents:invoke"},
    "dead-token": {"active": False},
    # active by the server's word, but its `exp` has passed: never cached
    "stale-token": {"active": True, "sub": "carol", "scope": "agents:invoke", "exp": 1},
}
CLIENT = ("dockrion-runtime", "s3cret/with:chars")


class Introspection:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.held_prefix = "held-"  # tokens whose answer waits for `release`
        self.release = threading.Event()
        owner = self
        expected = (
            "Basic "
            + base64.b64encode(
                ":".join(urllib.parse.quote(p, safe="") for p in CLIENT).encode()
            ).decode()
        )

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                form = urllib.parse.parse_qs(self.rfile.read(length).decode())
                if self.headers["Authorization"] != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                token = form["token"][0]
                owner.calls.append(token)
                if token.startswith(owner.held_prefix):
                    owner.release.wait(60)  # a slow endpoint, until the test lets it answer
                body = json.dumps(ANSWERS.get(token, {"active": False})).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/introspect"


@pytest.fixture
def introspection() -> Iterator[Introspection]:
    endpoint = Introspection()
    thread = threading.Thread(target=endpoint.server.serve_forever, daemon=True)
    thread.start()
    yield endpoint
    endpoint.release.set()
    endpoint.server.shutdown()
    endpoint.server.server_close()


def dockfile_extra(url: str) -> str:
    return (
        "auth:\n  mode: oauth2\n  oauth2:\n"
        f"    introspection_url: {url}\n"
        "    client_id_env: OAUTH_CLIENT_ID\n    client_secret_env: OAUTH_CLIENT_SECRET\n"
        "    required_scopes: ['agents:invoke']\n"
    )


ENV = {"OAUTH_CLIENT_ID": CLIENT[0], "OAUTH_CLIENT_SECRET": CLIENT[1]}


def call(url: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{url}/invoke", json={"query": "x"}, headers=headers)


def test_introspected_tokens(serve: Serve, introspection: Introspection) -> None:
    url = serve("whoami", dockfile_extra(introspection.url), AGENT, environ=ENV)
    good = call(url, "good-token")
    assert good.status_code == 200
    assert good.json()["output"] == {
        "method": "oauth2",
        "user_id": "alice",
        "scopes": ["agents:invoke", "profile"],
        "client_id": "web-app",
        "principal_id": "oauth2:alice",
    }
    assert call(url, "good-token").status_code == 200
    assert introspection.calls.count("good-token") == 1  # the answer is cached
    call(url, "stale-token")
    call(url, "stale-token")
    assert introspection.calls.count("stale-token") == 2  # a cache never outlives `exp`
    machine = call(url, "machine-token")
    assert machine.json()["output"]["principal_id"] == "oauth2:batch-job"
    narrow = call(url, "narrow-token")
    assert (narrow.status_code, narrow.json()["code"]) == (403, "FORBIDDEN")
    assert narrow.json()["details"]["missing_scopes"] == ["agents:invoke"]
    dead = call(url, "dead-token")
    assert (dead.status_code, dead.json()["detail"]["error"]) == (401, "TOKEN_INVALID")
    document = httpx.get(f"{url}/openapi.json").json()
    assert document["components"]["securitySchemes"] == {
        "BearerAuth": {"type": "http", "scheme": "bearer"}
    }
    assert document["paths"]["/invoke"]["post"]["security"] == [{"BearerAuth": []}]
    missing = call(url, None)
    assert (missing.status_code, missing.json()["detail"]["error"]) == (
        401,
        "MISSING_CREDENTIALS",
    )


def test_wrong_client_credentials_are_503_not_a_pass(
    serve: Serve, introspection: Introspection
) -> None:
    url = serve(
        "whoami",
        dockfile_extra(introspection.url),
        AGENT,
        environ={**ENV, "OAUTH_CLIENT_SECRET": "wrong"},
    )
    refused = call(url, "good-token")
    assert (refused.status_code, refused.json()["code"]) == (503, "AUTH_UNAVAILABLE")
    assert "HTTP 401" in refused.json()["error"]


def test_missing_client_credentials_stop_start_up(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "whoami", dockfile_extra("http://127.0.0.1:9/x"), AGENT)
    with pytest.raises(AuthConfigError, match="OAUTH_CLIENT_SECRET"):
        create_app(dockfile, environ={"OAUTH_CLIENT_ID": "x"})


def _wait_for(condition: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_concurrent_requests_with_one_token_make_one_introspection(
    serve: Serve, introspection: Introspection
) -> None:
    ANSWERS["held-good"] = {"active": True, "sub": "dana", "scope": "agents:invoke"}
    url = serve("whoami", dockfile_extra(introspection.url), AGENT, environ=ENV)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        answers = [pool.submit(call, url, "held-good") for _ in range(20)]
        assert _wait_for(lambda: len(introspection.calls) >= 1)
        # Time for the others to arrive (a second call, were they not shared, ends it).
        _wait_for(lambda: len(introspection.calls) >= 2, seconds=2)
        introspection.release.set()
        assert [answer.result().status_code for answer in answers] == [200] * 20
    assert introspection.calls.count("held-good") == 1


def test_an_address_whose_tokens_keep_failing_is_refused_without_asking(
    serve: Serve, introspection: Introspection
) -> None:
    url = serve("whoami", dockfile_extra(introspection.url), AGENT, environ=ENV)
    for index in range(FAILURES_PER_ADDRESS):
        assert call(url, f"bad-{index}").status_code == 401
    asked = len(introspection.calls)
    refused = call(url, "bad-one-more")
    assert refused.status_code == 429
    assert refused.json()["code"] == "TOO_MANY_LOGINS"
    assert int(refused.headers["Retry-After"]) >= 1
    assert len(introspection.calls) == asked  # the endpoint was not asked
    # another address is not concerned
    with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
        answer = other.post(
            f"{url}/invoke", json={"query": "x"}, headers={"Authorization": "Bearer good-token"}
        )
    assert answer.status_code == 200


def test_a_flood_of_bad_tokens_never_holds_up_a_valid_caller(
    serve: Serve, introspection: Introspection
) -> None:
    """60 bad tokens at once from one address, whose introspections the endpoint holds:
    a valid caller from another address is answered while they are still held."""
    url = serve("whoami", dockfile_extra(introspection.url), AGENT, environ=ENV)
    with concurrent.futures.ThreadPoolExecutor(60) as pool:
        flood = [pool.submit(call, url, f"held-bad-{index}") for index in range(60)]
        assert _wait_for(lambda: len(introspection.calls) >= IN_FLIGHT_PER_ADDRESS)
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            valid = other.post(
                f"{url}/invoke",
                json={"query": "x"},
                headers={"Authorization": "Bearer good-token"},
                timeout=20,
            )
        assert valid.status_code == 200
        assert not introspection.release.is_set()  # the flood was still held
        introspection.release.set()
        statuses = [answer.result().status_code for answer in flood]
    # Only the address's failure budget reaches the endpoint (plus what was in flight when
    # it ran out); on a loaded machine some of the flood arrives after the release, so more
    # than the first few may be asked, never all 60 (each was asked before the bound).
    most = FAILURES_PER_ADDRESS + IN_FLIGHT_PER_ADDRESS
    assert set(statuses) <= {401, 429} and statuses.count(401) <= most
    held = [token for token in introspection.calls if token.startswith("held-bad-")]
    assert len(held) <= most

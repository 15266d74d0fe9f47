"""JWT auth: static keys and a JWKS endpoint on loopback, expiry, audience, ownership."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from dockrion_runtime import AuthConfigError, create_app

from .conftest import write_project

Serve = Callable[..., str]
SECRET = "a-long-test-secret-for-hs256-signing-0123456789"
HS = (
    "auth:\n  mode: jwt\n  jwt:\n    public_key_env: JWT_SECRET\n    algorithms: [HS256]\n"
    "    audience: dockrion\n    issuer: https://issuer.test/\n    leeway_seconds: 30\n"
)


def token(sub: str = "alice", **overrides: Any) -> str:
    claims = {
        "sub": sub,
        "aud": "dockrion",
        "iss": "https://issuer.test/",
        "exp": int(time.time()) + 300,
    }
    claims.update(overrides)
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, SECRET, algorithm="HS256")


def call(url: str, bearer: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    return httpx.post(f"{url}/invoke", json={"query": "x"}, headers=headers)


def test_good_expired_wrong_audience_and_missing(serve: Serve) -> None:
    url = serve("no_context", HS, environ={"JWT_SECRET": SECRET})
    assert call(url, token()).status_code == 200
    missing = call(url, None)
    assert missing.status_code == 401
    assert missing.json()["detail"]["error"] == "MISSING_CREDENTIALS"
    expired = call(url, token(exp=int(time.time()) - 120))
    assert (expired.status_code, expired.json()["detail"]["error"]) == (401, "TOKEN_EXPIRED")
    assert expired.json()["detail"]["code"] == "AUTH_ERROR"
    assert call(url, token(exp=int(time.time()) - 10)).status_code == 200  # within leeway
    wrong_audience = call(url, token(aud="someone-else"))
    assert (wrong_audience.status_code, wrong_audience.json()["detail"]["error"]) == (
        401,
        "TOKEN_INVALID",
    )
    assert "audience" in wrong_audience.json()["detail"]["message"].lower()
    wrong_issuer = call(url, token(iss="https://evil.test/"))
    assert wrong_issuer.status_code == 401
    forged = jwt.encode(
        {"sub": "alice", "aud": "dockrion"},
        "another-secret-of-enough-length-000",
        algorithm="HS256",
    )
    assert call(url, forged).status_code == 401
    assert call(url, "not.a.jwt").status_code == 401
    assert call(url, token(iat=None)).status_code == 200  # iat is not required


def test_exp_is_required_nbf_and_iat_are_honoured(serve: Serve) -> None:
    url = serve("no_context", HS, environ={"JWT_SECRET": SECRET})
    no_exp = call(url, token(exp=None))
    assert (no_exp.status_code, no_exp.json()["detail"]["error"]) == (401, "TOKEN_INVALID")
    assert '"exp"' in no_exp.json()["detail"]["message"]
    future = int(time.time()) + 600
    not_yet = call(url, token(nbf=future))
    assert (not_yet.status_code, not_yet.json()["detail"]["error"]) == (401, "TOKEN_INVALID")
    assert "nbf" in not_yet.json()["detail"]["message"]
    issued_later = call(url, token(iat=future))
    assert issued_later.status_code == 401
    assert "iat" in issued_later.json()["detail"]["message"]
    assert call(url, token(nbf=int(time.time()) + 10)).status_code == 200  # within leeway
    assert call(url, token(iat=int(time.time()) - 60)).status_code == 200


def test_tokens_without_exp_are_an_explicit_choice(serve: Serve) -> None:
    url = serve(
        "no_context",
        HS.replace("leeway_seconds: 30", "leeway_seconds: 0\n    require_exp: false"),
        environ={"JWT_SECRET": SECRET},
    )
    assert call(url, token(exp=None)).status_code == 200
    assert call(url, token(exp=int(time.time()) - 5)).status_code == 401  # no leeway


def test_runs_belong_to_the_token_subject(serve: Serve) -> None:
    url = serve("echo", HS, environ={"JWT_SECRET": SECRET})
    alice = {"Authorization": f"Bearer {token('alice')}"}
    bob = {"Authorization": f"Bearer {token('bob')}"}
    run_id = httpx.post(f"{url}/runs", json={"query": "x"}, headers=alice).json()["run_id"]
    assert httpx.get(f"{url}/runs/{run_id}", headers=alice).status_code == 200
    assert httpx.get(f"{url}/runs/{run_id}", headers=bob).status_code == 404
    assert httpx.delete(f"{url}/runs/{run_id}", headers=bob).status_code == 404


def test_dot_path_subject_claim(serve: Serve) -> None:
    url = serve(
        "no_context", HS + "    claims: {user_id: user.id}\n", environ={"JWT_SECRET": SECRET}
    )
    assert call(url, token(user={"id": "u-1"})).status_code == 200
    no_subject = call(url, token())
    assert no_subject.status_code == 401
    assert "no subject" in no_subject.json()["detail"]["message"]


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", (key, hits)
    finally:
        server.shutdown()


def test_jwks_keys_are_fetched_and_cached(serve: Serve, jwks_server: tuple[str, Any]) -> None:
    jwks_url, (key, hits) = jwks_server
    url = serve("no_context", f"auth:\n  mode: jwt\n  jwt: {{jwks_url: '{jwks_url}'}}\n")
    signed = jwt.encode(
        {"sub": "carol", "exp": int(time.time()) + 300},
        key,
        algorithm="RS256",
        headers={"kid": "k1"},
    )
    for _ in range(3):
        assert call(url, signed).status_code == 200
    assert len(hits) == 1  # cached
    hs_token = jwt.encode({"sub": "carol"}, SECRET, algorithm="HS256", headers={"kid": "k1"})
    assert call(url, hs_token).status_code == 401  # only RS256 is accepted by default


def test_jwt_configuration_errors(tmp_path: Path) -> None:
    dockfile = write_project(tmp_path, "echo", HS)
    with pytest.raises(AuthConfigError, match="JWT_SECRET, which is not set"):
        create_app(dockfile, environ={})
    dockfile.write_text(dockfile.read_text().replace("    public_key_env: JWT_SECRET\n", ""))
    with pytest.raises(
        AuthConfigError, match=r"needs auth\.jwt\.jwks_url or auth\.jwt\.public_key_env"
    ):
        create_app(dockfile, environ={})

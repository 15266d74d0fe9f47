"""The HTTP layer answers malformed and unsupported requests as nginx does, on both guarded
protocols (httptools, and the h11 fallback): 400 for a missing (HTTP/1.1) or repeated
`Host`, 501 for a transfer coding it does not implement, 505 for an HTTP version it does
not speak; and an early answer (413 for a body over the limit, 401 before the body is
read) reaches a client that writes its whole body before reading (lingering close)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockrion_runtime import create_app
from dockrion_runtime.serve.options import ServerOptions

from .conftest import read_answer, serve_guarded, write_project

PROTOCOLS = ["GuardedH11Protocol", "GuardedHttpToolsProtocol"]
KEY = "conformance-key-1"


@pytest.fixture(params=PROTOCOLS)
def address(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    """A server behind an API key, on one of the guarded protocols."""
    options = ServerOptions(
        header_timeout=10.0, keep_alive_timeout=5.0, max_connections=100, max_header_bytes=8192
    )
    dockfile = write_project(tmp_path, "echo", "auth:\n  api_keys: {prefix: CONF}\n")
    app = create_app(dockfile, environ={"CONF_API_KEY_TESTER": KEY})
    with serve_guarded(request.param, app, options) as address:
        yield address


def exchange(address: tuple[str, int], request: bytes) -> bytes:
    """Send `request`, then read until the server closes (or 10 s pass)."""
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(request)
        received = b""
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except TimeoutError:
            pass
        return received


def status_of(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def code_of(answer: bytes) -> str:
    """The `code` of a JSON error answer."""
    code: str = json.loads(answer.partition(b"\r\n\r\n")[2])["code"]
    return code


BODY = b'{"query": "hello"}'
AUTHORIZED = f"X-API-Key: {KEY}\r\nContent-Type: application/json\r\n".encode()


def invoke(head: bytes, body: bytes = BODY) -> bytes:
    return (
        b"POST /invoke HTTP/1.1\r\n"
        + head
        + AUTHORIZED
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\nConnection: close\r\n\r\n"
        + body
    )


def test_a_well_formed_request_is_answered(address: tuple[str, int]) -> None:
    answer = exchange(address, invoke(b"Host: x\r\n"))
    assert status_of(answer) == b"HTTP/1.1 200 OK"


def test_an_http_1_1_request_without_host_is_a_400(address: tuple[str, int]) -> None:
    answer = exchange(address, invoke(b""))
    assert status_of(answer).startswith(b"HTTP/1.1 400")
    assert code_of(answer) == "BAD_REQUEST"


def test_an_http_1_0_request_without_host_is_answered(address: tuple[str, int]) -> None:
    answer = exchange(address, b"GET /health HTTP/1.0\r\n\r\n")
    assert status_of(answer).startswith(b"HTTP/1.1 200")


def test_a_request_with_two_host_lines_is_a_400(address: tuple[str, int]) -> None:
    answer = exchange(address, invoke(b"Host: x\r\nHost: y\r\n"))
    assert status_of(answer).startswith(b"HTTP/1.1 400")
    assert code_of(answer) == "BAD_REQUEST"


def test_a_transfer_coding_not_implemented_is_a_501(address: tuple[str, int]) -> None:
    chunked = b"12\r\n" + BODY + b"\r\n0\r\n\r\n"
    for coding in (b"gzip, chunked", b"gzip", b"chunked, chunked"):
        answer = exchange(
            address,
            b"POST /invoke HTTP/1.1\r\nHost: x\r\n"
            + AUTHORIZED
            + b"Transfer-Encoding: "
            + coding
            + b"\r\nConnection: close\r\n\r\n"
            + chunked,
        )
        assert status_of(answer).startswith(b"HTTP/1.1 501"), coding
        assert code_of(answer) == "NOT_IMPLEMENTED"
    # plain chunked is implemented
    answer = exchange(
        address,
        b"POST /invoke HTTP/1.1\r\nHost: x\r\n"
        + AUTHORIZED
        + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunked,
    )
    assert status_of(answer) == b"HTTP/1.1 200 OK"


def test_an_unsupported_http_version_is_a_505(address: tuple[str, int]) -> None:
    for version in (b"HTTP/2.0", b"HTTP/3.0"):
        answer = exchange(address, b"GET /health " + version + b"\r\nHost: x\r\n\r\n")
        assert status_of(answer).startswith(b"HTTP/1.1 505"), version
        assert code_of(answer) == "HTTP_VERSION_NOT_SUPPORTED"


def write_everything_then_read(address: tuple[str, int], request: bytes) -> bytes:
    """A client that writes its whole request before it reads anything (curl without
    `Expect`, most scripts): the write must go through (no reset), then the answer is
    read (its head and `Content-Length` bytes of body)."""
    with socket.create_connection(address, timeout=30) as conn:
        conn.sendall(request)
        return read_answer(conn)


TEN_MB = b'{"query": "' + b"a" * (10 * 1024 * 1024) + b'"}'


def test_a_413_reaches_a_client_that_writes_its_whole_body_first(
    address: tuple[str, int],
) -> None:
    answer = write_everything_then_read(address, invoke(b"Host: x\r\n", TEN_MB))
    assert status_of(answer).startswith(b"HTTP/1.1 413")
    assert code_of(answer) == "PAYLOAD_TOO_LARGE"


def test_a_401_reaches_a_client_that_writes_its_whole_body_first(
    address: tuple[str, int],
) -> None:
    request = (
        b"POST /invoke HTTP/1.1\r\nHost: x\r\nX-API-Key: wrong\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(TEN_MB)).encode()
        + b"\r\n\r\n"
        + TEN_MB
    )
    answer = write_everything_then_read(address, request)
    assert status_of(answer).startswith(b"HTTP/1.1 401")
    assert b'"AUTH_ERROR"' in answer


def test_a_connection_answered_before_its_body_serves_the_next_request(
    address: tuple[str, int],
) -> None:
    """The rest of a body answered early is the body, not the head of a next request (it
    is not held to the head's size limit), and the connection goes on once it is over."""
    body = b'{"query": "' + b"a" * 100_000 + b'"}'
    refused = (
        b"POST /invoke HTTP/1.1\r\nHost: x\r\nX-API-Key: wrong\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    with socket.create_connection(address, timeout=30) as conn:
        conn.sendall(refused[:200])
        first = read_answer(conn)
        conn.sendall(refused[200:])
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        second = read_answer(conn)
    assert status_of(first).startswith(b"HTTP/1.1 401")
    assert status_of(second) == b"HTTP/1.1 200 OK"

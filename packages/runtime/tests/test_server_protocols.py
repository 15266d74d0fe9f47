"""Both guarded HTTP protocols (h11, and httptools when installed) enforce the request-head
deadline and size limit with JSON bodies, and write a response's head and body together:
the h11 one is the fallback where httptools has no wheel, so it is tried here too."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dockrion_runtime import create_app
from dockrion_runtime.serve.options import ServerOptions

from .conftest import read_answer, serve_guarded, write_project

PROTOCOLS = ["GuardedH11Protocol", "GuardedHttpToolsProtocol"]


@pytest.fixture(params=PROTOCOLS)
def address(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, int]]:
    options = ServerOptions(
        header_timeout=1.0, keep_alive_timeout=5.0, max_connections=100, max_header_bytes=4096
    )
    with serve_guarded(request.param, create_app(write_project(tmp_path, "echo")), options) as a:
        yield a


def read_all(conn: socket.socket) -> bytes:
    conn.settimeout(30)
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    return data


def test_a_head_that_never_ends_gets_408_and_is_closed(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        answer = read_all(conn)
    assert answer.startswith(b"HTTP/1.1 408")
    assert b'"code": "REQUEST_TIMEOUT"' in answer


def test_an_oversized_head_gets_a_json_400(address: tuple[str, int]) -> None:
    with socket.create_connection(address) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8192 + b"\r\n")
        answer = read_all(conn)
    assert answer.startswith(b"HTTP/1.1 400")
    assert b'"code": "BAD_REQUEST"' in answer


def data_segments_in(conn: socket.socket) -> int:
    """Segments carrying data this socket received (Linux `tcp_info.tcpi_data_segs_in`)."""
    info = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return int.from_bytes(info[152:156], "little")


def read_response(conn: socket.socket) -> bytes:
    conn.settimeout(30)
    return read_answer(conn)


@pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="needs Linux TCP_INFO")
def test_a_response_head_and_body_leave_in_one_segment(address: tuple[str, int]) -> None:
    """The head and the body of an answer are written together (one system call, one TCP
    segment), not one write each."""
    body = b'{"query": "hello"}'
    request = (
        b"POST /invoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with socket.create_connection(address, timeout=30) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(3):  # on a kept-alive connection too
            before = data_segments_in(conn)
            conn.sendall(request)
            response = read_response(conn)
            assert response.startswith(b"HTTP/1.1 200") and b'"success":true' in response
            time.sleep(0.2)  # anything still in flight arrives and is counted
            assert data_segments_in(conn) - before == 1

"""`GET /playground`: a page to try the agent in a browser, and its scripts and style sheet.

The page is static files shipped in the package (no CDN, no build step), so it is public
like the welcome page: a browser cannot send an API key header when it loads a page. The
API stays protected: the user types a key or token into the page, and the page sends it
on every call it makes (`GET /schema`, `POST /runs`, `GET /runs/{id}/events`, ...). The
page only ever talks to the server that served it, so its own policy admits scripts,
styles and requests from that origin only.
"""

from __future__ import annotations

from importlib import resources

from starlette.requests import Request
from starlette.responses import Response

from ..errors import RuntimeHTTPError

__all__ = ["asset", "page"]

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}


def _load() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("dockrion_runtime") / "playground"
    files: dict[str, tuple[bytes, str]] = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rpartition(".")[2]
        if item.is_file() and suffix in _TYPES:
            files[item.name] = (item.read_bytes(), _TYPES[suffix])
    return files


_FILES = _load()


def _file(name: str) -> Response:
    found = _FILES.get(name)
    if found is None:
        raise RuntimeHTTPError(f"No playground file '{name}'", "NOT_FOUND")
    body, media_type = found
    return Response(body, media_type=media_type, headers=_HEADERS)


async def page(request: Request) -> Response:
    return _file("index.html")


async def asset(request: Request) -> Response:
    name = request.path_params["name"]
    if name == "index.html":
        raise RuntimeHTTPError(f"No playground file '{name}'", "NOT_FOUND")
    return _file(name)

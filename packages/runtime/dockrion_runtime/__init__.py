"""dockrion-runtime: serve a Dockfile's agent over HTTP with live Server-Sent Events."""

from ._version import __version__
from .app import create_app
from .auth import AuthConfigError

__all__ = ["AuthConfigError", "__version__", "create_app"]

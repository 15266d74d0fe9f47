"""dockrion-runtime: serve a Dockfile's agent over HTTP with live Server-Sent Events."""

from ._version import __version__
from .app import create_app

__all__ = ["__version__", "create_app"]

"""dockrion-runtime: serve a Dockfile's agent over HTTP."""

from ._version import __version__

__all__ = ["__version__"]

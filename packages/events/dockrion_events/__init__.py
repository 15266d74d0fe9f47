"""dockrion-events: what agent code imports to stream events from a run."""

from ._version import __version__

__all__ = ["__version__"]

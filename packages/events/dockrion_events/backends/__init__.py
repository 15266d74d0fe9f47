"""Storage for runs and their event logs."""

from .base import EventBackend
from .memory import InMemoryBackend

__all__ = ["EventBackend", "InMemoryBackend"]

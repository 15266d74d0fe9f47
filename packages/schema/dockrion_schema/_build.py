"""The `build` section of a Dockfile v1: what goes into an agent's image."""

from __future__ import annotations

from pydantic import Field

from ._fields import NonBlankList, _Section

__all__ = ["BuildConfig", "BuildIncludeConfig"]


class BuildIncludeConfig(_Section):
    directories: NonBlankList = Field(default_factory=list)
    files: NonBlankList = Field(default_factory=list)
    patterns: NonBlankList = Field(default_factory=list)


class BuildConfig(_Section):
    include: BuildIncludeConfig | None = None
    exclude: NonBlankList = Field(default_factory=list)
    auto_detect_imports: bool = False

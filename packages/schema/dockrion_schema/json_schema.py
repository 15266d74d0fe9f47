"""The Dockfile as JSON Schema, for editors (yaml-language-server) and `jsonschema`."""

from __future__ import annotations

import json
import os
from typing import Any

from .dockfile_v1 import DockSpec

__all__ = ["SCHEMA_ID", "generate_json_schema", "get_schema_version", "write_json_schema"]

SCHEMA_ID = "https://dockrion.dev/schema/dockfile-v1.json"


def get_schema_version() -> str:
    return "1.0"


def generate_json_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a Dockfile."""
    schema = DockSpec.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "Dockfile",
        **{key: value for key, value in schema.items() if key != "title"},
    }


def write_json_schema(output_path: str | os.PathLike[str] = "dockfile_v1_schema.json") -> None:
    with open(output_path, "w", encoding="utf-8") as handle:
        json.dump(generate_json_schema(), handle, indent=2, ensure_ascii=False)
        handle.write("\n")

"""The exported JSON Schema and the pydantic models agree on a corpus of Dockfiles."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

import dockrion_schema
from dockrion_schema import check_dockfile_text, generate_json_schema, write_json_schema

CORPUS = Path(__file__).parent / "corpus"
# Rules JSON Schema cannot state (relations between values); the models enforce them.
MODEL_ONLY = {"bad-target.yaml", "redis-sentinel-with-url.yaml"}
CASES = sorted(CORPUS.glob("good/*.yaml")) + sorted(CORPUS.glob("bad/*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = generate_json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_json_schema_agrees_with_models(
    path: Path, validator: jsonschema.protocols.Validator
) -> None:
    text = path.read_text()
    models_ok = check_dockfile_text(text, environ={}).ok
    assert models_ok == (path.parent.name == "good")
    if path.name in MODEL_ONLY:
        return
    schema_errors = list(validator.iter_errors(yaml.safe_load(text)))
    assert (not schema_errors) == models_ok, [e.message for e in schema_errors]


def test_write_json_schema(tmp_path: Path) -> None:
    target = tmp_path / "dockfile.json"
    write_json_schema(target)
    text = target.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert json.loads(text)["title"] == "Dockfile"


def test_shipped_schema_file_is_up_to_date() -> None:
    shipped = Path(dockrion_schema.__file__).parent / "dockfile-v1.schema.json"
    assert json.loads(shipped.read_text(encoding="utf-8")) == generate_json_schema(), (
        "regenerate it: dockrion-schema json-schema -o "
        "packages/schema/dockrion_schema/dockfile-v1.schema.json"
    )

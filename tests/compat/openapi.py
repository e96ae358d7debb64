"""Check response bodies against the Docker Engine API spec (../shared/specs, OpenAPI 2.0).

Go encodes nil slices and maps as null, and real dockerd answers null in many places the
spec types as array/object; so null is accepted everywhere, everything else is checked.
"""

from __future__ import annotations

import functools
from pathlib import Path

import jsonschema
import yaml

SPECS = Path(__file__).resolve().parents[3] / "shared" / "specs"
if not SPECS.exists():
    SPECS = Path("/work/shared/specs")


def _nullable(node):
    if isinstance(node, dict):
        node = {k: _nullable(v) for k, v in node.items()}
        t = node.get("type")
        if isinstance(t, str):
            node["type"] = [t, "null"]
        if "enum" in node:
            node["enum"] = list(node["enum"]) + [None]
        return node
    if isinstance(node, list):
        return [_nullable(v) for v in node]
    return node


@functools.lru_cache(maxsize=2)
def spec(version: str = "1.50") -> dict:
    with open(SPECS / f"docker-engine-api-v{version}.yaml") as f:
        return _nullable(yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


def validate(method: str, path: str, status: int, body, version: str = "1.50") -> None:
    """Raise jsonschema.ValidationError when ``body`` does not fit the spec's response schema."""
    root = spec(version)
    responses = root["paths"][path][method.lower()]["responses"]
    schema = responses[status]["schema"]
    resolver_schema = dict(schema)
    resolver_schema["definitions"] = root["definitions"]
    jsonschema.Draft4Validator(resolver_schema).validate(body)

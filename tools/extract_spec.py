"""Extract the compact CML API v2 contract (every path and operation, the definitions they use) from the swagger spec.

Usage: ``python tools/extract_spec.py [SWAGGER_JSON]``. Writes the compact JSON to
``localcml/spec/api_v2.json``, its one copy: package data for the local workspace's client and
server, and what the contract tests check requests and answers against.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = ROOT.parent / "shared" / "cml-api-v2" / "Flux2112_cai-connector__packages_core_spec_swagger.json"
OUTPUT = ROOT / "localcml" / "spec" / "api_v2.json"

METHODS = ("get", "post", "put", "patch", "delete")
_KEEP = ("type", "format", "enum", "default", "readOnly", "$ref", "items", "additionalProperties")


def _compact_schema(schema: dict) -> dict:
    out = {k: schema[k] for k in _KEEP if k in schema}
    if "items" in out:
        out["items"] = _compact_schema(out["items"])
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = _compact_schema(out["additionalProperties"])
    if "properties" in schema:
        out["properties"] = {name: _compact_schema(p) for name, p in schema["properties"].items()}
    return out


def _refs(schema: dict) -> set[str]:
    found: set[str] = set()
    if "$ref" in schema:
        found.add(schema["$ref"].rsplit("/", 1)[-1])
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found |= _refs(schema[key])
    for prop in schema.get("properties", {}).values():
        found |= _refs(prop)
    return found


def extract(spec: dict) -> dict:
    """The compact contract: info, security, every operation and the definitions it uses (closed over $ref).

    Each operation keeps its id, summary, parameters (path, query, body and formData), the content
    types it consumes when they differ from JSON, and its 200 response schema (``{}`` when the spec
    gives none, as for file downloads).

    Raises:
        KeyError: a $ref names a definition the spec lacks.
    """
    all_defs = spec["definitions"]
    paths: dict[str, dict] = {}
    wanted: set[str] = {"runtimeError"}
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            if method not in METHODS:
                continue
            params = []
            for prm in op.get("parameters", []):
                keep = {k: prm[k] for k in ("name", "in", "required", "type", "format") if k in prm}
                if "schema" in prm:
                    keep["schema"] = _compact_schema(prm["schema"])
                    wanted |= _refs(prm["schema"])
                params.append(keep)
            response = _compact_schema(op.get("responses", {}).get("200", {}).get("schema", {}))
            wanted |= _refs(response)
            entry = {
                "operationId": op["operationId"],
                "summary": _summary(op),
                "parameters": params,
                "response": response,
            }
            if op.get("consumes"):
                entry["consumes"] = op["consumes"]
            paths.setdefault(path, {})[method] = entry
    defs: dict[str, dict] = {}
    todo = sorted(wanted)
    while todo:
        name = todo.pop()
        if name in defs:
            continue
        if name not in all_defs:
            raise KeyError(f"definition {name!r} is not in the spec")
        defs[name] = _compact_schema(all_defs[name])
        todo.extend(sorted(_refs(defs[name]) - defs.keys()))
    return {
        "swagger": spec["swagger"],
        "info": {
            "title": spec["info"].get("title"),
            "version": spec["info"].get("version"),
            "note": "Compact extract of the CML API v2 swagger spec made by tools/extract_spec.py",
        },
        "securityDefinitions": spec.get("securityDefinitions", {}),
        "definitions": dict(sorted(defs.items())),
        "paths": dict(sorted(paths.items())),
    }


def _summary(op: dict) -> str:
    """The operation's one-line summary (its first line, trimmed)."""
    text = (op.get("summary") or op.get("description") or "").strip()
    return text.splitlines()[0].strip() if text else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", nargs="?", default=str(DEFAULT_SPEC), help="the API v2 swagger.json")
    args = parser.parse_args(argv)
    source = Path(args.spec)
    if not source.is_file():
        print(f"extract_spec: {source}: no such file (pass the path to the API v2 swagger.json)", file=sys.stderr)
        return 2
    compact = extract(json.loads(source.read_text()))
    text = json.dumps(compact, indent=1, sort_keys=False) + "\n"
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text)
    print(
        f"wrote {OUTPUT.relative_to(ROOT)}: {len(compact['definitions'])} definitions, "
        f"{sum(len(m) for m in compact['paths'].values())} operations"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

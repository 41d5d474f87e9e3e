"""Turn a CustomResourceDefinition's openAPIV3Schema into a strict JSON Schema file.

The API server prunes or (with strict field validation) rejects fields a structural schema does
not declare; JSON Schema allows them unless told otherwise. So every object that declares
`properties` gets `additionalProperties: false`, unless the CRD says
`x-kubernetes-preserve-unknown-fields`. CEL rules (`x-kubernetes-validations`) are dropped: only
the API server can run them. Descriptions are dropped to keep the files small.

Usage: python crd_to_jsonschema.py --version v1 --out deploy/k8s/schemas crd.yaml [...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

_DROP = {"description", "x-kubernetes-validations", "example"}


def strict_schema(node: Any, *, root: bool = False) -> Any:
    """Return a copy of an OpenAPI v3 structural schema as a strict JSON Schema."""
    if isinstance(node, list):
        return [strict_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key in {"items", "additionalProperties", "not"} and isinstance(value, dict):
            out[key] = strict_schema(value)
        elif key in {"oneOf", "anyOf", "allOf"}:
            out[key] = [strict_schema(sub) for sub in value]
        else:
            out[key] = value
    if out.pop("x-kubernetes-int-or-string", False):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if out.pop("nullable", False) and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    preserve = out.pop("x-kubernetes-preserve-unknown-fields", False)
    is_object = root or out.get("type") == "object"
    if is_object and "properties" in out and "additionalProperties" not in out and not preserve:
        out["additionalProperties"] = False
    return out


def convert(crd: dict[str, Any], *, version: str) -> tuple[str, str, dict[str, Any]]:
    """Return (group, kind, JSON Schema) for one served version of a CRD."""
    spec = crd["spec"]
    group, kind = spec["group"], spec["names"]["kind"]
    for served in spec["versions"]:
        if served["name"] == version:
            schema = strict_schema(served["schema"]["openAPIV3Schema"], root=True)
            break
    else:
        raise SystemExit(f"{kind}: version {version} not in the CRD")
    schema["type"] = "object"
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {"const": f"{group}/{version}"}
    props["kind"] = {"const": kind}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    document = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"{kind} ({group}/{version}), generated from the CRD; do not edit by hand",
        **schema,
    }
    return group, kind, document


def main() -> None:
    """Convert each CRD file given on the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--version", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("crds", nargs="+", type=Path)
    args = parser.parse_args()
    for path in args.crds:
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind, document = convert(crd, version=args.version)
            target = args.out / group / args.version / f"{kind}.json"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
            print(f"wrote {target}")


if __name__ == "__main__":
    main()
